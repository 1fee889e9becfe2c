"""Calibrating the phantom's conspicuity against the study's real-data baselines.

The phantom has one physical parameter whose value no publication gives: the proton density of
a (fat-free) carcinoma over that of fat-suppressed FGT, ``tumour_pd``. It decides how visible a
tumour is before contrast. It is set from the two segmentation baselines the study measured on
real Duke data, and from nothing else:

* nnU-Net trained and tested on real pre-contrast over trained and tested on real post:
  0.569 / 0.790 = **0.72** (how much of a tumour the pre-contrast image shows);
* trained on post, tested on pre over post on post: 0.164 / 0.790 = **0.21** (how differently
  a tumour looks before contrast).

For each candidate value the calibration generates the preset's cohort, ingests it, measures
every lesion's contrast-to-noise ratio against the parenchyma around it before and after
contrast, runs the segmentation study's cells (1, A), (3, D) and (4, D) with the preset's
nnU-Net budget, and reports both ratios beside the study's. It also prints the phantom's
whole-slice baseline row (real pre vs real post phase 1) beside the study's real-data row, to
say how much easier the phantom's anatomy is; that row is reported, never tuned to.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.segmentation.results import cell

log = logging.getLogger(__name__)

#: The study's real-data Dice (Osuala et al. 2024, Duke, Table 3).
STUDY_PRE_PRE, STUDY_POST_POST, STUDY_POST_PRE = 0.569, 0.790, 0.164
TARGETS = {
    "pre_over_post": STUDY_PRE_PRE / STUDY_POST_POST,
    "cross_over_post": STUDY_POST_PRE / STUDY_POST_POST,
}
TOLERANCE = 0.15
#: The study's whole-slice baseline, real pre vs real post phase 1 (Table 2, real data).
STUDY_BASELINE_ROW = {"ssim": 0.705, "ms_ssim": 0.780, "psnr": 32.42}
CALIBRATION_CELLS = {"scenarios": (1, 3, 4), "sets": ("A", "D")}


def lesion_cnr(images: np.ndarray, labels: np.ndarray, gt: dict, ring_px: int = 2) -> list[dict]:
    """Contrast-to-noise of each lesion against the parenchyma touching it, in every phase.

    CNR = (mean lesion − mean ring) / noise sd, the ring being the fat and FGT voxels within
    ``ring_px`` voxels of the lesion (in-plane and across slices); necrotic cores are left out
    (they are not what enhances).

    Args:
        images: (phases, z, y, x) of one case.
        labels: its tissue labels (phantom ``Tissue`` values and lesion labels).
        gt: its ground-truth record (``lesions``, ``noise_sigma``).
        ring_px: ring width in voxels.
    """
    from scipy.ndimage import binary_dilation

    from dcesynth.data.phantom.anatomy import LESION_BASE, Tissue, lesion_label

    sigma = float(gt["noise_sigma"])
    if not sigma > 0:
        raise ValueError(f"case {gt.get('case_id')}: noise_sigma must be > 0, got {sigma}")
    any_lesion = labels >= LESION_BASE
    parenchyma = (labels == Tissue.FAT) | (labels == Tissue.FGT)
    out = []
    for les in gt["lesions"]:
        inside = labels == lesion_label(les["index"])
        if not inside.any():
            continue
        grown = binary_dilation(inside, np.ones((3, 3, 3), bool), iterations=ring_px)
        ring = grown & ~any_lesion & parenchyma
        if not ring.any():
            continue
        # how wide the lesion is in the images: equivalent diameter of its largest axial section
        across = 2.0 * math.sqrt(float(inside.sum(axis=(1, 2)).max()) / math.pi)
        cnr = [
            float((images[p][inside].mean() - images[p][ring].mean()) / sigma)
            for p in range(images.shape[0])
        ]
        out.append(
            {
                "case_id": gt["case_id"],
                "index": les["index"],
                "shape": les.get("shape"),
                "curve_type": les.get("curve_type"),
                "diameter_mm": les["diameter_mm"],
                "across_px": across,
                "cnr_pre": cnr[0],
                "cnr_post": cnr[1:],
            }
        )
    return out


def cohort_cnr(cohort: Path) -> list[dict]:
    """:func:`lesion_cnr` of every case of a phantom cohort folder (its NIfTI and truth)."""
    import nibabel as nib

    rows = []
    for gt_file in sorted((cohort / "ground_truth").glob("*.json")):
        gt = json.loads(gt_file.read_text())
        cid = gt["case_id"]
        folder = cohort / "nifti" / "images" / cid
        files = sorted(folder.glob(f"{cid}_*.nii.gz"))
        if not files:
            raise FileNotFoundError(f"{folder}: no NIfTI images (generate with formats nifti)")
        # NIfTI stores (x, y, z); the phantom's arrays are (z, y, x)
        images = np.stack([np.asarray(nib.load(f).dataobj).T for f in files]).astype(np.float32)
        labels_file = cohort / "nifti" / "labels" / f"{cid}_labels.nii.gz"
        labels = np.asarray(nib.load(labels_file).dataobj).T
        rows += lesion_cnr(images, labels, gt)
    return rows


def baseline_rows(
    dataset: Path, split: str = "test", phase: int = 1
) -> tuple[dict[str, float], dict[str, float]]:
    """Whole-slice SSIM, MS-SSIM and PSNR of real pre against real post ``phase``: the study's
    row, and the same with each post slice first rescaled onto its pre.

    The rescaled row is a diagnostic, not the study's: per-volume min-max normalisation divides
    post by its brightest voxel (in the phantom the heart's blood pool), which darkens every
    other tissue; the rescaled row shows how much of the gap that scale explains.

    Args:
        dataset: an ingested dataset folder.
        split: the split whose slices are compared.
        phase: the post-contrast phase.
    """
    from dcesynth.evaluation.metrics import paired_metrics, summarise
    from dcesynth.evaluation.scoring import read_pairs

    pairs = read_pairs(dataset, split)
    if phase not in pairs.phases:
        raise ValueError(f"{dataset}: post phase {phase} not stored; it has {pairs.phases}")
    post = pairs.post[:, pairs.phases.index(phase)]

    def row(p: np.ndarray) -> dict[str, float]:
        vals = paired_metrics(p, pairs.pre, None, names=("ssim", "ms_ssim", "psnr"))
        return {k: v["mean"] for k, v in summarise(vals).items()}

    return row(post), row(rescale_onto(post, pairs.pre))


def rescale_onto(post: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """Each slice of ``post`` times its least-squares factor onto ``pre`` (dtype and range kept)."""
    x = post.astype(np.float64)
    y = pre.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    den = (x * x).sum(axis=axes, keepdims=True)
    a = np.where(den > 0, (x * y).sum(axis=axes, keepdims=True) / np.maximum(den, 1e-12), 1.0)
    out = x * a
    if np.issubdtype(post.dtype, np.integer):
        info = np.iinfo(post.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(post.dtype)


def ratios(cells: list[dict]) -> dict[str, float | None]:
    """Both calibration ratios from Table 3 cells (``None`` where a cell has no Dice)."""
    mean = {(c["scenario"], c["set"]): c.get("mean") for c in cells}
    post = mean.get((3, "D"))
    pre, cross = mean.get((1, "A")), mean.get((4, "D"))
    ok = post is not None and post > 0
    return {
        "dice_pre_pre": pre,
        "dice_post_post": post,
        "dice_post_pre": cross,
        "pre_over_post": pre / post if ok and pre is not None else None,
        "cross_over_post": cross / post if ok and cross is not None else None,
    }


def within(r: dict[str, float | None]) -> bool:
    """Both ratios within the tolerance of the study's."""
    return all(
        r.get(k) is not None and abs(r[k] - t) <= TOLERANCE  # type: ignore[operator]
        for k, t in TARGETS.items()
    )


def miss(r: dict[str, float | None]) -> float:
    """How far a candidate is from the targets (the larger of the two ratio errors)."""
    errs = [abs(r[k] - t) if r.get(k) is not None else math.inf for k, t in TARGETS.items()]
    return max(errs)  # type: ignore[arg-type]


def summarise_cnr(rows: list[dict]) -> dict[str, float]:
    pre = np.array([r["cnr_pre"] for r in rows], float)
    post = np.array([r["cnr_post"][0] for r in rows], float)
    return {
        "lesions": len(rows),
        "cnr_pre_median": float(np.median(pre)) if len(pre) else math.nan,
        "cnr_pre_abs_median": float(np.median(np.abs(pre))) if len(pre) else math.nan,
        "cnr_post1_median": float(np.median(post)) if len(post) else math.nan,
        "across_px_median": float(np.median([r["across_px"] for r in rows])) if rows else math.nan,
    }


def markdown(results: list[dict], budget: str) -> str:
    """The calibration's table: one row per candidate, the study's targets beside."""
    t = TARGETS
    lines = [
        "# Phantom calibration against the study's real-data baselines\n",
        f"nnU-Net budget: {budget}. Targets (Osuala et al. 2024, Duke): pre/post "
        f"{STUDY_PRE_PRE}/{STUDY_POST_POST} = **{t['pre_over_post']:.2f}**, "
        f"post→pre/post {STUDY_POST_PRE}/{STUDY_POST_POST} = **{t['cross_over_post']:.2f}**, "
        f"each ± {TOLERANCE}.\n",
        "| tumour_pd | lesions | CNR pre (median) | CNR post 1 (median) | Dice pre→pre | "
        "Dice post→post | Dice post→pre | pre/post | post→pre/post | within ± 0.15 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    f = cell
    for r in results:
        c, q = r["cnr"], r["ratios"]
        lines.append(
            f"| {r['tumour_pd']:g} | {c['lesions']} | {c['cnr_pre_median']:.2f} | "
            f"{c['cnr_post1_median']:.2f} | {f(q['dice_pre_pre'])} | {f(q['dice_post_post'])} | "
            f"{f(q['dice_post_pre'])} | {f(q['pre_over_post'])} | {f(q['cross_over_post'])} | "
            f"{'yes' if within(q) else 'no'} |"
        )
    lines += [
        "\n## Whole-slice baseline (real pre vs real post phase 1, test split)\n",
        "| | SSIM | MS-SSIM | PSNR (dB) |",
        "|---|---|---|---|",
        f"| study (real Duke data) | {STUDY_BASELINE_ROW['ssim']:.3f} | "
        f"{STUDY_BASELINE_ROW['ms_ssim']:.3f} | {STUDY_BASELINE_ROW['psnr']:.2f} |",
    ]
    for r in results:
        for key, what in (("baseline", ""), ("baseline_rescaled", ", post rescaled onto pre")):
            if (b := r.get(key)) is not None:
                lines.append(
                    f"| phantom, tumour_pd {r['tumour_pd']:g}{what} | {b['ssim']:.3f} | "
                    f"{b['ms_ssim']:.3f} | {b['psnr']:.2f} |"
                )
    lines.append(
        "\nThe rescaled row is a diagnostic, not the study's: each post slice is first scaled by "
        "its least-squares factor onto pre, removing the min-max normalisation's scale."
    )
    return "\n".join(lines) + "\n"


def merge(out: Path, results: list[dict], budget: str) -> list[dict]:
    """This run's candidates joined to those an earlier run left in ``out`` at the same budget.

    A candidate measured again replaces the earlier one; the list is sorted by ``tumour_pd``, so
    calibrating one value at a time builds one table. A report of another budget is not mixed in.
    """
    path = out / "calibration.json"
    earlier: list[dict] = []
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            log.warning("calibrate: %s unreadable (%s); starting a new table", path, e)
            data = {}
        if data.get("budget") == budget:
            earlier = list(data.get("candidates", []))
        elif data:
            log.warning("calibrate: %s holds another budget; its candidates are not kept", path)
    new = {r["tumour_pd"] for r in results}
    kept = [r for r in earlier if r.get("tumour_pd") not in new]
    return sorted(kept + list(results), key=lambda r: r["tumour_pd"])


def write(out: Path, results: list[dict], budget: str) -> Path:
    """``calibration.json`` and ``calibration.md`` into ``out`` (atomically)."""
    best = min(results, key=lambda r: miss(r["ratios"])) if results else None
    payload = {
        "targets": TARGETS,
        "tolerance": TOLERANCE,
        "study_baseline_row": STUDY_BASELINE_ROW,
        "budget": budget,
        "candidates": results,
        "best_tumour_pd": best["tumour_pd"] if best else None,
        "best_within_tolerance": within(best["ratios"]) if best else False,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "calibration.json", json.dumps(payload, indent=1))
    atomic_write_text(out / "calibration.md", markdown(results, budget))
    return out / "calibration.md"
