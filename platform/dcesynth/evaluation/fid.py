"""Fréchet Inception Distance from feature sets, numerically stable, and the by-patient split.

FID(a, b) = ‖μa − μb‖² + tr(Σa) + tr(Σb) − 2 tr((Σa Σb)^½).

The trace term is computed as Σ √λ over the eigenvalues λ of Σa^½ Σb Σa^½ — a symmetric
positive semi-definite matrix with the same eigenvalues as Σa Σb — in float64, with tiny
negative eigenvalues from rounding clipped to 0. Unlike ``scipy.linalg.sqrtm`` of the
non-symmetric product (pytorch-fid's route), this never returns complex parts or needs an
offset for singular covariances (fewer samples than feature dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int


def stats(feats: np.ndarray) -> Stats:
    """Mean and (unbiased, as pytorch-fid's ``np.cov``) covariance of (N, d) features."""
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"FID needs ≥ 2 feature vectors of shape (N, d), got {f.shape}")
    return Stats(f.mean(0), np.cov(f, rowvar=False), len(f))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched shapes: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    r = _sqrt_psd(s1)
    lam = np.linalg.eigvalsh(r @ s2 @ r)
    tr_covmean = np.sqrt(np.clip(lam, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two feature sets (N, d)."""
    a, b = stats(feats_a), stats(feats_b)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def patient_halves(case_ids, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of two halves of the rows, split by patient (never one patient in both)."""
    ids = np.asarray(case_ids)
    cases = sorted(set(ids.tolist()))
    if len(cases) < 2:
        raise ValueError(f"a by-patient split needs ≥ 2 patients, got {len(cases)}")
    rng = np.random.default_rng(seed)
    rng.shuffle(cases)
    first = set(cases[: len(cases) // 2])
    a = np.array([c in first for c in ids.tolist()])
    return a, ~a


def by_patient_split_fid(feats: np.ndarray, case_ids, seed: int = 0) -> float:
    """The study's by-patient split FID: real images of one half of the patients vs the other.

    It is the FID two sets of *real* images of the same kind reach when they only differ in
    patients: the floor a synthetic set can be judged against.
    """
    a, b = patient_halves(case_ids, seed)
    return fid(np.asarray(feats)[a], np.asarray(feats)[b])
