"""The conditional rectified flow against hand-computed values on tiny tensors: its training
input and target, Euler steps, exact recovery by a sampler whose network predicts the true
velocity, and determinism with a seed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcesynth.models.flow import rectified
from dcesynth.models.flow.config import RectifiedFlowConfig


def flow(**kw) -> RectifiedFlowConfig:
    return RectifiedFlowConfig(channels=(8, 16), norm_num_groups=8, num_head_channels=8, **kw)


class Recorder(nn.Module):
    """Predicts velocity 0 and keeps what MONAI's inferer handed it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, timesteps, context=None):
        self.seen.append((x.clone(), timesteps.clone()))
        return torch.zeros_like(x[:, :-1])  # every channel but the condition


class Velocity(nn.Module):
    """v = f(x_t, t/T) for a given f (the last input channel is the condition)."""

    def __init__(self, f, T: int) -> None:
        super().__init__()
        self.f, self.T = f, T

    def forward(self, x, timesteps, context=None):
        return self.f(x[:, :-1], timesteps.float().view(-1, 1, 1, 1) / self.T)


PRE = torch.tensor([[[[0.5, -0.25], [0.0, 1.0]]]])  # (1, 1, 2, 2)
POST = torch.tensor([[[[0.75, 0.25], [-0.5, 1.0]]]])


def test_training_input_and_target_are_the_straight_path() -> None:
    """Subtraction target, noise start: x₀ = post − pre; the network sees
    [(1 − t/T)·x₀ + (t/T)·x₁, pre]; with v = 0 the loss is mean((x₀ − x₁)²)."""
    m = flow(target="subtraction", start="noise", train_timesteps=4, sampling_steps=1)
    net = Recorder()
    gen = torch.Generator().manual_seed(3)
    loss, err = rectified.training_loss(net, PRE, POST, None, m, gen)
    x0 = torch.tensor([[[[0.25, 0.5], [-0.5, 0.0]]]])  # by hand
    x1 = torch.randn((1, 1, 2, 2), generator=torch.Generator().manual_seed(3))  # the 1st draw
    ((x, t),) = net.seen
    assert x.shape == (1, 2, 2, 2) and 0 <= int(t) < 4
    s = int(t) / 4
    torch.testing.assert_close(x[:, :1], (1 - s) * x0 + s * x1)
    torch.testing.assert_close(x[:, 1:], PRE)
    torch.testing.assert_close(loss, ((x0 - x1) ** 2).mean())
    # the one-step estimate x_t + v·t/T with v = 0 is x_t itself
    torch.testing.assert_close(err, ((1 - s) * x0 + s * x1 - x0).abs().mean())


def test_mask_channel_and_bridge_start() -> None:
    """The mask joins the target as 2·mask − 1; the bridge starts at pre (target post) plus
    bridge_noise·noise, the mask's channel at bridge_noise·noise alone."""
    m = flow(target="post", start="pre", bridge_noise=0.5, mask_channel=True)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    x0 = rectified.flow_target(PRE, POST, mask, m)
    torch.testing.assert_close(x0[:, 0], POST[:, 0])
    torch.testing.assert_close(x0[:, 1], torch.tensor([[[1.0, -1.0], [-1.0, -1.0]]]))
    noise = torch.ones(1, 2, 2, 2)
    x1 = rectified.flow_start(PRE, noise, 1, m)
    torch.testing.assert_close(x1[:, 0], PRE[:, 0] + 0.5)
    torch.testing.assert_close(x1[:, 1], torch.full((1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="mask_channel"):
        rectified.flow_target(PRE, POST, None, m)


def test_euler_steps_by_hand() -> None:
    """Bridge from pre without noise, target post, v = −x_t, 2 steps of T = 4: timesteps 4, 2
    (dt = 1/2 each), so x ← x/2 twice: pre/4."""
    m = flow(target="post", start="pre", bridge_noise=0.0, train_timesteps=4, sampling_steps=2)
    net = Velocity(lambda x, s: -x, 4)
    out, sd = rectified.sample(net, PRE, 1, m, seeds=[0])
    assert sd is None
    torch.testing.assert_close(out, PRE / 4)


def test_one_step_with_the_true_velocity_recovers_the_target_exactly() -> None:
    """At t = T the true velocity is x₀ − x₁ = x₀ − x_t; one Euler step of size 1 lands on x₀.
    Dyadic values: the float arithmetic is exact."""
    m = flow(target="post", start="pre", bridge_noise=0.0, sampling_steps=1)
    net = Velocity(lambda x, s: POST - x, m.train_timesteps)
    out, _ = rectified.sample(net, PRE, 1, m, seeds=[7])
    assert torch.equal(out, POST)


def test_true_velocity_from_noise_with_subtraction_several_steps_and_samples() -> None:
    """From noise, subtraction target, 5 steps, K = 3: every sample reaches x₀ (to float
    rounding), so the mean is post and the spread 0."""
    m = flow(target="subtraction", start="noise", sampling_steps=5, samples=3)
    x0 = POST - PRE
    net = Velocity(lambda x, s: (x0 - x) / s, m.train_timesteps)  # x₁ = (x_t − (1−s)x₀)/s
    out, sd = rectified.sample(net, PRE, 1, m, seeds=[1], spread=True)
    torch.testing.assert_close(out, POST, atol=1e-5, rtol=0)
    assert sd is not None and float(sd.max()) < 1e-3


def test_sampling_is_deterministic_per_slice_seed() -> None:
    """Same seeds, same result; another seed or sampling_seed, another; K samples differ."""
    torch.manual_seed(0)
    from dcesynth.models.flow.network import build_unet

    m = flow(sampling_steps=2, samples=2)
    net = build_unet(m, 1).eval()
    pre = torch.rand(2, 1, 8, 8) * 2 - 1
    a, sa = rectified.sample(net, pre, 1, m, seeds=[5, 6], spread=True)
    b, _ = rectified.sample(net, pre, 1, m, seeds=[5, 6])
    c, _ = rectified.sample(net, pre, 1, m, seeds=[5, 9])
    d, _ = rectified.sample(net, pre, 1, m.model_copy(update={"sampling_seed": 1}), seeds=[5, 6])
    assert torch.equal(a, b)
    assert torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert not torch.equal(a, d)
    assert float(sa.min()) > 0  # two different samples per pixel
    with pytest.raises(ValueError, match="one per slice"):
        rectified.sample(net, pre, 1, m, seeds=[5])


def test_training_draws_come_from_the_generator_only() -> None:
    """Two nets from one seed, trained on one generator's draws, stay identical; the global
    generator is left where it was."""
    from dcesynth.models.flow.network import build_unet

    m = flow(timestep_sampling="logit-normal", mask_channel=True)
    losses, weights = [], []
    for _ in range(2):
        torch.manual_seed(1)
        net = build_unet(m, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(4)
        state = torch.random.get_rng_state()
        mask = torch.zeros(2, 1, 8, 8)
        for _ in range(2):
            loss, _ = rectified.training_loss(
                net, torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8), mask, m, gen
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert torch.equal(torch.random.get_rng_state(), state)
        losses.append(float(loss.detach()))
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert losses[0] == losses[1] and torch.equal(weights[0], weights[1])
