"""Which patients a segmentation study uses, and the files of each, checked before any work.

A study reads from a prepared dataset (``volumes/<case>_000k.nii.gz``, ``<case>_mask.nii.gz``)
and, for the sets with synthetic versions, from a synthesis run (``<run>/synthetic/<split>/``).
:func:`collect_cases` returns the usable cases and, for every other case, why it is left out;
anything that makes the study impossible (a missing synthetic volume, a mask file that is
named but absent, geometry that disagrees, too few patients) raises :class:`StudyInputError`
naming the case and the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcesynth.config import ConfigError
from dcesynth.progress import progress_bar
from dcesynth.segmentation.config import SegmentConfig


class StudyInputError(ConfigError):
    """Inputs that make the study impossible; the message names the case and the file."""


@dataclass(frozen=True)
class StudyCase:
    """One patient of the study: its role and the volume behind each version."""

    case_id: str
    split: str  # the dataset's split
    role: str  # "fold" (cross-validation) or "test" (held out)
    files: dict[str, str] = field(default_factory=dict)  # pre/post/syn/mask → NIfTI path
    lesions: int = 1


def count_lesions(mask: np.ndarray, min_voxels: int) -> int:
    """Connected components (26-connectivity) of at least ``min_voxels`` voxels."""
    from scipy import ndimage

    labels, n = ndimage.label(mask > 0, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_voxels).sum())


def _synthetic_files(run: Path, phase: int) -> dict[str, Path]:
    """{case: synthetic post volume} over every split the run has synthesized."""
    out: dict[str, Path] = {}
    for rec in sorted((run / "synthetic").glob("*/synthesis.json")):
        meta = json.loads(rec.read_text())
        if phase not in meta.get("phases", []):
            continue
        for cid in meta["files"]:
            out[cid] = rec.parent / f"{cid}_{phase:04d}.nii.gz"
    return out


def _header(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    import nibabel as nib

    img = nib.load(path)
    return tuple(img.shape), np.asarray(img.affine)


def collect_cases(
    cfg: SegmentConfig, progress: bool | None = None
) -> tuple[list[StudyCase], dict[str, str]]:
    """The study's cases (fold cases first, then test cases) and ``{case: why left out}``.

    Args:
        cfg: the study (dataset, synthesis run, versions, test split, multifocal rule).
        progress: a bar while masks are read (default: in a terminal).

    Raises:
        StudyInputError: a missing input, disagreeing geometry or too few patients.
    """
    import nibabel as nib
    import pyarrow.parquet as pq

    if cfg.dataset is None:
        raise StudyInputError("config: `dataset` is required (a prepared dataset folder)")
    ds = Path(cfg.dataset)
    if not (ds / "cases.parquet").is_file():
        raise StudyInputError(f"{ds}: not a prepared dataset (no cases.parquet)")
    rows = pq.read_table(ds / "cases.parquet").to_pylist()
    versions = cfg.versions()
    syn: dict[str, Path] = {}
    if "syn" in versions:
        if cfg.synthetic is None:
            raise StudyInputError(
                f"config: `synthetic` is required: sets {cfg.training_sets()} include synthetic "
                "volumes (a run folder after `dcectl synthesize RUN --split …`)"
            )
        syn = _synthetic_files(Path(cfg.synthetic), cfg.synthetic_phase)
    excluded: dict[str, str] = {}
    cases: list[StudyCase] = []
    vol = ds / "volumes"
    with progress_bar(len(rows), "segmentation: check cases", progress) as advance:
        for r in rows:
            advance()
            cid = r["case_id"]
            if "post" in versions and cfg.post_phase not in r["phases_kept"]:
                raise StudyInputError(
                    f"{ds}: case {cid} has post phases {r['phases_kept'][1:]}; `post_phase` "
                    f"{cfg.post_phase} is not among them"
                )
            if not r["has_mask"]:
                excluded[cid] = "no tumour mask"
                continue
            files = {"mask": vol / f"{cid}_mask.nii.gz", "pre": vol / f"{cid}_0000.nii.gz"}
            if "post" in versions:
                files["post"] = vol / f"{cid}_{cfg.post_phase:04d}.nii.gz"
            role = "test" if r["split"] == cfg.test_split else "fold"
            if "syn" in versions and role == "fold":  # tests read real volumes only
                if cid not in syn:
                    have = sorted(
                        p.parent.name
                        for p in Path(cfg.synthetic).glob("synthetic/*/synthesis.json")
                    )
                    raise StudyInputError(
                        f"case {cid} (split {r['split']}): no synthetic phase "
                        f"{cfg.synthetic_phase} volume in {cfg.synthetic}/synthetic/ (it has "
                        f"splits {have}); run `dcectl synthesize {cfg.synthetic} --split "
                        f"{r['split']}`"
                    )
                files["syn"] = syn[cid]
            for name, p in files.items():
                if not p.is_file():
                    raise StudyInputError(f"case {cid}: {name} volume missing: {p}")
            shape, affine = _header(files["pre"])
            for p in files.values():
                s, a = _header(p)
                if s != shape or not np.allclose(a, affine, atol=1e-3):
                    raise StudyInputError(
                        f"case {cid}: {p} has shape {s} and affine {a.round(3).tolist()}, the "
                        f"pre-contrast volume {files['pre']} {shape} and {affine.round(3).tolist()}"
                    )
            mask = np.asarray(nib.load(files["mask"]).dataobj)
            lesions = count_lesions(mask, cfg.min_component_voxels)
            if lesions == 0:
                excluded[cid] = "empty tumour mask"
                continue
            if lesions > 1 and cfg.multifocal == "remove":
                excluded[cid] = f"multifocal: {lesions} lesions in the mask"
                continue
            cases.append(
                StudyCase(cid, r["split"], role, {k: str(v) for k, v in files.items()}, lesions)
            )
    cases.sort(key=lambda c: (c.role != "fold", c.case_id))
    n_fold = sum(c.role == "fold" for c in cases)
    n_test = len(cases) - n_fold
    if n_fold < cfg.folds:
        raise StudyInputError(
            f"{ds}: {n_fold} usable patients outside split {cfg.test_split!r} for {cfg.folds} "
            f"folds (each fold validates on ≥ 1 patient); left out: {_why(excluded)}"
        )
    if n_test == 0:
        raise StudyInputError(
            f"{ds}: no usable patient in test split {cfg.test_split!r}; left out: {_why(excluded)}"
        )
    return cases, excluded


def _why(excluded: dict[str, str]) -> str:
    if not excluded:
        return "none"
    counts: dict[str, int] = {}
    for reason in excluded.values():
        key = reason.split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} × {k}" for k, n in counts.items())
