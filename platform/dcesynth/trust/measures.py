"""The trust measures as plain functions of arrays: privacy, diversity, fairness, uncertainty.

Each function takes numbers and returns numbers, so each has a known-answer test; the report
(:mod:`dcesynth.trust.report`) feeds them a run's images.

* **Privacy — memorisation** (:func:`memorisation`): every synthetic image's distance to its
  nearest *training* image, against the same distance for the real held-out image of that
  slice. A synthetic image closer to a training image than any real held-out image ever is
  has no honest explanation but copying; such images are counted (a distance-to-closest-
  record test in the spirit of authenticity tests for synthetic data).
* **Diversity** (:func:`prdc`): precision, recall, density and coverage of Naeem et al. (ICML
  2020): k-NN balls around real points (precision, density, coverage) and around fake points
  (recall) in a feature space.
* **Fairness** (:func:`stratified`): a per-case metric by stratum with bootstrap confidence
  intervals over cases (slices of one case are not independent), and a flag for a stratum
  whose difference to the rest has a confidence interval entirely on the worse side.
* **Uncertainty** (:func:`ensemble_spread`, :func:`combined_spread` with a sampling
  generator's own K-sample spread): the per-pixel standard deviation over an ensemble
  of generators.
"""

from __future__ import annotations

import numpy as np


def downsampled(images: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, S, S) on [0, 255] → (N, size²) float64 on [0, 1], area-averaged (pixel space for
    distances: noise is averaged down, anatomy stays)."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, np.float32))[:, None] / 255.0
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    return x.flatten(1).double().numpy()


def pairwise(a: np.ndarray, b: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) of row vectors, computed in batches."""
    import torch

    ta, tb = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    rows = [torch.cdist(ta[i : i + batch], tb) for i in range(0, len(ta), batch)]
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(b)))


def nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``: (distance to, index of) its nearest row of ``b``."""
    d = pairwise(a, b)
    idx = d.argmin(1)
    return d[np.arange(len(a)), idx], idx


def memorisation(
    synthetic: np.ndarray, heldout: np.ndarray, training: np.ndarray, tolerance: float = 0.01
) -> dict:
    """Distances to the nearest training image, synthetic vs real held-out.

    Args:
        synthetic: (N, d) vectors of synthetic images.
        heldout: (N, d) vectors of the real held-out images of the same slices.
        training: (M, d) vectors of the training images (what the generator saw).
        tolerance: the fraction of too-close synthetic images above which the run is flagged.

    Returns:
        the distances, the closest real held-out distance (the bar), the fraction of synthetic
        images below it, the fraction below half of it (near-copies), and ``flagged``.
    """
    if len(synthetic) != len(heldout):
        raise ValueError(f"{len(synthetic)} synthetic vs {len(heldout)} held-out images")
    d_syn, nn_syn = nearest(synthetic, training)
    d_real, _ = nearest(heldout, training)
    bar = float(d_real.min())
    closer = d_syn < bar
    return {
        "synthetic_nn": d_syn,
        "heldout_nn": d_real,
        "nearest_training": nn_syn,
        "bar": bar,
        "fraction_closer": float(closer.mean()),
        "closer": closer,
        # A generator that removes noise sits a little closer to every image than a noisy real
        # one does, so a few images just under the bar are expected; copies sit far below it.
        "fraction_copies": float((d_syn < bar / 2).mean()),
        "flagged": bool(closer.mean() > tolerance),
    }


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) of ``fake`` against ``real``.

    Raises:
        ValueError: fewer than ``k + 1`` points on a side (no k-th neighbour).
    """
    if min(len(real), len(fake)) <= k:
        raise ValueError(
            f"prdc with k={k} needs more than {k} points per side, got "
            f"{len(real)} real and {len(fake)} fake"
        )
    d_rr, d_ff, d_rf = pairwise(real, real), pairwise(fake, fake), pairwise(real, fake)
    r_real = np.sort(d_rr, 1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(d_ff, 1)[:, k]
    inside = d_rf <= r_real[:, None]  # (real i, fake j): fake j in real i's ball
    return {
        "precision": float(inside.any(0).mean()),
        "recall": float((d_rf <= r_fake[None, :]).any(1).mean()),
        "density": float(inside.sum(0).mean() / k),
        "coverage": float((d_rf.min(1) <= r_real).mean()),
    }


def _boot_means(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return values[idx].mean(1)


def stratified(
    per_case: dict[str, float],
    stratum_of: dict[str, str],
    higher_is_better: bool,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    min_cases: int = 2,
) -> list[dict]:
    """A per-case metric summarised per stratum.

    Args:
        per_case: case → the metric's mean over that case's slices.
        stratum_of: case → stratum label (cases without one are left out).
        higher_is_better: the metric's direction (SSIM, PSNR: True; MAE, MSE: False).
        n_boot: bootstrap resamples (of cases).
        alpha: two-sided level of the intervals.
        min_cases: a stratum, or the rest, with fewer cases is never flagged: the bootstrap of
            one case has no spread, so its interval would call any difference significant.

    Returns:
        one row per stratum: n cases, mean, CI, the difference to the other cases with its
        CI, and ``worse`` when that CI lies entirely on the worse side of 0.
    """
    rng = np.random.default_rng(seed)
    cases = [c for c in per_case if c in stratum_of]
    labels = sorted({stratum_of[c] for c in cases})
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    rows = []
    for s in labels:
        mine = np.array([per_case[c] for c in cases if stratum_of[c] == s], float)
        rest = np.array([per_case[c] for c in cases if stratum_of[c] != s], float)
        bm = _boot_means(mine, n_boot, rng)
        row = {
            "stratum": s,
            "n": len(mine),
            "mean": float(mine.mean()),
            "ci": [float(np.percentile(bm, lo)), float(np.percentile(bm, hi))],
        }
        if len(rest):
            diff = bm - _boot_means(rest, n_boot, rng)
            ci = [float(np.percentile(diff, lo)), float(np.percentile(diff, hi))]
            row |= {
                "diff_vs_rest": float(mine.mean() - rest.mean()),
                "diff_ci": ci,
                "worse": bool(ci[1] < 0 if higher_is_better else ci[0] > 0)
                and min(len(mine), len(rest)) >= min_cases,
            }
        else:
            row |= {"diff_vs_rest": None, "diff_ci": None, "worse": False}
        rows.append(row)
    return rows


def ensemble_spread(outputs: np.ndarray) -> np.ndarray:
    """(members, N, ...) outputs of an ensemble → the per-pixel standard deviation (N, ...)."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.ndim < 2 or len(outputs) < 2:
        raise ValueError(f"an ensemble needs ≥ 2 members, got shape {outputs.shape}")
    return outputs.std(0)


def combined_spread(
    ensemble: np.ndarray, samples: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The per-pixel SD of the pooled predictive distribution of an ensemble whose members may
    each draw several samples (law of total variance: the spread of the members' means plus
    the mean of their own sample variances; a member that does not sample adds 0).

    Args:
        ensemble: (N, ...) the SD over the members' outputs (:func:`ensemble_spread`).
        samples: per member, the (N, ...) SD of its own samples, or None if it draws none.

    Returns:
        (total SD, the samples' part: sqrt of the members' mean sample variance, or None when
        no member samples).

    Raises:
        ValueError: no members, or a member's spread of another shape.
    """
    ensemble = np.asarray(ensemble, np.float64)
    if not samples:
        raise ValueError("combined_spread: no members")
    drawn = [np.asarray(s, np.float64) for s in samples if s is not None]
    if bad := [s.shape for s in drawn if s.shape != ensemble.shape]:
        raise ValueError(f"sample spreads of shapes {bad}, the ensemble's is {ensemble.shape}")
    if not drawn:
        return ensemble, None
    within = np.sqrt(sum(s * s for s in drawn) / len(samples))
    return np.sqrt(ensemble * ensemble + within * within), within


def spearman(x, y) -> float:
    """Spearman's rank correlation (NaN with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
