"""pix2pixHD as a generator family: the study's networks (models/pix2pixhd/), trained by the
efficient GAN step (training/step.py), generating with one forward pass and no randomness."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dcesynth.models.pix2pixhd.networks import (
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
)
from dcesynth.training.config import TrainConfig
from dcesynth.training.families import GeneratorFamily
from dcesynth.training.step import LOSS_NAMES, GanStep


def build_generator(cfg: TrainConfig) -> torch.nn.Module:
    m = cfg.model
    if m.generator == "local":
        return LocalEnhancer(
            cfg.in_channels, cfg.out_channels, m.ngf, m.n_downsample, m.n_blocks, m.n_blocks_local
        )
    return GlobalGenerator(cfg.in_channels, cfg.out_channels, m.ngf, m.n_downsample, m.n_blocks)


def build_discriminator(cfg: TrainConfig) -> torch.nn.Module:
    m = cfg.model
    return MultiscaleDiscriminator(cfg.in_channels + cfg.out_channels, m.ndf, m.n_layers_d, m.num_d)


def model_io(
    pre: torch.Tensor, post: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and target channels as the study used them (replicated to 3 where configured)."""
    x = pre.expand(-1, 3, -1, -1) if cfg.model.replicate_input else pre
    y = post.expand(-1, 3, -1, -1) if cfg.out_channels == 3 and post.shape[1] == 1 else post
    return x, y


class _Step:
    """GanStep on the study's channels; it draws nothing, so ``gen`` is not used."""

    loss_names = LOSS_NAMES

    def __init__(self, G, D, cfg: TrainConfig, device, vgg_weights) -> None:
        self.gan, self.cfg = GanStep(G, D, cfg, device, vgg_weights), cfg
        self.optimizers = {"opt_g": self.gan.opt_g, "opt_d": self.gan.opt_d}

    def __call__(self, pre, post, mask, gen: torch.Generator) -> torch.Tensor:
        x, y = model_io(pre, post, self.cfg)
        return self.gan(x, y, mask)


class Pix2PixHD(GeneratorFamily):
    name = "pix2pixhd"

    def generator(self, cfg: TrainConfig) -> torch.nn.Module:
        return build_generator(cfg)

    def networks(self, cfg: TrainConfig) -> dict[str, torch.nn.Module]:
        G = build_generator(cfg)  # G before D: the initial weights of every run so far
        return {"G": G, "D": build_discriminator(cfg)}

    def step(self, nets, cfg: TrainConfig, device, vgg_weights=None) -> _Step:
        return _Step(nets["G"], nets["D"], cfg, device, vgg_weights)

    def generate(
        self,
        G: torch.nn.Module,
        pre: torch.Tensor,
        cfg: TrainConfig,
        seeds: Sequence[int],
        spread: bool = False,
    ) -> tuple[torch.Tensor, None]:
        x = pre.expand(-1, 3, -1, -1) if cfg.model.replicate_input else pre
        y = G(x).float()
        if cfg.out_channels == 3 and len(cfg.phases) == 1:
            y = y.mean(1, keepdim=True)  # three replicas of one phase
        return y, None

    def evaluations_per_slice(self, cfg: TrainConfig) -> int:
        return 1

    def describe(self, cfg: TrainConfig) -> dict:
        m = cfg.model
        return {
            "architecture": f"pix2pixHD {m.generator}",
            "details": f"ngf {m.ngf}, {m.n_downsample} down, {m.n_blocks} blocks",
            "in_channels": cfg.in_channels,
            "out_channels": cfg.out_channels,
            "replicate_input": m.replicate_input,
            "evaluations_per_slice": 1,
        }

    def needs_vgg(self, cfg: TrainConfig) -> bool:
        return cfg.loss.lambda_per > 0 and cfg.loss.perceptual_network == "vgg19_imagenet"

    def epoch_facts(self, cfg: TrainConfig) -> dict:
        return {"perceptual_network": cfg.loss.perceptual_network}
