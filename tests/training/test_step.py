"""The efficient pix2pixHD step computes exactly the study's gradients.

The reference below is the study's losses written out in the most obvious form, with
upstream's three discriminator passes; every gradient of G and of D must match the step's."""

from __future__ import annotations

import copy

import pytest
import torch

from dcesynth.models.pix2pixhd.losses import VGG_WEIGHTS, vgg19_features
from dcesynth.training.config import TrainConfig
from dcesynth.training.loop import build_discriminator, build_generator
from dcesynth.training.step import GanStep, ReferenceStep


def _cfg(phases=(1,), **loss) -> TrainConfig:
    return TrainConfig(
        phases=phases,
        bf16=False,  # the same mathematics in fp32; bf16 is a device speed-up, not the maths
        model={"ngf": 8, "n_downsample": 2, "n_blocks": 1, "ndf": 8},
        loss={"perceptual_network": "vgg19_random", **loss},
    )


def obvious_gradients(G, D, vgg, x, y, mask, cfg: TrainConfig):
    """Upstream pix2pixHD's losses, spelled out; gradients of G's loss for G and D's for D."""
    lc, n_layers, num_d = cfg.loss, cfg.model.n_layers_d, cfg.model.num_d
    fake = G(x)
    pred_fake_pool = D(torch.cat([x, fake.detach()], 1))  # for D's loss
    pred_real = D(torch.cat([x, y], 1))  # for D's loss and feature matching
    pred_fake = D(torch.cat([x, fake], 1))  # for G's loss
    loss_d = 0.5 * sum(((p[-1] - 0.0) ** 2).mean() for p in pred_fake_pool) + 0.5 * sum(
        ((p[-1] - 1.0) ** 2).mean() for p in pred_real
    )
    adv = sum(((p[-1] - 1.0) ** 2).mean() for p in pred_fake)
    fm = 0.0
    for pf, pr in zip(pred_fake, pred_real, strict=True):
        for a, b in zip(pf[:-1], pr[:-1], strict=True):
            fm = fm + 4.0 / (n_layers + 1) / num_d * (a - b.detach()).abs().mean()
    per = 0.0
    chans = (
        [(fake, y)]
        if fake.shape[1] == 3
        else [
            (fake[:, i : i + 1].repeat(1, 3, 1, 1), y[:, i : i + 1].repeat(1, 3, 1, 1))
            for i in range(fake.shape[1])
        ]
    )
    for f, r in chans:
        for w, a, b in zip(VGG_WEIGHTS, vgg(f), vgg(r), strict=True):
            per = per + w * (a - b.detach()).abs().mean() / len(chans)
    loss_g = lc.lambda_adv * adv + lc.lambda_fm * fm + lc.lambda_per * per
    if lc.lambda_l1 > 0:
        weight = torch.where(mask > 0, lc.lesion_weight, 1.0).expand_as(fake)
        loss_g = loss_g + lc.lambda_l1 * ((fake - y).abs() * weight).sum() / weight.sum()
    g = torch.autograd.grad(loss_g, list(G.parameters()))
    d = torch.autograd.grad(loss_d, list(D.parameters()))
    return g, d


CASES = [
    ("single phase, the study's losses", (1,), {}),
    ("three joint phases", (1, 2, 3), {"lambda_fm": 5.0, "lambda_adv": 2.0}),
    ("lesion-weighted L1 added", (1,), {"lambda_l1": 3.0, "lesion_weight": 10.0}),
    ("two phases (per-channel VGG), no perceptual weight", (1, 2), {"lambda_per": 0.0}),
]


@pytest.mark.parametrize(("name", "phases", "loss"), CASES, ids=[c[0] for c in CASES])
def test_step_gradients_equal_the_obvious_reference(name, phases, loss) -> None:
    torch.manual_seed(0)
    cfg = _cfg(phases, **loss)
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = torch.rand(2, cfg.in_channels, 32, 32) * 2 - 1
    y = torch.rand(2, cfg.out_channels, 32, 32) * 2 - 1
    mask = (torch.rand(2, 1, 32, 32) > 0.8).float()
    step = GanStep(G, D, cfg, "cpu")
    vgg = step.perceptual.features if step.perceptual else vgg19_features(None)
    g_ref, d_ref = obvious_gradients(copy.deepcopy(G), copy.deepcopy(D), vgg, x, y, mask, cfg)
    step.backward(x, y, mask)
    for p, r in zip(G.parameters(), g_ref, strict=True):
        torch.testing.assert_close(p.grad, r, rtol=1e-4, atol=1e-6)
    for p, r in zip(D.parameters(), d_ref, strict=True):
        torch.testing.assert_close(p.grad, r, rtol=1e-4, atol=1e-6)
    # the library's upstream-semantics step (the benchmark's reference) agrees too
    ref = ReferenceStep(copy.deepcopy(G), copy.deepcopy(D), cfg, "cpu")
    ref.perceptual = step.perceptual
    g_lib, d_lib = ref.backward(x, y, mask)
    for (n, g), r in zip(g_lib.items(), g_ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=n)
    for (n, d), r in zip(d_lib.items(), d_ref, strict=True):
        torch.testing.assert_close(d, r, rtol=1e-4, atol=1e-6, msg=n)


def test_a_full_step_moves_the_weights_as_upstream_does() -> None:
    torch.manual_seed(1)
    cfg = _cfg((1,), lambda_l1=1.0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    G2, D2, G0 = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(G)
    step, ref = GanStep(G, D, cfg, "cpu"), ReferenceStep(G2, D2, cfg, "cpu")
    ref.perceptual = step.perceptual
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    for _ in range(2):
        vals = step(x, y, None)
        ref(x, y, None)
    assert torch.isfinite(vals).all() and vals.shape == (7,)
    for a, b in zip(
        [*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()], strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    moved = [(a - b).abs().max() for a, b in zip(G.parameters(), G0.parameters(), strict=True)]
    assert max(moved) > 1e-4  # the steps did move the weights


def test_oversampling_repeats_tumour_slices_in_order() -> None:
    import numpy as np

    from dcesynth.training.run import oversample_tumour

    mask = np.zeros((4, 1, 2, 2), np.uint8)
    mask[1, 0, 0, 0] = mask[3, 0, 1, 1] = 1
    batch = {"mask": mask, "slice_index": np.arange(4)}
    out = oversample_tumour(batch, 3)
    assert out["slice_index"].tolist() == [0, 1, 1, 1, 2, 3, 3, 3]
    assert oversample_tumour(batch, 1) is batch
