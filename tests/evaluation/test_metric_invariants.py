"""Invariants any honest metric table satisfies, checked on our own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from dcesynth.evaluation.metrics import paired_metrics, summarise


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_mse_is_at_least_mean_mae_squared(seed: int) -> None:
    """Jensen: per pair MSE ≥ MAE², and over pairs mean(MSE) ≥ mean(MAE²) ≥ mean(MAE)².

    A published table with MSE < MAE² cannot hold a true MSE on the MAE's scale (README).
    """
    rng = np.random.default_rng(seed)
    real = rng.integers(0, 256, (12, 32, 32), dtype=np.uint8)
    fake = np.clip(real + rng.normal(0, rng.uniform(1, 60), real.shape), 0, 255).astype(np.uint8)
    v = paired_metrics(real, fake, names=("mae", "mse"))
    assert np.all(v["mse"] >= v["mae"] ** 2 - 1e-9)
    s = summarise(v)
    assert s["mse"]["mean"] >= s["mae"]["mean"] ** 2
    # equality only for a constant |difference|: a uniform offset of 10 grey levels
    a = rng.integers(0, 200, (1, 16, 16), dtype=np.uint8)
    w = paired_metrics(a, a + 10, names=("mae", "mse"))
    assert w["mse"][0] == pytest.approx(w["mae"][0] ** 2) == pytest.approx(100.0)


def test_psnr_is_a_function_of_mse() -> None:
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, (5, 24, 24)).astype(np.float32)
    fake = real + rng.normal(0, 5, real.shape).astype(np.float32)
    v = paired_metrics(real, fake, names=("mse", "psnr"))
    np.testing.assert_allclose(v["psnr"], 10 * np.log10(255.0**2 / v["mse"]), rtol=1e-5)
