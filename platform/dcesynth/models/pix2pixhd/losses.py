"""pix2pixHD losses, each with its own weight (the upstream code ties λ_fm and λ_per together).

* LSGAN adversarial: MSE of each discriminator's patch map to 1 (real) or 0 (fake), summed
  over the discriminator scales, as upstream.
* Feature matching: L1 between the discriminator features of real and generated pairs, each
  weighted 4/(n_layers + 1) / num_D, as upstream.
* VGG19 perceptual: L1 between VGG19 activations (relu1_1 … relu5_1) weighted 1/32, 1/16, 1/8,
  1/4, 1; images go in as upstream does it, in [-1, 1] without ImageNet normalisation. A
  3-channel output goes in as it is (the study's replicated single phase, or its three joint
  phases as RGB, exactly what upstream did); any other channel count goes in one channel at a
  time, replicated to RGB, and the per-channel losses are averaged.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # ends: relu1_1 … relu5_1
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def lsgan_loss(predictions: list[list[torch.Tensor]], target_is_real: bool) -> torch.Tensor:
    """Σ over discriminators of mean((D(x)[-1] − target)²)."""
    target = 1.0 if target_is_real else 0.0
    return sum(F.mse_loss(p[-1], torch.full_like(p[-1], target)) for p in predictions)


def feature_matching_loss(
    fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int
) -> torch.Tensor:
    """Σ_D Σ_layers (4/(n_layers+1))·(1/num_D)·L1(D_fake, D_real.detach()); last map excluded."""
    w = 4.0 / (n_layers + 1) / len(fake)
    loss = fake[0][0].new_zeros(())
    for f_d, r_d in zip(fake, real, strict=True):
        for f, r in zip(f_d[:-1], r_d[:-1], strict=True):
            loss = loss + w * F.l1_loss(f, r.detach())
    return loss


class VGGFeatures(nn.Module):
    """The five VGG19 slices of the perceptual loss; frozen.

    Args:
        features: a VGG19 ``features`` module (or any with the same layer indices).
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.slices = nn.ModuleList(features[a:b] for a, b in VGG_SLICES)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out


def vgg19_features(weights: Path | None) -> VGGFeatures:
    """VGG19 from a verified local file (``weights``), or randomly initialised when None.

    A random network is only for runs that say so in their config (see the training config's
    ``perceptual_network``); it is not the study's loss.
    """
    from torchvision.models import vgg19

    net = vgg19(weights=None)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return VGGFeatures(net.features)


class PerceptualLoss(nn.Module):
    """Σ_i w_i·L1(VGG_i(fake), VGG_i(real)); see the module docstring for the channels."""

    def __init__(self, features: VGGFeatures, weights: tuple[float, ...] = VGG_WEIGHTS) -> None:
        super().__init__()
        if len(weights) != len(features.slices):
            raise ValueError(f"need {len(features.slices)} slice weights, got {len(weights)}")
        self.features, self.weights = features, weights

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if fake.shape != real.shape:
            raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ")
        c = fake.shape[1]
        if c == 3:  # a single phase replicated to 3 channels, as the study trains it
            groups = [(fake, real)]
        else:
            groups = [
                (fake[:, i : i + 1].expand(-1, 3, -1, -1), real[:, i : i + 1].expand(-1, 3, -1, -1))
                for i in range(c)
            ]
        loss = fake.new_zeros(())
        for f, r in groups:
            for w, a, b in zip(self.weights, self.features(f), self.features(r), strict=True):
                loss = loss + w * F.l1_loss(a, b.detach())
        return loss / len(groups)
