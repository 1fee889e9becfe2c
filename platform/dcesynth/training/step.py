"""One pix2pixHD update: the efficient step every run uses, and upstream's step as a reference.

Both compute the same losses at the same parameters and so the same gradients (a test checks
it to float tolerance): upstream pix2pixHD evaluates every loss with the current G and D, then
steps G, then D. What upstream spends and we do not:

* **three discriminator passes**: D([x, G(x).detach()]) for D's loss, D([x, y]) for D's loss and
  for feature matching, D([x, G(x)]) for G's loss. The first and third have the same values;
  we run D once on the generated pair and once on the real pair, and let each loss take only
  the gradients it needs from that one graph;
* **D's weight gradients from G's loss**: upstream's ``loss_G.backward()`` fills D's ``.grad``
  and then throws it away (``zero_grad`` before D's step). ``backward(inputs=...)`` asks
  autograd for G's parameters only; through D it then computes input gradients, no weight
  gradients.

Per device, what pays (``dcectl bench train`` measures it): on a GPU bf16 autocast,
channels-last tensors and fused Adam; on a CPU for-each Adam, and bf16 autocast where the CPU
computes bf16 natively (AVX512-BF16 or AMX: 1.5× here), fp32 elsewhere. ``bf16: false``
keeps fp32 on every device.

Optional extras the study names as future work, off unless configured: a pixel L1
reconstruction term whose lesion pixels weigh ``lesion_weight`` times more.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcesynth.models.pix2pixhd.losses import (
    PerceptualLoss,
    feature_matching_loss,
    lsgan_loss,
    vgg19_features,
)
from dcesynth.training.config import TrainConfig

LOSS_NAMES = ("loss_d", "loss_g", "loss_adv", "loss_fm", "loss_per", "loss_l1", "train_l1")


def _adam(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    # fused kernels on CUDA; multi-tensor ("foreach") updates on CPU: one call for all params
    kind = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **kind)


def _perceptual(cfg: TrainConfig, device, vgg_weights) -> PerceptualLoss | None:
    if cfg.loss.lambda_per <= 0:
        return None
    return PerceptualLoss(vgg19_features(Path(vgg_weights) if vgg_weights else None)).to(device)


def weighted_l1(fake: torch.Tensor, real: torch.Tensor, mask, lesion_weight: float):
    """Mean |fake − real| with lesion pixels (``mask`` > 0) weighted ``lesion_weight``."""
    diff = (fake.float() - real.float()).abs()
    if mask is None or lesion_weight == 1.0:
        return diff.mean()
    w = 1.0 + (lesion_weight - 1.0) * (mask > 0).float()  # (B, 1, S, S) → every channel
    return (diff * w).sum() / (w.sum() * diff.shape[1])


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN's own test); emulated bf16
    would be slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: on a GPU, and on a CPU with native bf16, unless ``bf16: false``."""
    if not cfg.bf16:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Channels-last memory format: on GPU unless configured off; on CPU only when asked."""
    return device.type == "cuda" if cfg.channels_last is None else cfg.channels_last


class GanStep:
    """The efficient pix2pixHD update (see the module docstring). G and D may be DDP-wrapped.

    ``backward`` fills both networks' gradients without stepping (what the tests compare);
    calling the step also applies both optimisers.
    """

    def __init__(
        self, G: torch.nn.Module, D: torch.nn.Module, cfg: TrainConfig, device, vgg_weights=None
    ) -> None:
        self.G, self.D, self.cfg = G, D, cfg
        self.device = torch.device(device)
        self.perceptual = _perceptual(cfg, self.device, vgg_weights)
        self.g_params = [p for p in G.parameters() if p.requires_grad]
        self.d_params = [p for p in D.parameters() if p.requires_grad]
        self.opt_g = _adam(self.g_params, cfg, self.device)
        self.opt_d = _adam(self.d_params, cfg, self.device)
        self.memory_format = (
            torch.channels_last if channels_last(cfg, self.device) else torch.contiguous_format
        )
        self.autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, self.device)
        )

    def backward(self, x: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
        """Both losses at the current parameters, their gradients in ``.grad``; returns the
        detached losses (:data:`LOSS_NAMES`)."""
        cfg, lc = self.cfg, self.cfg.loss
        x = x.contiguous(memory_format=self.memory_format)
        y = y.contiguous(memory_format=self.memory_format)
        with self.autocast:
            fake = self.G(x)
            d_fake = self.D(torch.cat([x, fake], 1))  # once: D's loss and G's loss share it
            d_real = self.D(torch.cat([x, y], 1))  # once: D's loss and feature matching
            loss_d = 0.5 * (lsgan_loss(d_fake, False) + lsgan_loss(d_real, True))
            adv = lsgan_loss(d_fake, True)
            fm = feature_matching_loss(d_fake, d_real, cfg.model.n_layers_d)  # real detached
            per = self.perceptual(fake.float(), y) if self.perceptual else fake.new_zeros(())
            l1 = weighted_l1(fake, y, mask, lc.lesion_weight) if lc.lambda_l1 > 0 else None
            loss_g = lc.lambda_adv * adv + lc.lambda_fm * fm + lc.lambda_per * per
            if l1 is not None:
                loss_g = loss_g + lc.lambda_l1 * l1
        for p in (*self.g_params, *self.d_params):
            p.grad = None
        # D's loss → D's parameters only (fake enters D's loss without a path back into G);
        # it keeps D's small graph for G's pass, which then frees G's large one as it goes
        # (retaining G's graph instead cost 25 % of a CPU step: no buffer could be reused).
        # G's loss → G's parameters only (through D: input gradients, no weight gradients).
        loss_d.backward(inputs=self.d_params, retain_graph=True)
        loss_g.backward(inputs=self.g_params)
        l1v = l1.detach() if l1 is not None else fake.new_zeros(())
        plain = (fake.detach().float() - y.float()).abs().mean()
        return torch.stack([loss_d, loss_g, adv, fm, per, l1v, plain]).detach().float()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
        vals = self.backward(x, y, mask)
        self.opt_g.step()
        self.opt_d.step()
        return vals


class ReferenceStep:
    """Upstream pix2pixHD's update, as its code does it: three D passes, G's loss
    back-propagated into D as well, then G's step, then D's. For benchmarks and tests only."""

    def __init__(
        self, G: torch.nn.Module, D: torch.nn.Module, cfg: TrainConfig, device, vgg_weights=None
    ) -> None:
        self.G, self.D, self.cfg = G, D, cfg
        self.perceptual = _perceptual(cfg, torch.device(device), vgg_weights)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=betas)

    def _losses(self, x: torch.Tensor, y: torch.Tensor, mask=None):
        cfg, lc = self.cfg, self.cfg.loss
        fake = self.G(x)
        pred_fake_pool = self.D(torch.cat([x, fake.detach()], 1))
        pred_real = self.D(torch.cat([x, y], 1))
        pred_fake = self.D(torch.cat([x, fake], 1))
        loss_d = 0.5 * (lsgan_loss(pred_fake_pool, False) + lsgan_loss(pred_real, True))
        adv = lsgan_loss(pred_fake, True)
        fm = feature_matching_loss(pred_fake, pred_real, cfg.model.n_layers_d)
        per = self.perceptual(fake, y) if self.perceptual else fake.new_zeros(())
        loss_g = lc.lambda_adv * adv + lc.lambda_fm * fm + lc.lambda_per * per
        if lc.lambda_l1 > 0:
            loss_g = loss_g + lc.lambda_l1 * weighted_l1(fake, y, mask, lc.lesion_weight)
        return loss_g, loss_d

    def backward(self, x: torch.Tensor, y: torch.Tensor, mask=None) -> tuple[dict, dict]:
        """Upstream's two backward passes; returns (G's gradients, D's gradients) as each
        optimiser would see them at its step."""
        loss_g, loss_d = self._losses(x, y, mask)
        self.opt_g.zero_grad()
        loss_g.backward()  # also fills D's .grad, which D's zero_grad below discards
        g_grads = {n: p.grad.clone() for n, p in self.G.named_parameters()}
        self.opt_d.zero_grad()
        loss_d.backward()
        return g_grads, {n: p.grad.clone() for n, p in self.D.named_parameters()}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, mask=None) -> None:
        loss_g, loss_d = self._losses(x, y, mask)
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
