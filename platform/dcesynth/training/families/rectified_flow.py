"""Conditional rectified flow as a generator family: MONAI's UNet, scheduler and inferer
(models/flow/), one network and one Adam, bf16 autocast where training's policy says it pays
(training/step.py's ``use_bf16``: a GPU, or a CPU with native bf16)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dcesynth.models.flow import rectified
from dcesynth.models.flow.network import build_unet
from dcesynth.training.config import TrainConfig
from dcesynth.training.families import GeneratorFamily
from dcesynth.training.step import channels_last, use_bf16

# loss_g: the flow-matching loss on the velocity; train_l1: mean |x̂₀ − x₀| of the one-step
# estimate, the counterpart of pix2pixHD's |G(x) − y| (both are what the loss curve plots)
FLOW_LOSS_NAMES = ("loss_g", "train_l1")


class FlowStep:
    """One flow-matching update of the velocity network (DDP-wrapped or not)."""

    loss_names = FLOW_LOSS_NAMES

    def __init__(self, net: torch.nn.Module, cfg: TrainConfig, device) -> None:
        self.net, self.cfg = net, cfg
        self.device = torch.device(device)
        self.params = [p for p in net.parameters() if p.requires_grad]
        # fused kernels on CUDA, multi-tensor updates on CPU: as GanStep
        kind = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        opt = torch.optim.Adam(self.params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **kind)
        self.optimizers = {"opt_g": opt}
        self.memory_format = (
            torch.channels_last if channels_last(cfg, self.device) else torch.contiguous_format
        )
        self.autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, self.device)
        )

    def __call__(self, pre, post, mask, gen: torch.Generator) -> torch.Tensor:
        pre = pre.contiguous(memory_format=self.memory_format)
        loss, err = rectified.training_loss(
            self.net, pre, post, mask, self.cfg.model, gen, self.autocast
        )
        for p in self.params:
            p.grad = None
        loss.backward()
        self.optimizers["opt_g"].step()
        return torch.stack([loss.detach(), err]).float()


class RectifiedFlow(GeneratorFamily):
    name = "rectified_flow"

    def generator(self, cfg: TrainConfig) -> torch.nn.Module:
        return build_unet(cfg.model, len(cfg.phases))

    def step(self, nets, cfg: TrainConfig, device, vgg_weights=None) -> FlowStep:
        return FlowStep(nets["G"], cfg, device)

    def generate(
        self,
        G: torch.nn.Module,
        pre: torch.Tensor,
        cfg: TrainConfig,
        seeds: Sequence[int],
        spread: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return rectified.sample(G, pre, len(cfg.phases), cfg.model, seeds, spread)

    def evaluations_per_slice(self, cfg: TrainConfig) -> int:
        return rectified.evaluations_per_slice(cfg.model)

    def describe(self, cfg: TrainConfig) -> dict:
        m = cfg.model
        return {
            "architecture": "conditional rectified flow (MONAI DiffusionModelUNet)",
            "details": (
                f"channels {list(m.channels)}, target {m.target}, start {m.start}; "
                f"{m.sampling_steps} Euler steps × {m.samples} sample(s), seed {m.sampling_seed}"
            ),
            "in_channels": cfg.in_channels,
            "out_channels": cfg.out_channels,
            "replicate_input": False,
            "evaluations_per_slice": self.evaluations_per_slice(cfg),
        }
