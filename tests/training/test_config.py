"""The study's schedule and config checks."""

from __future__ import annotations

import itertools

import pytest

from dcesynth.config import ConfigError, build_config
from dcesynth.training.config import TrainConfig, learning_rate


def test_schedule_is_upstream_pix2pixhd() -> None:
    """200 epochs: 2e-4 for epochs 1..101 (0-based 0..100), then −2e-6 per epoch; the last
    epoch trains at 2e-6 (upstream lowers the rate after each epoch > niter)."""
    cfg = TrainConfig(epochs=200)
    rates = [learning_rate(e, cfg) for e in range(200)]
    assert rates[:101] == [2e-4] * 101
    assert rates[101] == pytest.approx(2e-4 - 2e-6)
    assert rates[199] == pytest.approx(2e-6)
    steps = [a - b for a, b in itertools.pairwise(rates[100:])]
    assert steps == pytest.approx([2e-6] * 99)


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [(1, [1.0]), (2, [1.0, 1.0]), (4, [1, 1, 1, 0.5]), (5, [1, 1, 1, 1, 0.5])],
)
def test_schedule_small(epochs: int, expected: list[float]) -> None:
    cfg = TrainConfig(epochs=epochs, lr=1.0)
    assert [learning_rate(e, cfg) for e in range(epochs)] == pytest.approx(expected)


def test_channels_follow_phases() -> None:
    assert (TrainConfig().in_channels, TrainConfig().out_channels) == (3, 3)
    assert TrainConfig(phases=(1, 2, 3, 4)).out_channels == 4
    cfg = build_config(
        TrainConfig,
        None,
        {"phases": (2,), "model": {"replicate_single_phase": False, "replicate_input": False}},
    )
    assert (cfg.in_channels, cfg.out_channels) == (1, 1)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"loss": {"lambda_fm": -1}}, "loss.lambda_fm"),
        ({"epochs": 0}, "--epochs"),
        ({"phases": (3, 1)}, "--phases"),
        ({"model": {"ngf": 64, "n_blockz": 2}}, "n_blockz"),
        ({"loss": {"perceptual_network": "vgg16"}}, "vgg19_random"),
    ],
)
def test_bad_config_names_the_key(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        build_config(TrainConfig, None, overrides)
