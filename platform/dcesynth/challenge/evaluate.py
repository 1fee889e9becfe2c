"""Score a folder of MAMA-SYNTH predictions the way the official evaluator does, without its
silences: ``dcectl challenge evaluate``.

Folders (flat, one file per case, ``<case>.mha``, ``.nii.gz`` or ``.nii``)::

    GROUND_TRUTH/<case>.mha   the real target slices: they define the cases
    PREDICTIONS/<case>.mha    a submission's outputs (z-score scale, 2D, same shape)
    MASKS/<case>.mha          tumour masks (pixels > 0); ``dcectl challenge prepare`` writes them
                              under ``mha/mask/``, the official evaluator reads ``masks/``
    PRECONTRAST/<case>.mha    optional (only ``auroc_contrast`` uses it)
    MODELS/                   optional, the organisers' files (:mod:`dcesynth.challenge.models`)

Every case of GROUND_TRUTH is a row: its metrics, or ``{"error": why}`` when its prediction is
missing, unreadable, not 2D or of another shape (the official evaluator skips such cases). A
metric that cannot be computed at all is listed under ``not_computed`` with its reason, and a
case-level failure of one metric (e.g. LPIPS on one case) is listed there too, naming the case.
The aggregates say how many cases each covers (``n``) beside ``n_cases`` and ``n_errors``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcesynth.challenge import metrics as C
from dcesynth.challenge import models as M

log = logging.getLogger(__name__)

SUFFIXES = (".mha", ".nii.gz", ".nii")


@dataclass
class Evaluation:
    """What :func:`evaluate` produced: the metrics.json document and timings."""

    document: dict
    wall_s: float
    seconds: dict[str, float] = field(default_factory=dict)


def case_files(folder: Path) -> dict[str, Path]:
    """``{case id: file}`` of a flat folder of ``.mha``/``.nii.gz``/``.nii`` images."""
    out = {}
    for f in sorted(Path(folder).iterdir()):
        suffix = next((s for s in SUFFIXES if f.name.endswith(s)), None)
        if f.is_file() and suffix and not f.name.startswith("."):
            out.setdefault(f.name[: -len(suffix)], f)
    return out


def read_image(path: Path) -> np.ndarray:
    """An image as float64 (SimpleITK's array order), as the official evaluator reads it.

    Raises:
        ValueError: unreadable; the message names the file.
    """
    import SimpleITK as sitk

    try:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)
    except RuntimeError as e:
        raise ValueError(f"{path}: cannot read ({str(e).strip().splitlines()[-1]})") from None


def _folder(path: Path | None, flag: str) -> Path | None:
    if path is not None and not Path(path).is_dir():
        raise ValueError(f"{flag} {path}: not a folder")
    return None if path is None else Path(path)


def _load_case(cid: str, gt_path: Path, preds: dict[str, Path], pred_dir: Path):
    gt = read_image(gt_path)
    if gt.ndim != 2:
        raise ValueError(f"ground truth {gt_path}: expected a 2D slice, got shape {gt.shape}")
    if cid not in preds:
        raise ValueError(f"no prediction {cid}.mha (or .nii.gz/.nii) in {pred_dir}")
    pred = read_image(preds[cid])
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction {preds[cid].name} has shape {pred.shape}, the ground truth {gt.shape}"
        )
    if not np.isfinite(pred).all():
        raise ValueError(f"prediction {preds[cid].name} holds NaN or infinite values")
    return gt, pred


def _lpips_model(lpips_weights: str | Path | None, weights_dir: Path | None):
    """(model, None) or (None, reason)."""
    from dcesynth import weights as W

    if lpips_weights is None or str(lpips_weights) == "none":
        return None, "left out (--lpips-weights none)"
    try:
        if str(lpips_weights) == "registry":
            return C.lpips_model_from_registry(weights_dir), None
        return C.lpips_model(Path(lpips_weights)), None
    except (W.WeightsError, ImportError) as e:
        return None, str(e)


def _segmenter(models: Path | None, trusted: frozenset[str], fold: int):
    """(segment function, None) or (None, reason)."""
    if models is None:
        return None, "no --models folder (needs the organisers' nnU-Net under segmentation/)"
    try:
        return M.nnunet_segmenter(models, trusted, fold), None
    except (ValueError, ImportError) as e:
        return None, str(e)
    except Exception as e:  # nnU-Net raises many kinds for a foreign folder: say which
        return None, f"the nnU-Net in {models / M.SEGMENTATION} could not be loaded: {e!r}"


def evaluate(
    predictions: Path,
    ground_truth: Path,
    masks: Path,
    precontrast: Path | None = None,
    models: Path | None = None,
    lpips_weights: str | Path | None = "registry",
    weights_dir: Path | None = None,
    trusted: frozenset[str] = frozenset(),
    seg_fold: int = 0,
    frd_workers: int = 1,
    cases: list[str] | None = None,
) -> Evaluation:
    """Score every case of ``ground_truth`` (see the module docstring).

    Args:
        predictions: the predicted slices.
        ground_truth: the real target slices (their names are the cases).
        masks: the tumour masks.
        precontrast: the pre-contrast inputs (only ``auroc_contrast`` would use them).
        models: the organisers' models folder.
        lpips_weights: AlexNet backbone file, ``registry`` (the weights registry's
            ``lpips_alexnet``) or ``none``.
        weights_dir: where the registry looks (default ~/.cache/dcesynth/weights).
        trusted: sha256 digests of pickles the user vouches for (:func:`models.parse_trusted`).
        seg_fold: the nnU-Net fold (official ``MAMA_SEG_FOLD``, default 0).
        frd_workers: FRD feature-extraction processes.
        cases: score only these ground-truth cases (e.g. a test split); default all of them.

    Raises:
        ValueError: a folder is missing or GROUND_TRUTH holds no image.
    """
    t0 = time.perf_counter()
    pred_dir, gt_dir = (
        _folder(predictions, "--predictions"),
        _folder(ground_truth, "--ground-truth"),
    )
    mask_dir = _folder(masks, "--masks")
    _folder(precontrast, "--precontrast")
    models = _folder(models, "--models")
    gts = case_files(gt_dir)
    if not gts:
        raise ValueError(f"--ground-truth {gt_dir}: no .mha/.nii.gz/.nii image")
    if cases is not None:
        if missing := sorted(set(cases) - set(gts)):
            raise ValueError(f"--ground-truth {gt_dir}: no image for case(s) {missing[:5]}")
        gts = {c: gts[c] for c in sorted(cases)}
    preds, mask_files = case_files(pred_dir), case_files(mask_dir)
    if extra := sorted(set(preds) - set(gts)):
        log.warning("%d prediction(s) without a ground truth, ignored: %s", len(extra), extra[:5])
    not_computed: list[C.NotComputed] = []
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    lp, why = _lpips_model(lpips_weights, weights_dir)
    if why:
        not_computed.append(C.NotComputed("lpips", why))
    segment, why = _segmenter(models, trusted, seg_fold)
    if why:
        not_computed += [C.NotComputed(m, why) for m in ("dice", "hausdorff_95")]
    seconds["load models"] = time.perf_counter() - t

    rows: dict[str, dict[str, Any]] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    t = time.perf_counter()
    for cid, gt_path in gts.items():
        try:
            gt, pred = _load_case(cid, gt_path, preds, pred_dir)
            mask = read_image(mask_files[cid]) if cid in mask_files else None
            if mask is not None and mask.shape != gt.shape:
                raise ValueError(
                    f"mask {mask_files[cid].name} has shape {mask.shape}, not {gt.shape}"
                )
        except ValueError as e:
            rows[cid] = {"error": str(e)}
            continue
        row: dict[str, Any] = {"mse": C.mse(pred, gt)}
        if mask is None:
            row["ssim_tumour"] = None
            row["note"] = f"no mask {cid}.mha in {mask_dir}: ssim_tumour, FRD, Dice/HD95 skipped"
        else:
            row["ssim_tumour"] = C.ssim_tumour(pred, gt, mask)
        if lp is not None:
            try:
                row["lpips"] = C.lpips(lp, pred, gt)
            except Exception as e:  # one case's failure is reported, never dropped silently
                not_computed.append(C.NotComputed("lpips", f"case {cid}: {e!r}"))
        rows[cid] = row
        scored[cid] = (gt, pred, mask)
    seconds["per-case metrics"] = time.perf_counter() - t

    with_mask = [c for c, (_, _, m) in scored.items() if m is not None and (m > 0).any()]
    if segment is not None:
        t = time.perf_counter()
        try:
            predicted = segment([scored[c][1] for c in with_mask])
            for c, pm in zip(with_mask, predicted, strict=True):
                rows[c].update(C.segmentation_scores(pm, scored[c][2]))
        except Exception as e:  # inference failure: reported, not dropped
            not_computed += [C.NotComputed(m, f"nnU-Net inference failed: {e!r}")
                             for m in ("dice", "hausdorff_95")]  # fmt: skip
        seconds["segmentation"] = time.perf_counter() - t

    aggregate_only: dict[str, tuple[float, int]] = {}
    t = time.perf_counter()
    if len(with_mask) < 2:
        not_computed.append(
            C.NotComputed(
                "frd", f"needs at least 2 scored cases with a tumour mask, got {len(with_mask)}"
            )
        )
    else:
        try:
            value = C.frd([gts[c] for c in with_mask], [preds[c] for c in with_mask],
                          [mask_files[c] for c in with_mask], workers=frd_workers)  # fmt: skip
            aggregate_only["frd"] = (value, len(with_mask))
        except (ValueError, ImportError, RuntimeError) as e:
            not_computed.append(C.NotComputed("frd", f"frd-score failed: {e}"))
    seconds["frd"] = time.perf_counter() - t

    for metric, reason in M.classifier_status(models, trusted).items():
        not_computed.append(C.NotComputed(metric, reason))
    doc = C.metrics_document(rows, aggregate_only, not_computed)
    if math.isinf(aggregate_only.get("frd", (0.0, 0))[0]):
        doc["notes"] = [
            "frd is −inf (written as null): the predictions' features equal the truth's"
        ]
    return Evaluation(doc, time.perf_counter() - t0, seconds)
