"""SAMe, the Scaled Aggregate Measure: one number to pick a checkpoint when metrics disagree.

**Population SAMe** (the study's definition), over a set of evaluated checkpoints:

1. for each metric, min-max scale its values across the set to [0, 1];
2. flip higher-is-better metrics (SSIM, MS-SSIM, PSNR): scaled ← 1 − scaled, so 0 is best;
3. SAMe = the unweighted mean of the scaled metrics. The lowest SAMe is selected; ties go to
   the earlier checkpoint.

Edge cases (the study does not say; these are our choices): a metric that is constant over the
set carries no information and scales to 0 for every checkpoint; with one checkpoint every
metric is constant, so its SAMe is 0. A missing or non-finite value (a diverged checkpoint)
makes that checkpoint's SAMe NaN — it is never selected — and is left out of the min and max
the others are scaled by.

**Anchored SAMe**, for training and sweeps, where the final set is not known yet: each metric is
scaled between its ideal value (0 for MAE, MSE, FID, LPIPS; 1 for SSIM, MS-SSIM) and the value
of the "real pre vs real post" baseline on the same validation data:
``scaled = (value − ideal) / (baseline − ideal)``, not clipped. 0 is perfect; 1.0 means "no
better than copying the input"; above 1 is worse than that. Unlike population SAMe, a trial's
number does not change when other trials are added, so Tune's schedulers can compare it across
trials and epochs. PSNR has no finite ideal and cannot be anchored.

**FRD** (``frd``, ``frd_box``; :mod:`dcesynth.evaluation.frd`) is reported as frd-score v1
reports it, log(d_F²): lower is better, it can be negative, and identical sets give −inf, which
neither min-max scaling nor anchoring could use. Both SAMe variants therefore take it back to
d_F² = exp(FRD) first (:func:`linear`) — a squared Fréchet distance like FID, ideal 0, so −inf
becomes 0, the best value, instead of a non-finite one that would disqualify the checkpoint.
Anchored, its term is d_F² / d_F²(baseline) = exp(FRD − FRD_baseline); a baseline of −inf
(the input already has the target's distribution) cannot anchor it and is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from dcesynth.evaluation.metrics import HIGHER_IS_BETTER

DEFAULT_METRICS = ("fid_img", "fid_rad", "ssim", "mae", "mse")
IDEAL = {
    "mae": 0.0,
    "mse": 0.0,
    "fid_img": 0.0,
    "fid_rad": 0.0,
    "lpips": 0.0,
    "ssim": 1.0,
    "ms_ssim": 1.0,
    "frd": 0.0,  # ideal of d_F² = exp(FRD): SAMe scales FRD on that scale (see `linear`)
    "frd_box": 0.0,
}
KNOWN = frozenset(IDEAL) | {"psnr"}
LOG_SCALE = frozenset({"frd", "frd_box"})  # reported as log(d_F²)


def linear(metric: str, value: float) -> float:
    """The value SAMe scales: exp(value) for a log-scale metric (FRD: log(d_F²) → d_F², −inf →
    0.0, NaN stays NaN), the value itself otherwise.

    Args:
        metric: the metric's name.
        value: its raw value.
    """
    v = float(value)
    if metric not in LOG_SCALE or math.isnan(v):
        return v
    return 0.0 if v == -math.inf else math.exp(min(v, 700.0))  # exp(700) ≈ 1e304: no overflow


def _check(metrics: Sequence[str]) -> None:
    if not metrics:
        raise ValueError("SAMe needs at least one metric")
    if unknown := [m for m in metrics if m not in KNOWN]:
        raise ValueError(f"unknown SAMe metrics {unknown}; valid: {sorted(KNOWN)}")


def scaled(
    table: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, dict[str, float]]:
    """Population scaling: {checkpoint: {metric: value on [0, 1], lower is better}}.

    Args:
        table: {checkpoint: {metric: raw value}} (insertion order = checkpoint order).
        metrics: which metrics enter SAMe.
    """
    _check(metrics)
    out: dict[str, dict[str, float]] = {k: {} for k in table}
    for m in metrics:
        vals = {k: linear(m, row.get(m, math.nan)) for k, row in table.items()}
        ok = [v for v in vals.values() if math.isfinite(v)]
        lo, hi = (min(ok), max(ok)) if ok else (math.nan, math.nan)
        for k, v in vals.items():
            if not math.isfinite(v):
                s = math.nan
            elif hi == lo:
                s = 0.0  # constant metric: no information, no penalty
            else:
                s = (v - lo) / (hi - lo)
                s = 1.0 - s if m in HIGHER_IS_BETTER else s
            out[k][m] = s
    return out


def population_same(
    table: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, float]:
    """{checkpoint: SAMe} — the unweighted mean of the scaled metrics (NaN if any is NaN)."""
    sc = scaled(table, metrics)
    return {k: float(np.mean([row[m] for m in metrics])) for k, row in sc.items()}


def select(same: Mapping[str, float]) -> str:
    """The checkpoint with the lowest finite SAMe (the earlier one on a tie).

    Raises:
        ValueError: when no checkpoint has a finite SAMe.
    """
    ok = [(v, i, k) for i, (k, v) in enumerate(same.items()) if math.isfinite(v)]
    if not ok:
        raise ValueError(f"no checkpoint has a finite SAMe: {dict(same)}")
    return min(ok)[2]


def anchored_same(
    values: Mapping[str, float],
    baseline: Mapping[str, float],
    metrics: Sequence[str] = ("ssim", "mae", "mse"),
) -> float:
    """Anchored SAMe of one evaluation: the mean of (value − ideal) / (baseline − ideal).

    Args:
        values: the checkpoint's metrics.
        baseline: the same metrics for real pre vs real post on the same data.
        metrics: which enter (PSNR cannot: no finite ideal).

    Raises:
        ValueError: unknown or un-anchorable metric, a metric missing from either mapping, or
            a baseline equal to the ideal (the input already is the target).
    """
    _check(metrics)
    terms = []
    for m in metrics:
        if m not in IDEAL:
            raise ValueError(f"{m!r} has no finite ideal value and cannot be anchored")
        if m not in values or m not in baseline:
            raise ValueError(
                f"anchored SAMe: {m!r} missing ({sorted(values)} / {sorted(baseline)})"
            )
        span = linear(m, baseline[m]) - IDEAL[m]
        if span == 0:
            raise ValueError(f"anchored SAMe: the baseline's {m} equals its ideal value")
        terms.append((linear(m, values[m]) - IDEAL[m]) / span)
    return float(np.mean(terms))
