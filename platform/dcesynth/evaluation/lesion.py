"""How much of a lesion's contrast against its surroundings a synthetic image keeps.

Whole-slice and tumour-box metrics can beat the baseline while the lesion itself stays as it was
before contrast: the box is mostly the tissue around the lesion, and a generator that darkens
that tissue right scores well there. What a reader looks for is the lesion standing out against
what surrounds it, so this measures exactly that, per tumour slice:

    contrast = mean(image inside the mask) − mean(image in a ring of ``ring_px`` around it)

and reports, over the slices where the real post-contrast lesion stands out (real contrast ≥
``min_contrast`` grey levels), the median of synthetic contrast / real contrast ("kept": 1 is the
real lesion's conspicuity, 0 a lesion that vanished into its surroundings) beside the same for
the pre-contrast image (what copying it would keep).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation


def lesion_contrasts(images: np.ndarray, mask: np.ndarray, ring_px: int = 3) -> np.ndarray:
    """Per slice: mean inside the mask − mean in the ring around it (NaN without a lesion).

    Args:
        images: (N, H, W) images on one scale.
        mask: (N, H, W) lesion masks (non-zero: lesion).
        ring_px: the ring's width in pixels (a dilation of the mask, mask excluded).

    Raises:
        ValueError: on shapes that differ or ``ring_px`` < 1.
    """
    if images.shape != mask.shape or images.ndim != 3:
        raise ValueError(f"images {images.shape} and mask {mask.shape}: need equal (N, H, W)")
    if ring_px < 1:
        raise ValueError(f"ring_px must be >= 1, got {ring_px}")
    out = np.full(len(images), np.nan)
    for i, m in enumerate(mask > 0):
        ring = binary_dilation(m, iterations=ring_px) & ~m
        if m.any() and ring.any():
            img = images[i].astype(np.float64)
            out[i] = img[m].mean() - img[ring].mean()
    return out


def contrast_kept(
    pre: np.ndarray,
    real: np.ndarray,
    fake: np.ndarray,
    mask: np.ndarray,
    ring_px: int = 3,
    min_contrast: float = 5.0,
) -> dict:
    """The lesion contrast a synthetic phase keeps, and what copying the pre image keeps.

    Args:
        pre, real, fake: (N, H, W) pre-contrast, real and synthetic post-contrast (one phase).
        mask: (N, H, W) lesion masks.
        ring_px: the surrounding ring's width in pixels.
        min_contrast: slices whose real lesion stands out by less (grey levels) are left out:
            a ratio to a near-zero contrast says nothing.

    Returns:
        ``slices`` (counted), mean ``real``/``synthetic``/``pre`` contrasts, and the medians
        ``synthetic_kept`` and ``pre_kept`` of each over the real contrast (None: no slice).
    """
    c = {
        k: lesion_contrasts(a, mask, ring_px)
        for k, a in (("real", real), ("synthetic", fake), ("pre", pre))
    }
    keep = np.isfinite(c["real"]) & (c["real"] >= min_contrast)
    out: dict = {"slices": int(keep.sum()), "ring_px": ring_px, "min_contrast": min_contrast}
    for k, v in c.items():
        out[k] = float(v[keep].mean()) if keep.any() else None
    for k in ("synthetic", "pre"):
        out[f"{k}_kept"] = float(np.median(c[k][keep] / c["real"][keep])) if keep.any() else None
    return out


BOX_METRICS = {"mae": False, "psnr": True, "ssim": True}  # metric: higher is better


def box_by_case(
    real: np.ndarray,
    fake: np.ndarray,
    pre: np.ndarray,
    region: np.ndarray,
    case_ids: np.ndarray,
) -> dict:
    """Tumour-box metrics per case, synthetic against the baseline, with a paired test.

    Table 2's box rows average over slices, so a few cases with many tumour slices can carry a
    mean; the study's unit is the patient. Per case, each metric is averaged over the case's
    box slices; then, for synthetic vs the pre-contrast baseline (both against real post), the
    cases where synthetic is better and a two-sided paired Wilcoxon signed-rank p over cases.

    Args:
        real, fake, pre: (N, H, W) real post, synthetic post, pre-contrast (tumour slices).
        region: (N, H, W) bool tumour boxes.
        case_ids: (N,) the case of each slice.

    Returns:
        {metric: {cases, synthetic, baseline (means over cases), synthetic_better, p}}.
    """
    from dcesynth.evaluation.metrics import paired_metrics
    from dcesynth.evaluation.stats import wilcoxon_p

    names = tuple(BOX_METRICS)
    syn = paired_metrics(real, fake, region, names=names)
    base = paired_metrics(real, pre, region, names=names)
    cases = list(dict.fromkeys(np.asarray(case_ids).tolist()))
    ids = np.asarray(case_ids)
    out = {}
    for m, higher in BOX_METRICS.items():
        s = [float(np.nanmean(syn[m][ids == c])) for c in cases]
        b = [float(np.nanmean(base[m][ids == c])) for c in cases]
        better = sum((x > y) if higher else (x < y) for x, y in zip(s, b, strict=True))
        out[m] = {
            "cases": len(cases),
            "synthetic": float(np.mean(s)) if s else None,
            "baseline": float(np.mean(b)) if b else None,
            "synthetic_better": int(better),
            "p": wilcoxon_p(s, b),
        }
    return out
