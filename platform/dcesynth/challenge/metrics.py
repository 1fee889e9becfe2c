"""MAMA-SYNTH metrics, defined as the official evaluator defines them, and its ``metrics.json``.

Official code: ``mama-synth`` branch ``gc_upload``, ``src/evaluation/evaluators/`` —
``image_metrics.py`` (MSE, LPIPS), ``roi_metrics.py`` (SSIM in the tumour, FRD),
``segmentation.py`` (Dice, HD95) and ``base.py`` (aggregates). Images are 2D arrays on the
challenge's z-score scale, read as float64.

* ``mse``: mean squared difference over the full image. Same maths as
  :func:`dcesynth.evaluation.metrics.mse`, which computes it (in float64 for float64 input).
* ``ssim_tumour``: scikit-image ``structural_similarity`` with ``data_range`` 10, its defaults
  (7 × 7 uniform window, sample covariance, K1 0.01, K2 0.03) and ``full=True``; the mean of the
  SSIM map over the mask's pixels, the image border included. This differs from the platform's
  SSIM (:mod:`dcesynth.evaluation.metrics`: 11 × 11 Gaussian window, σ 1.5, population
  variances, map cropped to where the window fits), so it is computed here, not reused.
* ``lpips``: torchmetrics ``LearnedPerceptualImagePatchSimilarity(net_type="alex")`` on the images
  clipped to ±5 and divided by 5, the grey channel repeated to 3. The platform's LPIPS
  (:mod:`dcesynth.evaluation.features`) maps [0, 255] images to [−1, 1] through the ``lpips``
  package instead. The AlexNet backbone is a local file (weights registry ``lpips_alexnet``);
  nothing is downloaded.
* ``dice`` / ``hausdorff_95``: of two binary masks; HD95 is the 95th percentile of the distances
  from each mask's boundary pixels (mask XOR its erosion) to the other mask (Euclidean distance
  transform). An empty predicted mask scores Dice 0 and HD95 = the image diagonal (official
  convention, :func:`segmentation_scores`).
* aggregates: ``{mean, std, n}`` with the population std (ddof 0) of
  :func:`dcesynth.evaluation.metrics.summarise`; the official ones have no ``n``.

Unlike the official evaluator, nothing is dropped silently: a metric that could not be computed
is listed under ``not_computed`` with its reason, and a case that could not be scored is a row
with an ``error``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcesynth import weights as W
from dcesynth.config import atomic_write_text
from dcesynth.evaluation import metrics as base

log = logging.getLogger(__name__)

SSIM_DATA_RANGE = 10.0  # official: matches the ±5σ clip of LPIPS
LPIPS_CLIP = 5.0
PER_CASE = ("mse", "lpips", "ssim_tumour", "dice", "hausdorff_95")
AGGREGATE_ONLY = ("frd", "auroc_contrast", "auroc_tumor_roi")
FORMAT = "dcesynth.challenge.metrics/1"


def _image(a: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2D image, got shape {x.shape}")
    return x


def _pair(prediction: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _image(prediction, "prediction"), _image(ground_truth, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction of shape {p.shape} for a ground truth of {g.shape}")
    return p, g


def _mask(mask: np.ndarray, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"{name} of shape {m.shape} for images of {shape}")
    return m > 0


def mse(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean squared difference over the full 2D image (z-score scale), in float64.

    Raises:
        ValueError: not 2D or shapes differ.
    """
    p, g = _pair(prediction, ground_truth)
    return float(base.mse(g[None], p[None])[0])


def ssim_map(prediction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """scikit-image's full SSIM map with the challenge's settings (``data_range`` 10).

    Raises:
        ValueError: not 2D, shapes differ, or smaller than the 7 × 7 window.
    """
    from skimage.metrics import structural_similarity

    p, g = _pair(prediction, ground_truth)
    if min(p.shape) < 7:
        raise ValueError(f"SSIM's 7 × 7 window needs images of at least 7 px, got {p.shape}")
    _, smap = structural_similarity(p, g, data_range=SSIM_DATA_RANGE, full=True)
    return smap


def ssim_tumour(
    prediction: np.ndarray, ground_truth: np.ndarray, mask: np.ndarray | None
) -> float | None:
    """Mean of the SSIM map inside the tumour mask; None without a mask or with an empty one
    (the official evaluator skips such cases).

    Args:
        prediction: 2D predicted post-contrast slice.
        ground_truth: 2D real post-contrast slice.
        mask: 2D tumour mask (pixels > 0), or None.

    Raises:
        ValueError: not 2D or shapes differ.
    """
    p, g = _pair(prediction, ground_truth)
    if mask is None:
        return None
    m = _mask(mask, p.shape)
    if not m.any():
        return None
    return float(ssim_map(p, g)[m].mean())


def lpips_model(alexnet_weights: Path) -> Any:
    """The official LPIPS network (torchmetrics, AlexNet) with the backbone from a local file.

    torchmetrics builds its AlexNet through torchvision, which looks for
    ``alexnet-owt-7be5be79.pth`` in torch hub's cache and downloads it when absent; we point the
    hub at a temporary folder that links to ``alexnet_weights``, so nothing is downloaded (not
    thread-safe: the hub folder is process-global while the model is built). The LPIPS linear
    layers ship with torchmetrics.

    Args:
        alexnet_weights: torchvision's AlexNet state dict (registry ``lpips_alexnet``).

    Raises:
        weights.WeightsError: the file is missing (the message says where to get it).
    """
    path = Path(alexnet_weights)
    spec = W.LPIPS_ALEX
    if not path.is_file():
        raise W.WeightsError(
            f"LPIPS needs the AlexNet backbone {spec.filename} (weights {spec.name!r}); "
            f"not found at {path}. Source: {spec.source}; register a copy with "
            f"`dcectl weights add FILE --name {spec.name}`"
        )
    import torch
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    previous = getattr(torch.hub, "_hub_dir", None)  # restored exactly, env default included
    with tempfile.TemporaryDirectory(prefix="dcesynth-hub-") as hub:
        os.makedirs(os.path.join(hub, "checkpoints"))
        os.symlink(path.resolve(), os.path.join(hub, "checkpoints", spec.filename))
        torch.hub.set_dir(hub)
        try:
            model = LearnedPerceptualImagePatchSimilarity(net_type="alex")
        finally:
            torch.hub._hub_dir = previous
    return model.eval()


def lpips_model_from_registry(weights_dir: Path | None = None) -> Any:
    """:func:`lpips_model` with the registry's checksum-verified ``lpips_alexnet`` file.

    Raises:
        weights.WeightsError: missing or corrupt file.
    """
    return lpips_model(W.resolve(W.LPIPS_ALEX, weights_dir))


def lpips(model: Any, prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """LPIPS of one pair: clip to ±5, divide by 5, repeat to 3 channels, float32.

    Args:
        model: from :func:`lpips_model`.
        prediction: 2D predicted slice (z-score scale).
        ground_truth: 2D real slice.

    Raises:
        ValueError: not 2D or shapes differ.
    """
    import torch

    p, g = _pair(prediction, ground_truth)

    def tensor(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.clip(x, -LPIPS_CLIP, LPIPS_CLIP) / LPIPS_CLIP).float()
        return t[None, None].expand(-1, 3, -1, -1)

    with torch.no_grad():
        model.reset()
        model.update(tensor(p), tensor(g))
        return float(model.compute().item())


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """2|P ∩ R| / (|P| + |R|) of two masks (pixels > 0); 1.0 when both are empty (official).

    The platform's segmentation study returns NaN for two empty masks instead.

    Raises:
        ValueError: shapes differ.
    """
    r = np.asarray(reference) > 0
    p = _mask(prediction, r.shape, "predicted mask")
    total = int(p.sum()) + int(r.sum())
    return 1.0 if total == 0 else 2.0 * int((p & r).sum()) / total


def hausdorff_95(prediction: np.ndarray, reference: np.ndarray) -> float:
    """95th percentile of boundary-to-mask distances in both directions, in pixels.

    The boundary of a mask is its pixels minus its erosion (the mask itself when that is empty);
    each boundary pixel's distance is the Euclidean distance to the nearest pixel of the other
    mask. 0.0 when both masks are empty, inf when exactly one is.

    Raises:
        ValueError: shapes differ.
    """
    from scipy import ndimage

    r = np.asarray(reference) > 0
    p = _mask(prediction, r.shape, "predicted mask")
    if not p.any() and not r.any():
        return 0.0
    if not p.any() or not r.any():
        return math.inf

    def boundary(m: np.ndarray) -> np.ndarray:
        b = m & ~ndimage.binary_erosion(m)
        return b if b.any() else m

    to_r = ndimage.distance_transform_edt(~r)[boundary(p)]
    to_p = ndimage.distance_transform_edt(~p)[boundary(r)]
    return float(np.percentile(np.concatenate([to_r, to_p]), 95))


def segmentation_scores(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice and HD95 of a segmentation of the prediction against the tumour mask; an empty
    predicted mask scores Dice 0 and HD95 = the image diagonal √(H² + W²) (official penalty).

    Raises:
        ValueError: shapes differ or the reference mask is empty (the official evaluator skips
            such cases; the caller records why).
    """
    r = np.asarray(reference) > 0
    p = _mask(predicted, r.shape, "predicted mask")
    if not r.any():
        raise ValueError("the reference tumour mask is empty")
    if not p.any():
        h, w = r.shape[-2:]
        return {"dice": 0.0, "hausdorff_95": float(math.hypot(h, w))}
    return {"dice": dice(p, r), "hausdorff_95": hausdorff_95(p, r)}


def frd(
    ground_truths: list[Path], predictions: list[Path], masks: list[Path], workers: int = 1
) -> float:
    """Fréchet Radiomics Distance v1 between the real and the predicted slices, with the tumour
    masks as the region of both — ``frd_score.compute_frd`` on the files, as the official
    evaluator calls it (it reads each file's spacing). Aggregate only; needs ≥ 2 cases. v1 reports
    log(d_F²), so identical sets give −inf and values may be negative.

    Args:
        ground_truths: real post-contrast ``.mha`` files.
        predictions: the predicted files, in the same case order.
        masks: the cases' non-empty tumour masks, in the same order.
        workers: feature-extraction processes (the value does not change the result).

    Raises:
        ValueError: lists of different lengths or fewer than 2 cases.
        ImportError: ``frd-score`` or its pyradiomics is not installed (the message says which).
    """
    if not len(ground_truths) == len(predictions) == len(masks):
        raise ValueError("FRD needs one prediction and one mask per ground truth")
    if len(masks) < 2:
        raise ValueError(f"FRD needs at least 2 cases with a tumour mask, got {len(masks)}")
    from dcesynth.evaluation.frd import require

    require()  # frd-score imports pyradiomics lazily and would fail late
    from frd_score import compute_frd

    gts, preds, ms = ([str(p) for p in x] for x in (ground_truths, predictions, masks))
    value = compute_frd([gts, preds], paths_masks=[ms, ms], frd_version="v1", num_workers=workers)
    return float(value)


@dataclass(frozen=True)
class NotComputed:
    """A metric left out, and why (e.g. ``lpips``: AlexNet weights not found)."""

    metric: str
    reason: str


def aggregate(
    rows: Mapping[str, Mapping[str, Any]], keys: Iterable[str] = PER_CASE
) -> dict[str, dict[str, float]]:
    """``{key: {mean, std, n}}`` over the cases that have a finite number for ``key``.

    Args:
        rows: case id → metrics (error rows hold no numbers and count for nothing).
        keys: the per-case metrics to aggregate; those no case has are left out.
    """
    values = {}
    for k in keys:
        v = [r[k] for r in rows.values() if isinstance(r.get(k), int | float)]
        v = [x for x in v if math.isfinite(x)]
        if v:
            values[k] = np.asarray(v, dtype=np.float64)
    return base.summarise(values)


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metrics_document(
    rows: Mapping[str, Mapping[str, Any]],
    aggregate_only: Mapping[str, tuple[float, int]] | None = None,
    not_computed: Iterable[NotComputed] = (),
) -> dict:
    """The ``metrics.json`` document: the official ``{"case", "aggregates"}`` plus
    ``n_cases``, ``not_computed`` and ``format``.

    Args:
        rows: case id → {metric: value}, or {"error": reason} for a case that could not be
            scored (a missing or wrong-shape prediction).
        aggregate_only: metric → (value, number of cases it covers), e.g. ``frd``; written as
            ``{"mean": value, "n": n}`` like the official ``{"mean": value}``.
        not_computed: metrics left out, with reasons.
    """
    aggs: dict[str, dict[str, Any]] = aggregate(rows)
    for k, (value, n) in (aggregate_only or {}).items():
        aggs[k] = {"mean": float(value), "n": int(n)}
    return {
        "format": FORMAT,
        "case": {k: dict(v) for k, v in sorted(rows.items())},
        "aggregates": aggs,
        "n_cases": len(rows),
        "n_errors": sum(1 for v in rows.values() if "error" in v),
        "not_computed": [{"metric": n.metric, "reason": n.reason} for n in not_computed],
    }


def write_metrics(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON atomically; NaN and ±inf become null (as the official does)."""
    text = json.dumps(_finite_or_none(dict(document)), indent=2, allow_nan=False)
    atomic_write_text(Path(path), text + "\n")
    log.info("metrics written to %s", path)
