"""Each loss term on known answers, and the checksum-verified VGG19 loading on a small file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dcesynth.models.pix2pixhd.losses import (
    VGG_WEIGHTS,
    PerceptualLoss,
    VGGFeatures,
    feature_matching_loss,
    lsgan_loss,
    vgg19_features,
)
from dcesynth.weights import VGG19_IMAGENET, WeightsError, WeightsSpec, resolve, sha256_of


def test_lsgan_known_answers() -> None:
    preds = [
        [torch.zeros(1), torch.ones(2, 1, 4, 4)],
        [torch.zeros(1), torch.full((2, 1, 2, 2), 0.5)],
    ]
    assert lsgan_loss(preds, target_is_real=True).item() == pytest.approx(0.0 + 0.25)
    assert lsgan_loss(preds, target_is_real=False).item() == pytest.approx(1.0 + 0.25)  # summed


def test_feature_matching_known_answer() -> None:
    real = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 2, 2)]] * 2
    fake = [
        [torch.ones(1, 2, 4, 4), torch.full((1, 2, 2, 2), 2.0), torch.full((1, 1, 2, 2), 9.0)]
    ] * 2
    # per D: (4/(n_layers+1))·(1/num_D)·(1 + 2) with n_layers = 3, num_D = 2; patch maps excluded
    assert feature_matching_loss(fake, real, n_layers=3).item() == pytest.approx(2 * 0.5 * 3.0)
    assert feature_matching_loss(real, real, n_layers=3).item() == 0.0


def test_feature_matching_does_not_train_the_real_branch() -> None:
    real = [[torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1)]]
    fake = [[torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1)]]
    feature_matching_loss(fake, real, n_layers=1).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


def tiny_vgg() -> nn.Sequential:
    """30 layers with VGG19's slice boundaries, small enough for a unit test."""
    layers: list[nn.Module] = []
    for i in range(30):
        layers.append(nn.Conv2d(3, 3, 3, padding=1) if i % 2 == 0 else nn.ReLU())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_perceptual_loss_zero_on_identity_and_positive_otherwise(channels: int) -> None:
    torch.manual_seed(0)
    loss = PerceptualLoss(VGGFeatures(tiny_vgg()))
    x = torch.rand(2, channels, 16, 16) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, -x).item() > 0.0
    assert all(not p.requires_grad for p in loss.parameters())  # the feature net is frozen


def test_perceptual_loss_weights_the_slices() -> None:
    assert VGG_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    torch.manual_seed(0)
    feats = VGGFeatures(tiny_vgg())
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    expected = sum(
        w * (a - b).abs().mean() for w, a, b in zip(VGG_WEIGHTS, feats(x), feats(y), strict=True)
    )
    assert PerceptualLoss(feats)(x, y).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        PerceptualLoss(feats)(x, y[:, :1])


def test_weights_resolve_verifies_checksum(tmp_path: Path) -> None:
    """The real loading path on a file made here: found, verified, loaded; else clear errors."""
    from torchvision.models import vgg19

    torch.manual_seed(1)
    reference = vgg19(weights=None)  # stands in for the ImageNet file, which cannot be fetched
    path = tmp_path / "vgg19-test.pth"
    torch.save(reference.state_dict(), path)
    spec = WeightsSpec("vgg19_test", path.name, sha256_of(path)[:8], "made by this test", "a test")
    assert resolve(spec, tmp_path) == path
    loaded = vgg19_features(resolve(spec, tmp_path))
    torch.testing.assert_close(loaded.slices[0][0].weight, reference.features[0].weight)
    torch.testing.assert_close(loaded.slices[4][-2].weight, reference.features[28].weight)
    bad = WeightsSpec("vgg19_test", path.name, "00000000", "made by this test", "a test")
    with pytest.raises(WeightsError, match="corrupt or another release"):
        resolve(bad, tmp_path)
    with pytest.raises(WeightsError, match=f"put {VGG19_IMAGENET.filename} in {tmp_path / 'none'}"):
        resolve(VGG19_IMAGENET, tmp_path / "none")
