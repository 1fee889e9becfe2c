"""Kinetic biomarkers per voxel, real vs synthetic, and how well they agree.

From a pre-contrast image S₀ and post-contrast phases S₁…S_P acquired at times t₀…t_P (the
enhancement Eₖ = Sₖ − S₀):

* **peak enhancement** max Eₖ / S₀ (relative);
* **time to peak** (s): the time of the largest Eₖ;
* **initial wash-in slope** E₁ / (t₁ − t₀), per minute;
* **signal enhancement ratio** (SER, Hylton): E₁ / E_P — above 1 the signal washes out;
* **Kuhl curve type** I (persistent), II (plateau), III (wash-out) with the 10 % rule of
  ``dcesynth.data.phantom.kinetics.classify_curve`` (vectorised here; a test checks they agree);
  voxels whose peak enhancement stays under ``min_enhancement`` get type 0 (none).

The prepared dataset normalises each phase to [0, 255] on its own (the study's choice), so
these maps describe the images the study trains on, not physical concentrations; real and
synthetic maps come from the same kind of images and are compared like with like. Agreement:
Bland–Altman bias and limits, ICC(2,1) (two-way random, absolute agreement, single measure),
and the confusion matrix of lesion curve types.
"""

from __future__ import annotations

import numpy as np

TYPES = ("none", "I", "II", "III")  # codes 0…3 in type maps


def curve_type_codes(enhancement: np.ndarray, tol: float = 0.10) -> np.ndarray:
    """Vectorised Kuhl type of enhancement curves (P, …) with P ≥ 2: codes 1 I, 2 II, 3 III."""
    e = np.asarray(enhancement, np.float64)
    if e.shape[0] < 2:
        raise ValueError(f"need ≥ 2 post-contrast phases for a curve type, got {e.shape[0]}")
    peak, first, last = e.max(0), e[0], e[-1]
    out = np.full(e.shape[1:], 2, np.int8)
    out[(last >= peak) & (last > (1 + tol) * first)] = 1
    out[last < (1 - tol) * peak] = 3
    return out


def kinetic_maps(
    pre: np.ndarray, posts: np.ndarray, times_s, min_enhancement: float = 0.1, eps: float = 1.0
) -> dict[str, np.ndarray]:
    """Voxel maps of ``pre`` (…) and ``posts`` (P, …) acquired at ``times_s`` (1 + P values).

    Args:
        min_enhancement: relative peak enhancement below which a voxel has no curve type.
        eps: added to S₀ in ratios (the prepared images reach 0 in air).
    """
    pre = np.asarray(pre, np.float64)
    posts = np.asarray(posts, np.float64)
    t = np.asarray(times_s, np.float64)
    if len(t) != len(posts) + 1:
        raise ValueError(f"{len(t)} times for 1 + {len(posts)} phases")
    enh = posts - pre[None]
    peak = enh.max(0)
    rel = peak / (pre + eps)
    codes = curve_type_codes(enh) if len(posts) >= 2 else np.zeros(pre.shape, np.int8)
    codes[rel < min_enhancement] = 0
    last = enh[-1]
    return {
        "peak_enhancement": rel,
        "time_to_peak_s": t[1:][enh.argmax(0)] - t[0],
        "wash_in_per_min": enh[0] / max((t[1] - t[0]) / 60.0, 1e-9),
        "ser": enh[0] / np.where(np.abs(last) < eps, eps, last),  # no enhancement: bounded
        "curve_type": codes,
    }


def majority_type(codes: np.ndarray) -> str:
    """The most frequent type among enhancing voxels ('none' when none enhances)."""
    c = np.asarray(codes).ravel()
    c = c[c > 0]
    if not c.size:
        return "none"
    return TYPES[int(np.bincount(c, minlength=4)[1:].argmax()) + 1]


def bland_altman(a, b) -> dict[str, float]:
    """Bias (mean of b − a) and 95 % limits of agreement."""
    d = np.asarray(b, float) - np.asarray(a, float)
    sd = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
    bias = float(d.mean()) if len(d) else float("nan")
    return {
        "bias": bias,
        "sd": sd,
        "lower": bias - 1.96 * sd,
        "upper": bias + 1.96 * sd,
        "n": len(d),
    }


def icc_2_1(a, b) -> float:
    """ICC(2,1) of two raters (real, synthetic) on n subjects (Shrout & Fleiss 1979)."""
    x = np.stack([np.asarray(a, float), np.asarray(b, float)], 1)  # (n, k=2)
    n, k = x.shape
    if n < 2:
        return float("nan")
    grand = x.mean()
    ss_rows = k * ((x.mean(1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / den) if den else float("nan")


def confusion(real: list[str], synthetic: list[str]) -> dict[str, dict[str, int]]:
    """Counts of (real type → synthetic type) over lesions."""
    out = {r: {s: 0 for s in TYPES} for r in TYPES}
    for r, s in zip(real, synthetic, strict=True):
        out[r][s] += 1
    return out
