"""MAMA-SYNTH task preparation: 3D multi-phase DCE-MRI → one 2D pre/target slice pair per case.

The rules are those of the official preprocessing (``mama-synth``, ``gc_upload`` branch,
``src/preprocessing/preprocess.py``), each a pure function here:

* pre-contrast phase = the lowest phase index (:func:`pick_pre_phase`);
* target phase = the phase with the highest mean intensity inside the 3D tumour mask
  (:func:`pick_target_phase`). Like the official code every phase is a candidate, the
  pre-contrast one included; a tie goes to the lowest index. Picking the pre phase is logged;
* slice axis = the axis whose size is unique (:func:`pick_slice_axis`); slice = the one with the
  largest tumour area along it (:func:`pick_slice`, first on ties);
* ``np.rot90(k=1)`` of each slice (:func:`rotate`), z-scored with one dataset-level mean/std for
  both phases (:func:`zscore`), written as ``.mha``: float32 images, int16 masks (labels rounded),
  spacing (1, 1), origin 0, no resizing.

Arrays are read as nibabel lays them out (i, j, k) for NIfTI, as the official code does, so the
axis and rotation act on the same array; ``.mha`` sources are read with SimpleITK (k, j, i).

Where we differ on purpose: an empty tumour mask, NaN/inf voxels, phases of different shapes or
three different axis sizes make the case a ValueError (listed with its reason under the
manifest's ``skipped``) where the official code zeroes, logs or skips it.

Layout written (the official one)::

    OUT/mha/input/<pid>.mha         pre-contrast slice (float32, z-scored)
    OUT/mha/ground_truth/<pid>.mha  target slice (float32, z-scored)
    OUT/mha/mask/<pid>.mha          tumour mask slice (int16)
    OUT/manifest.json  OUT/splits.csv
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.data.ingest.transforms import assign_splits

log = logging.getLogger(__name__)

# The challenge's constants: mean and population std of all voxels of 1506 MAMA-MIA pre-contrast
# volumes (official src/preprocessing/training_pre_stats.json).
DATASET_MEAN = 107.41193853581365
DATASET_STD = 219.96180535228203
SEGMENTATION_DIRS = ("segmentations/expert", "segmentations", "masks")  # MAMA-MIA, then phantom
SUFFIXES = (".nii.gz", ".nii", ".mha")
SUBDIRS = {"input": "mha/input", "ground_truth": "mha/ground_truth", "mask": "mha/mask"}
DEFAULT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}


@dataclass(frozen=True)
class ZScore:
    """One dataset-level normalisation for both phases.

    Args:
        mean: subtracted from every voxel.
        std: divides the difference; must be finite and > 0.
        source: where the numbers come from (written to the manifest).
    """

    mean: float
    std: float
    source: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"z-score needs a finite mean and std > 0: {self.mean}, {self.std}")


CHALLENGE_ZSCORE = ZScore(
    DATASET_MEAN, DATASET_STD, "MAMA-SYNTH constants (1506 MAMA-MIA pre-contrast volumes)"
)


@dataclass(frozen=True)
class SourceCase:
    """One patient's files: ``phases`` maps phase index → volume, sorted by index."""

    patient_id: str
    phases: dict[int, Path]
    segmentation: Path | None


@dataclass
class PreparedCase:
    """What preparation chose for one case (a manifest row)."""

    patient_id: str
    pre_phase: int
    target_phase: int
    phase_means: dict[int, float]
    axis: int
    slice_index: int
    shape: tuple[int, int]
    files: dict[str, str] = field(default_factory=dict)


def phase_of(path: Path) -> int | None:
    """Phase index of ``<pid>_<k>.nii.gz`` (or .nii/.mha); None for other files."""
    stem = next((path.name[: -len(s)] for s in SUFFIXES if path.name.endswith(s)), None)
    if stem is None or "_" not in stem:
        return None
    tail = stem.rsplit("_", 1)[1]
    return int(tail) if tail.isdigit() else None


def find_cases(source: Path) -> list[SourceCase]:
    """Patients of a MAMA-MIA layout (``images/<pid>/<pid>_000k.nii.gz`` and
    ``segmentations/expert/<pid>.nii.gz``) or of the phantom's ``nifti/`` (``masks/<pid>.nii.gz``).

    Args:
        source: the folder holding ``images/``.

    Raises:
        ValueError: no ``images/`` folder, or no patient folder with phase files.
    """
    images = source / "images"
    if not images.is_dir():
        raise ValueError(f"{images}: no images/ folder (expected images/<pid>/<pid>_000k.nii.gz)")
    seg_dirs = [source / d for d in SEGMENTATION_DIRS if (source / d).is_dir()]
    cases = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        phases = {k: f for f in folder.iterdir() if f.is_file() and (k := phase_of(f)) is not None}
        if not phases:
            log.warning("%s: no phase files, not a case", folder)
            continue
        seg = next(
            (d / f"{folder.name}{s}" for d in seg_dirs for s in SUFFIXES
             if (d / f"{folder.name}{s}").is_file()),
            None,
        )  # fmt: skip
        cases.append(SourceCase(folder.name, dict(sorted(phases.items())), seg))
    if not cases:
        raise ValueError(f"{images}: no patient folder with <pid>_<k> phase files")
    return cases


def load_volume(path: Path) -> np.ndarray:
    """A 3D volume as float32: NIfTI through nibabel (scaled, (i, j, k)), .mha through SimpleITK.

    Raises:
        ValueError: unreadable, not 3D, or holding NaN/inf — the message names the file.
    """
    try:
        if path.name.endswith((".nii.gz", ".nii")):
            import nibabel as nib

            arr = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float32)
        else:
            import SimpleITK as sitk

            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
    except Exception as e:  # nibabel and ITK raise many types for a bad file
        raise ValueError(f"{path}: cannot read ({e})") from e
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: holds NaN or infinite values")
    return arr


def pick_pre_phase(phases: Iterable[int]) -> int:
    """The pre-contrast phase: the lowest of ``phases`` (ValueError when there is none)."""
    p = list(phases)
    if not p:
        raise ValueError("no phases to choose the pre-contrast one from")
    return min(p)


def tumour_means(volumes: Mapping[int, np.ndarray], mask: np.ndarray) -> dict[int, float]:
    """Mean intensity of each phase (index → volume) inside the 3D tumour mask (voxels > 0), in
    float64. ValueError for an empty mask or a volume of another shape."""
    inside = mask > 0
    if not inside.any():
        raise ValueError("the tumour mask is empty")
    out = {}
    for k in sorted(volumes):
        if volumes[k].shape != mask.shape:
            raise ValueError(f"phase {k} has shape {volumes[k].shape}, the mask {mask.shape}")
        out[k] = float(volumes[k][inside].astype(np.float64).mean())
    return out


def pick_target_phase(means: Mapping[int, float]) -> int:
    """The phase with the highest tumour mean; ties go to the lowest index (official rule).

    Args:
        means: phase index → mean tumour intensity (:func:`tumour_means`).

    Raises:
        ValueError: no phases.
    """
    if not means:
        raise ValueError("no phases to choose the target from")
    best = max(means.values())
    return min(k for k, v in means.items() if v == best)


def pick_slice_axis(shape: Sequence[int]) -> int:
    """The through-plane axis: the one whose size is unique. A cubic volume gives axis 2 (with a
    warning), as the official code does.

    Args:
        shape: the 3D volume's shape.

    Raises:
        ValueError: not 3D, or all three sizes differ (the official ``AmbiguousFOVError``).
    """
    if len(shape) != 3:
        raise ValueError(f"expected a 3D shape, got {tuple(shape)}")
    sizes = list(shape)
    if len(set(sizes)) == 1:
        log.warning("cubic volume %s: slice axis cannot be told from shape, using 2", tuple(shape))
        return 2
    unique = [i for i, s in enumerate(sizes) if sizes.count(s) == 1]
    if len(unique) != 1:
        raise ValueError(f"all three sizes of {tuple(shape)} differ: no unique slice axis")
    return unique[0]


def pick_slice(mask: np.ndarray, axis: int) -> int:
    """Index of the slice along ``axis`` (:func:`pick_slice_axis`) with the most tumour voxels
    (mask > 0), the first on ties. ValueError for a mask that is not 3D or a bad axis."""
    if mask.ndim != 3 or axis not in (0, 1, 2):
        raise ValueError(f"need a 3D mask and an axis in 0..2, got {mask.shape} and {axis}")
    others = tuple(i for i in range(3) if i != axis)
    return int(np.argmax((mask > 0).sum(axis=others)))


def rotate(image: np.ndarray) -> np.ndarray:
    """The official rotation: 90° counter-clockwise, ``np.rot90(k=1)``, on a 2D slice."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2D slice, got shape {image.shape}")
    return np.ascontiguousarray(np.rot90(image, k=1))


def zscore(image: np.ndarray, z: ZScore = CHALLENGE_ZSCORE) -> np.ndarray:
    """(image − mean) / std, computed in float64 and returned as float32."""
    return ((np.asarray(image, np.float64) - z.mean) / z.std).astype(np.float32)


def write_mha(array: np.ndarray, path: Path, label: bool = False) -> None:
    """Write a 2D slice as ``.mha`` (float32, or int16 rounded labels), spacing (1, 1), origin 0,
    uncompressed — through a temporary sibling renamed into place.

    Raises:
        ValueError: not 2D or non-finite.
    """
    import SimpleITK as sitk

    a = np.asarray(array)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise ValueError(f"{path}: need a finite 2D array, got shape {a.shape}")
    a = np.rint(a).astype(np.int16) if label else a.astype(np.float32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(a))
    img.SetSpacing((1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.stem}.", suffix=".mha", dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(img, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_case(case: SourceCase, out: Path, z: ZScore = CHALLENGE_ZSCORE) -> PreparedCase:
    """Prepare one case into ``out/mha/{input,ground_truth,mask}/<pid>.mha``.

    Args:
        case: the patient's files (:func:`find_cases`).
        out: the prepared task's root.
        z: the dataset-level normalisation.

    Raises:
        ValueError: missing segmentation, empty mask, mismatched shapes, no unique slice axis or
            an unreadable file; the message names the file.
    """
    if case.segmentation is None:
        raise ValueError(f"{case.patient_id}: no segmentation <pid>.nii.gz found")
    seg = load_volume(case.segmentation)
    volumes = {k: load_volume(p) for k, p in case.phases.items()}
    for k, v in volumes.items():
        if v.shape != seg.shape:
            raise ValueError(f"{case.phases[k]}: shape {v.shape} differs from the mask {seg.shape}")
    try:
        means = tumour_means(volumes, seg)
        axis = pick_slice_axis(seg.shape)
    except ValueError as e:
        raise ValueError(f"{case.segmentation}: {e}") from e
    pre, target = pick_pre_phase(volumes), pick_target_phase(means)
    if target == pre:
        log.warning("%s: the pre-contrast phase has the highest tumour mean", case.patient_id)
    index = pick_slice(seg, axis)
    pre_2d = rotate(zscore(np.take(volumes[pre], index, axis=axis), z))
    target_2d = rotate(zscore(np.take(volumes[target], index, axis=axis), z))
    mask_2d = rotate(np.take(seg, index, axis=axis))
    files = {}
    for key, arr, label in (("input", pre_2d, False), ("ground_truth", target_2d, False),
                            ("mask", mask_2d, True)):  # fmt: skip
        path = out / SUBDIRS[key] / f"{case.patient_id}.mha"
        write_mha(arr, path, label=label)
        files[key] = str(path.relative_to(out))
    return PreparedCase(case.patient_id, pre, target, means, axis, index, pre_2d.shape, files)


def dataset_zscore(cases: Iterable[SourceCase], source: str) -> ZScore:
    """Mean and population std of all voxels of the cases' pre-contrast volumes (the statistic
    of the official ``compute_dataset_stats.py``), merged volume by volume (Chan et al.)."""
    n, mean, m2 = 0, 0.0, 0.0
    for c in cases:
        v = load_volume(c.phases[pick_pre_phase(c.phases)]).astype(np.float64).ravel()
        nb, mb, vb = v.size, float(v.mean()), float(v.var())
        tot = n + nb
        delta = mb - mean
        mean += delta * nb / tot
        m2 += nb * vb + delta**2 * n * nb / tot
        n = tot
    if n == 0:
        raise ValueError("no pre-contrast voxels to compute the z-score from")
    return ZScore(mean, math.sqrt(m2 / n), source)


def prepare(
    source: Path,
    out: Path,
    z: ZScore | str = CHALLENGE_ZSCORE,
    ratios: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict:
    """Prepare every case of ``source`` into ``out``; write ``manifest.json`` and ``splits.csv``.

    Args:
        source: MAMA-MIA-style folder or the phantom's ``nifti/``.
        out: the task's root (created).
        z: a :class:`ZScore`, or ``"train"`` to compute it on the training split's pre-contrast
            volumes.
        ratios: patient split ratios (default 70/15/15 train/val/test).
        seed: split seed.

    Returns:
        The manifest.

    Raises:
        ValueError: a bad source, an unknown ``z`` or no case could be prepared.
    """
    cases = find_cases(Path(source))
    splits = assign_splits([c.patient_id for c in cases], dict(ratios or DEFAULT_RATIOS), seed)
    if isinstance(z, str):
        if z != "train":
            raise ValueError(f"z-score must be a ZScore or 'train', got {z!r}")
        train = [c for c in cases if splits[c.patient_id] == "train"]
        z = dataset_zscore(train, f"computed on the {len(train)} training cases' pre-contrast")
    done, skipped = [], []
    for c in cases:
        try:
            done.append(prepare_case(c, Path(out), z))
        except ValueError as e:
            log.warning("skipping %s: %s", c.patient_id, e)
            skipped.append({"patient_id": c.patient_id, "reason": str(e)})
    if not done:
        raise ValueError(f"{source}: no case could be prepared; first reason: {skipped[0]}")
    manifest = {
        "format": "dcesynth.challenge.prepare/1",
        "source": str(Path(source).resolve()),
        "zscore": asdict(z),
        "layout": SUBDIRS,
        "cases": [asdict(c) for c in done],
        "skipped": skipped,
        "splits": {c.patient_id: splits[c.patient_id] for c in done},
    }
    atomic_write_text(Path(out) / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patient_id", "split"])
    w.writerows([c.patient_id, splits[c.patient_id]] for c in done)
    atomic_write_text(Path(out) / "splits.csv", buf.getvalue())
    log.info("prepared %d cases into %s (%d skipped)", len(done), out, len(skipped))
    return manifest
