"""Conditional rectified flow: its training target, its start image and its sampler.

MONAI's conventions (``RFlowScheduler``, ``DiffusionInferer``), on images in [-1, 1]:

* training: x_t = (1 − t/T)·x₀ + (t/T)·x₁ for a drawn timestep t ∈ [0, T) (``add_noise``,
  with x₁ in the place of the noise); the network sees [x_t, pre] (``concat`` mode) and is
  trained towards the velocity x₀ − x₁;
* sampling: from x₁ at t = T, Euler steps x ← x + v·(t − t_next)/T down to t = 0
  (``RFlowScheduler.step`` inside ``DiffusionInferer.sample``).

x₀ (the target) is the post-contrast image or the subtraction post − pre, with the tumour
mask (scaled to ±1) as one more channel when ``mask_channel`` is set; x₁ (the start) is
Gaussian noise, or the bridge's "copy the pre-contrast image" guess plus ``bridge_noise``·noise.
The mask is never an input: sampling generates its channel along with the others and drops it.

Randomness is explicit: training draws from a ``torch.Generator`` the caller seeds (a resumed
run repeats it); sampling draws each slice's noise from a generator seeded by that slice's own
seed, so a slice's result does not depend on the batch it came in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dcesynth.models.flow.config import RectifiedFlowConfig


def scheduler(m: RectifiedFlowConfig):
    """MONAI's ``RFlowScheduler`` as the config asks (2-D: no resolution-dependent shift)."""
    from monai.networks.schedulers import RFlowScheduler

    return RFlowScheduler(
        num_train_timesteps=m.train_timesteps,
        use_discrete_timesteps=True,
        sample_method=m.timestep_sampling,
        use_timestep_transform=False,
    )


def flow_target(
    pre: torch.Tensor, post: torch.Tensor, mask: torch.Tensor | None, m: RectifiedFlowConfig
) -> torch.Tensor:
    """x₀: post (N, P, S, S) or post − pre, then 2·mask − 1 when the mask is learned.

    Args:
        pre: (N, 1, S, S) in [-1, 1].
        post: (N, P, S, S) in [-1, 1].
        mask: (N, 1, S, S) in {0, 1}; needed only with ``mask_channel``.
        m: the family's config.

    Raises:
        ValueError: ``mask_channel`` without a mask.
    """
    x0 = post - pre if m.target == "subtraction" else post
    if m.mask_channel:
        if mask is None:
            raise ValueError("model.mask_channel: training needs the tumour mask of each slice")
        x0 = torch.cat([x0, 2 * mask.to(x0.dtype) - 1], 1)
    return x0


def flow_start(
    pre: torch.Tensor, noise: torch.Tensor, phases: int, m: RectifiedFlowConfig
) -> torch.Tensor:
    """x₁ for ``noise`` (N, C, S, S): the noise itself, or the bridge's start.

    The bridge starts from what copying the pre-contrast image predicts — pre for target
    ``post``, 0 for ``subtraction`` (and 0 for a mask channel) — plus ``bridge_noise``·noise.
    """
    if m.start == "noise":
        return noise
    guess = torch.zeros_like(noise)
    if m.target == "post":
        guess[:, :phases] = pre.to(noise.dtype)  # (N, 1) broadcasts over the phases
    return guess + m.bridge_noise * noise


def to_post(x0: torch.Tensor, pre: torch.Tensor, phases: int, m: RectifiedFlowConfig):
    """A sampled x₀ → post-contrast phases (N, P, S, S): the mask channel dropped, pre added
    back to a subtraction."""
    x = x0[:, :phases]
    return x + pre.to(x.dtype) if m.target == "subtraction" else x


def draw_timesteps(sched, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` training timesteps drawn by MONAI's ``sample_timesteps`` (uniform or logit-normal),
    from ``gen`` rather than the global generator: it seeds a private copy of the CPU one."""
    seed = int(torch.randint(2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return sched.sample_timesteps(torch.empty(n, 1, 1, 1))


def training_loss(
    net: torch.nn.Module,
    pre: torch.Tensor,
    post: torch.Tensor,
    mask: torch.Tensor | None,
    m: RectifiedFlowConfig,
    gen: torch.Generator,
    autocast=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow-matching loss of one batch and, detached, the mean |x̂₀ − x₀| of the phases
    (x̂₀ = x_t + v·t/T, the one-step estimate: a readable training curve).

    Args:
        net: the velocity network (DDP-wrapped or not).
        pre, post, mask: the batch in model range (see :func:`flow_target`).
        m: the family's config.
        gen: a CPU generator for the noise and the timesteps.
        autocast: a context for the network's forward (bf16), or None.
    """
    import contextlib

    import torch.nn.functional as F
    from monai.inferers import DiffusionInferer

    sched = scheduler(m)
    x0 = flow_target(pre, post, mask, m).float()
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    x1 = flow_start(pre, noise, post.shape[1], m)
    t = draw_timesteps(sched, len(x0), gen).to(x0.device)
    with autocast or contextlib.nullcontext():
        v = DiffusionInferer(sched)(
            inputs=x0, diffusion_model=net, noise=x1, timesteps=t, condition=pre, mode="concat"
        )
    v = v.float()
    want = x0 - x1
    loss = F.mse_loss(v, want) if m.loss == "mse" else F.l1_loss(v, want)
    with torch.no_grad():
        x_t = sched.add_noise(original_samples=x0, noise=x1, timesteps=t)
        frac = (t.float() / m.train_timesteps).view(-1, 1, 1, 1)
        p = post.shape[1]
        err = (x_t + v * frac - x0)[:, :p].abs().mean()
    return loss, err


@torch.no_grad()
def sample(
    net: torch.nn.Module,
    pre: torch.Tensor,
    phases: int,
    m: RectifiedFlowConfig,
    seeds: Sequence[int],
    spread: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The mean of ``m.samples`` samples per slice, and their per-pixel standard deviation.

    Args:
        net: the velocity network, in eval mode.
        pre: (N, 1, S, S) in [-1, 1], the condition.
        phases: post phases generated.
        m: the family's config (steps, samples K).
        seeds: one per slice; slice i's K start images come from a generator seeded by it
            and ``m.sampling_seed``.
        spread: also return the standard deviation over the K samples (0 when K = 1).

    Returns:
        (post (N, P, S, S) float32, its spread or None); unclamped.

    Raises:
        ValueError: a seed count that is not one per slice.
    """
    from monai.inferers import DiffusionInferer

    if len(seeds) != len(pre):
        raise ValueError(f"sample: {len(seeds)} seeds for {len(pre)} slices; give one per slice")
    n, _, h, w = pre.shape
    c = m.flow_channels(phases)
    sched = scheduler(m)
    # timesteps stay on the CPU: the inferer appends a CPU 0 to them (and moves each t itself)
    sched.set_timesteps(m.sampling_steps)
    inferer = DiffusionInferer(sched)
    noise = torch.stack(
        [
            torch.randn((m.samples, c, h, w), generator=_generator(m.sampling_seed, s))
            for s in seeds
        ],
        1,
    )  # (K, N, C, S, S)
    mean = torch.zeros((n, phases, h, w), device=pre.device)
    sq = torch.zeros_like(mean) if spread else None
    for k in range(m.samples):
        x1 = flow_start(pre, noise[k].to(pre.device), phases, m)
        x0 = inferer.sample(
            input_noise=x1, diffusion_model=net, conditioning=pre, mode="concat", verbose=False
        )
        post = to_post(x0.float(), pre.float(), phases, m)
        mean += post
        if sq is not None:
            sq += post * post
    mean /= m.samples
    if sq is None:
        return mean, None
    var = (sq / m.samples - mean * mean).clamp(min=0)
    return mean, var.sqrt()


def _generator(seed: int, slice_seed: int) -> torch.Generator:
    """A CPU generator for one slice: the config's seed and the slice's (a tuple of ints hashes
    the same in every process)."""
    return torch.Generator().manual_seed(hash((int(seed), int(slice_seed))) % 2**63)


def evaluations_per_slice(m: RectifiedFlowConfig) -> int:
    """Network evaluations a slice costs: one per step, per sample."""
    return m.sampling_steps * m.samples
