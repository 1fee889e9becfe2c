"""pix2pixHD networks: the reference parameter counts, shapes over phases and sizes, errors."""

from __future__ import annotations

import pytest
import torch

from dcesynth.models.pix2pixhd.networks import (
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    count_parameters,
)


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout  # weights + bias (instance norm has no parameters)


def test_global_generator_parameter_count_matches_pix2pixhd() -> None:
    """3→3 channels, ngf 64, 4 downsamplings, 9 blocks ≈ 182.4 M, counted layer by layer."""
    ngf = 64
    expected = conv(3, ngf, 7)
    expected += sum(conv(ngf * 2**i, ngf * 2 ** (i + 1), 3) for i in range(4))  # down
    expected += 9 * 2 * conv(ngf * 16, ngf * 16, 3)  # residual blocks at 1024 channels
    expected += sum(conv(ngf * 2 ** (4 - i), ngf * 2 ** (3 - i), 3) for i in range(4))  # up
    expected += conv(ngf, 3, 7)
    assert expected == 182_443_267
    assert count_parameters(GlobalGenerator(3, 3, 64, 4, 9)) == expected


def test_discriminator_parameter_count_matches_pix2pixhd() -> None:
    """A 3-layer PatchGAN on 6 channels (pre + post, each as RGB) with ndf 64 ≈ 2.77 M."""
    expected = conv(6, 64, 4) + conv(64, 128, 4) + conv(128, 256, 4) + conv(256, 512, 4)
    expected += conv(512, 1, 4)
    assert expected == 2_767_809
    assert count_parameters(NLayerDiscriminator(6, 64, 3)) == expected
    assert count_parameters(MultiscaleDiscriminator(6, 64, 3, num_d=2)) == 2 * expected


@pytest.mark.parametrize("phases", [1, 3])
@pytest.mark.parametrize(("h", "w"), [(32, 32), (64, 48), (96, 64)])
def test_generator_shapes(phases: int, h: int, w: int) -> None:
    g = GlobalGenerator(1, phases, ngf=8, n_downsample=3, n_blocks=2)
    y = g(torch.randn(2, 1, h, w))
    assert y.shape == (2, phases, h, w)
    assert y.abs().max() <= 1.0  # tanh output, the [-1, 1] image range


@pytest.mark.parametrize("phases", [1, 3, 4])
def test_local_enhancer_shapes_and_two_scales(phases: int) -> None:
    g = LocalEnhancer(1, phases, ngf=8, n_downsample_global=2, n_blocks_global=1, n_blocks_local=1)
    assert g(torch.randn(1, 1, 64, 32)).shape == (1, phases, 64, 32)
    assert g.global_net.features[1].out_channels == 16  # G1 has twice the filters of G2


@pytest.mark.parametrize("num_d", [1, 2, 3])
def test_multiscale_discriminator_outputs(num_d: int) -> None:
    d = MultiscaleDiscriminator(4, ndf=8, n_layers=3, num_d=num_d)
    out = d(torch.randn(2, 4, 64, 64))
    assert len(out) == num_d
    for feats in out:
        assert len(feats) == 5  # input block, 3 layers, the patch map
        assert feats[-1].shape[:2] == (2, 1)
    sizes = [f[-1].shape[-1] for f in out]
    assert sizes == sorted(sizes, reverse=True)  # each scale sees a smaller image


@pytest.mark.parametrize(
    ("make", "size", "message"),
    [
        (lambda: GlobalGenerator(1, 1, 8, 3, 1), (30, 32), "divisible by 2\\*\\*3 = 8"),
        (lambda: LocalEnhancer(1, 1, 8, 2, 1, 1), (36, 32), "divisible by 2\\*\\*3 = 8"),
    ],
)
def test_size_not_divisible_is_a_clear_error(make, size, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()(torch.randn(1, 1, *size))


@pytest.mark.parametrize(
    "make",
    [
        lambda: GlobalGenerator(0, 1),
        lambda: GlobalGenerator(1, 1, ngf=0),
        lambda: NLayerDiscriminator(2, n_layers=0),
        lambda: MultiscaleDiscriminator(2, num_d=0),
    ],
)
def test_invalid_shapes_raise(make) -> None:
    with pytest.raises(ValueError):
        make()
