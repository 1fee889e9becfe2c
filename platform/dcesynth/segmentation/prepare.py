"""Volume preparation for segmentation: N4 bias-field correction and the single-breast crop.

Each case is prepared once (a Ray task) and every training set reuses the result:
``<study>/prepared/<case>/<part>_<version>.nii.gz`` (float32, N4-corrected), the part's label
``<part>_label.nii.gz`` (uint8) and ``case.json`` written last, which marks the case done.

* **N4** follows the study: SimpleITK's N4 fitted on the image shrunk by 4 inside an Otsu mask;
  the log bias field is then evaluated on the full-resolution grid and divided out. Each volume
  (real pre, real post, synthetic post) is corrected on its own, as the study did.
* **Crop**: axial volumes are cut at the middle column into the patient's right and left halves.
  ``tumour_side`` keeps the half that holds the mask's centre — the study's rule, an oracle,
  since it looks at the ground truth; should the mask cross the middle, the kept range widens to
  hold all of it. ``both_halves`` keeps both as separate parts (no mask needed), ``none`` the
  whole volume. A crop moves the NIfTI origin so that every voxel keeps its world position.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.segmentation.cases import StudyCase
from dcesynth.segmentation.config import N4Config, SegmentConfig


def n4_correct(
    volume: np.ndarray, spacing_xyz: tuple[float, float, float], cfg: N4Config
) -> tuple[np.ndarray, np.ndarray]:
    """The study's N4 recipe on a ``(z, y, x)`` volume.

    Args:
        volume: intensities (any real dtype).
        spacing_xyz: voxel size in mm, (x, y, z) as SimpleITK orders it.
        cfg: shrink factor, iterations per level and convergence threshold.

    Returns:
        (corrected volume, multiplicative bias field), both float32 ``(z, y, x)``.
    """
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(volume, np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing_xyz))
    mask = sitk.OtsuThreshold(img, 0, 1, 200)  # 1 above Otsu's threshold: the body
    shrink = [max(1, min(cfg.shrink, n // 4 or 1)) for n in img.GetSize()]
    small, small_mask = sitk.Shrink(img, shrink), sitk.Shrink(mask, shrink)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(cfg.iterations))
    n4.SetConvergenceThreshold(cfg.convergence)
    n4.Execute(small, small_mask)
    log_bias = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img)).astype(np.float32)
    bias = np.exp(log_bias)
    return (np.asarray(volume, np.float32) / bias).astype(np.float32), bias


def column_ranges(
    nx: int, rule: str, mask: np.ndarray | None, column_points_left: bool
) -> dict[str, tuple[int, int]]:
    """Column range ``[x0, x1)`` of each part of a ``(z, y, x)`` volume under a crop rule.

    Args:
        nx: number of columns.
        rule: ``none``, ``tumour_side`` or ``both_halves``.
        mask: the tumour mask (``tumour_side`` only).
        column_points_left: whether increasing column index moves to the patient's left.
    """
    mid = nx // 2
    first, second = (0, mid), (mid, nx)
    if rule == "none":
        return {"W": (0, nx)}
    if rule == "both_halves":
        right, left = (first, second) if column_points_left else (second, first)
        return {"R": right, "L": left}
    if rule != "tumour_side":
        raise ValueError(f"crop: unknown rule {rule!r}; allowed: none, tumour_side, both_halves")
    if mask is None or not mask.any():
        raise ValueError("crop tumour_side needs a non-empty tumour mask")
    cols = np.flatnonzero(mask.reshape(-1, nx).max(0))
    centre = 0.5 * (cols.min() + cols.max())
    x0, x1 = first if centre < mid else second
    return {"T": (min(x0, int(cols.min())), max(x1, int(cols.max()) + 1))}


def cropped_affine(affine: np.ndarray, x0: int) -> np.ndarray:
    """NIfTI affine of columns ``x0:`` (NIfTI's first index is our column)."""
    out = np.array(affine, float)
    out[:3, 3] = affine[:3, :3] @ np.array([x0, 0.0, 0.0]) + affine[:3, 3]
    return out


def downsample(zyx: np.ndarray, affine: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """In-plane block mean by ``factor`` of a ``(z, y, x)`` volume, and its NIfTI affine.

    Rows and columns beyond a whole block are dropped. A uint8 label becomes 1 where at least
    half of its block was (the tumour keeps its area); images stay float32. The affine's
    in-plane axes grow by ``factor`` and its origin moves to the first block's centre, so every
    voxel keeps its world position.

    Raises:
        ValueError: for a factor below 1 or larger than the volume.
    """
    if factor < 1:
        raise ValueError(f"in_plane_factor must be >= 1, got {factor}")
    if factor == 1:
        return zyx, np.asarray(affine, float)
    nz, ny, nx = zyx.shape
    if ny < factor or nx < factor:
        raise ValueError(f"in_plane_factor {factor} is larger than the {ny} × {nx} slices")
    by, bx = ny // factor, nx // factor
    blocks = zyx[:, : by * factor, : bx * factor].reshape(nz, by, factor, bx, factor)
    mean = blocks.mean(axis=(2, 4), dtype=np.float64)
    out = (mean >= 0.5).astype(np.uint8) if zyx.dtype == np.uint8 else mean.astype(np.float32)
    aff = np.array(affine, float)
    # NIfTI's first index is our column (x), its second our row (y)
    aff[:3, 3] = aff[:3, :3] @ np.array([(factor - 1) / 2, (factor - 1) / 2, 0.0]) + aff[:3, 3]
    aff[:3, 0] *= factor
    aff[:3, 1] *= factor
    return out, aff


def prep_fingerprint(cfg: SegmentConfig) -> dict:
    """The settings a prepared case depends on: a change means preparing again."""
    return {
        "crop": cfg.crop,
        "n4": cfg.n4.model_dump(mode="json"),
        "versions": cfg.versions(),
        "synthetic": str(cfg.synthetic) if "syn" in cfg.versions() else None,
        "synthetic_phase": cfg.synthetic_phase,
        "post_phase": cfg.post_phase,
        "in_plane_factor": cfg.in_plane_factor,
    }


def prepare_case(case: StudyCase, cfg: SegmentConfig, out: Path) -> dict:
    """Write one case's parts (every version and the label); skip a case already prepared.

    Returns the case record (``case.json``): parts with their column ranges and file names.
    """
    import nibabel as nib

    folder = Path(out) / case.case_id
    record_file = folder / "case.json"
    fp = prep_fingerprint(cfg)
    if record_file.is_file():
        rec = json.loads(record_file.read_text())
        if rec.get("settings") == fp:
            return rec
    folder.mkdir(parents=True, exist_ok=True)
    mask_img = nib.load(case.files["mask"])
    affine = np.asarray(mask_img.affine)
    mask = np.asarray(mask_img.dataobj, np.uint8).transpose(2, 1, 0)  # (z, y, x)
    spacing = tuple(float(s) for s in mask_img.header.get_zooms()[:3])
    # NIfTI affines are RAS (+x = patient's right): a column axis with negative x runs leftwards
    column_points_left = affine[0, 0] < 0
    ranges = column_ranges(mask.shape[2], cfg.crop, mask, column_points_left)
    versions = [v for v in cfg.versions() if v in case.files]
    parts: dict[str, dict] = {}
    for part, (x0, x1) in ranges.items():
        label, aff = downsample(mask[:, :, x0:x1], cropped_affine(affine, x0), cfg.in_plane_factor)
        _save(folder / f"{part}_label.nii.gz", label, aff)
        parts[part] = {"columns": [x0, x1], "label_voxels": int(label.sum()), "files": {}}
    n4 = {}
    for v in versions:
        vol = np.asarray(nib.load(case.files[v]).dataobj, np.float32).transpose(2, 1, 0)
        if cfg.n4.enabled:
            vol, bias = n4_correct(vol, spacing, cfg.n4)
            n4[v] = {"bias_min": float(bias.min()), "bias_max": float(bias.max())}
        for part, (x0, x1) in ranges.items():
            name = f"{part}_{v}.nii.gz"
            part_vol, aff = downsample(
                vol[:, :, x0:x1], cropped_affine(affine, x0), cfg.in_plane_factor
            )
            _save(folder / name, part_vol, aff)
            parts[part]["files"][v] = name
    rec = {"case_id": case.case_id, "settings": fp, "parts": parts, "n4": n4}
    atomic_write_text(record_file, json.dumps(rec, indent=1))
    return rec


def _save(path: Path, zyx: np.ndarray, affine: np.ndarray) -> None:
    """NIfTI written under a temporary name and renamed: never half a file under its name."""
    import nibabel as nib

    tmp = path.with_name(f".tmp-{path.name}")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(zyx.transpose(2, 1, 0)), affine), tmp)
    tmp.replace(path)
