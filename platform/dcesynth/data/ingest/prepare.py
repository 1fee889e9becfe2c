"""One case, source → prepared: read, check, normalise, write volumes, select and resize slices.

``prepare_case`` runs inside a Ray task (one per case); it never raises for bad input but
returns the error, so one broken case cannot stop a cohort. An ``OSError`` about the machine
(full disk, I/O error, permissions: :data:`dcesynth.durable.MACHINE_ERRNOS`) is not about the
case: it comes back marked ``machine`` and stops the whole ingest, so that nothing is marked
complete and the re-run does the case.

The case key (PatientID) is untrusted: its mask is ``<masks>/<safe_name(key)>.nii.gz``
(:func:`dcesynth.names.child`), never a path the key spells.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.data.geometry import Geometry
from dcesynth.data.ingest.config import IngestConfig
from dcesynth.data.ingest.transforms import SquareResize, normalise, select_slices
from dcesynth.data.readers import dicom, nifti
from dcesynth.data.readers.boxes import box_in_stored_indices
from dcesynth.data.readers.common import CaseError, RawCase
from dcesynth.durable import MACHINE_ERRNOS, os_error_of
from dcesynth.names import child


@dataclass(frozen=True)
class CaseSpec:
    key: str  # source folder name (stays in the driver's report, never in the dataset)
    case_id: str  # pseudonym
    split: str
    fmt: str  # "dicom" | "nifti"
    root: str
    masks: str | None
    box_rows: tuple[dict, ...]  # Annotation_Boxes rows for this case (more than one: error)
    box_slices: str  # "instance" | "array"
    volumes_dir: str
    boxes_file: str | None = None  # its name, for error messages
    files: tuple[str, ...] = ()  # DICOM: the case's files found by discovery (relative to root)


def read_raw(spec: CaseSpec, cfg: IngestConfig) -> RawCase:
    keep = [0, *cfg.phases]  # pixels of the other phases are never read
    if spec.fmt == "dicom":
        raw = dicom.read_case(
            Path(spec.root),
            spec.key,
            cfg.series_rules,
            keep=keep,
            files=list(spec.files) if spec.files else None,
            frames=cfg.frames,
            frame_times_s=cfg.frame_times_s,
        )
        if spec.masks is not None and mask_path(spec.masks, spec.key).is_file():
            raw.mask = _dicom_mask(spec, raw)
        return raw
    masks = Path(spec.masks) if spec.masks else None
    return nifti.read_case(Path(spec.root), spec.key, masks, keep=keep)


def mask_path(masks: str | Path, key: str) -> Path:
    """The mask file of case ``key``: inside ``masks`` whatever the key says."""
    return child(masks, key, ".nii.gz")


def _dicom_mask(spec: CaseSpec, raw: RawCase) -> np.ndarray:
    path = mask_path(spec.masks, spec.key)
    try:
        mvol, mgeom = nifti.load_nifti(path)
    except Exception as e:
        raise CaseError(spec.key, f"unreadable mask ({type(e).__name__}: {e})", path.name) from None
    src = raw.reorientation.source
    if not mgeom.allclose(src, atol=1e-2):
        raise CaseError(
            spec.key,
            f"mask does not match its image: {mgeom.to_dict()} vs {src.to_dict()}",
            path.name,
        )
    return np.ascontiguousarray(raw.reorientation.array((mvol > 0.5).astype(np.uint8)))


def _box(spec: CaseSpec, raw: RawCase) -> tuple[int, ...] | None:
    if not spec.box_rows:
        return None
    if len(spec.box_rows) > 1:
        raise CaseError(
            spec.key,
            f"{len(spec.box_rows)} rows in the boxes file (duplicate case id)",
            spec.boxes_file,
        )
    src = raw.reorientation.source
    numbers = raw.slice_numbers if spec.box_slices == "instance" else np.arange(1, src.shape[0] + 1)
    stored = box_in_stored_indices(spec.key, spec.box_rows[0], src.shape, numbers, spec.boxes_file)
    return raw.reorientation.box(stored)


def prepare_case(spec: CaseSpec, cfg: IngestConfig) -> dict:
    """Returns ``{"ok": True, "row": …, "slices": …, "ignored": …}`` or
    ``{"ok": False, "error": …}`` (``ignored``: series of the case left out, with why)."""
    try:
        return {"ok": True, **_prepare(spec, cfg)}
    except Exception as e:  # a reader bug must not stop the cohort either; say what it was
        for f in Path(spec.volumes_dir).glob(f"{spec.case_id}_*"):  # nothing of a skipped case
            f.unlink(missing_ok=True)
        oe = os_error_of(e) if not isinstance(e, CaseError) else None
        if oe is not None and (oe is e or oe.errno in MACHINE_ERRNOS):
            # the machine, not the case (a write that failed): the driver stops the ingest
            return {
                "ok": False,
                "machine": True,
                "key": spec.key,
                "case_id": spec.case_id,
                "errno": oe.errno,
                "strerror": oe.strerror or str(oe),
                "filename": str(oe.filename) if oe.filename else spec.volumes_dir,
            }
        msg = (
            str(e)
            if isinstance(e, CaseError)
            else f"{spec.key}: unexpected {type(e).__name__}: {e}"
        )
        return {"ok": False, "key": spec.key, "case_id": spec.case_id, "error": msg}


def _prepare(spec: CaseSpec, cfg: IngestConfig) -> dict:
    import nibabel as nib

    raw = read_raw(spec, cfg)
    n_post = len(raw.phases) - 1
    if missing := [p for p in cfg.phases if p > n_post]:
        raise CaseError(
            spec.key, f"missing phase: post phase(s) {missing} asked for, the case has {n_post}"
        )
    keep = [0, *cfg.phases]
    geom: Geometry = raw.geometry.as_float32()  # DICOM and NIfTI sources give the same numbers
    for p in keep:
        if not np.isfinite(raw.phases[p]).all():
            bad = int((~np.isfinite(raw.phases[p])).sum())
            src = raw.sources[p] if p < len(raw.sources) else None
            raise CaseError(spec.key, f"{bad} NaN/inf voxels in phase {p}", src)
    box = _box(spec, raw)
    mask = raw.mask
    if mask is not None and mask.shape != geom.shape:
        raise CaseError(spec.key, f"mask of shape {mask.shape} for an image of {geom.shape}")
    vols = np.empty((len(keep), *geom.shape), np.uint8)
    windows = []  # each phase's [lo, hi]: how its uint8 maps back (kinetics compare phases)
    for i, p in enumerate(keep):  # one float volume at a time: 512² × 160 floats are 168 MB
        try:
            vols[i], window = normalise(
                cfg.normalisation,
                raw.phases[p],
                percentiles=cfg.percentiles,
                zscore_clip=cfg.zscore_clip,
                consume=True,  # dropped below: normalised in place, no float copy
            )
        except ValueError as e:
            raise CaseError(spec.key, f"phase {p}: {e}") from None
        windows.append(list(window))
        raw.phases[p] = None
    z_range = (box[0], box[1]) if box else _mask_z(mask)
    try:
        idx = select_slices(geom.shape[0], cfg.selection, z_range, cfg.margin_fraction)
    except ValueError as e:
        raise CaseError(spec.key, str(e)) from None
    # Normalised volumes at native resolution, with their geometry (synthesis and nnU-Net),
    # written once the case has passed every check.
    vdir = Path(spec.volumes_dir)
    for i, p in enumerate(keep):
        img = nib.Nifti1Image(vols[i].transpose(2, 1, 0), geom.affine_ras)
        nib.save(img, vdir / f"{spec.case_id}_{p:04d}.nii.gz")
    if mask is not None:
        nib.save(
            nib.Nifti1Image(mask.transpose(2, 1, 0), geom.affine_ras),
            vdir / f"{spec.case_id}_mask.nii.gz",
        )
    rs = SquareResize.plan(
        geom.shape[1], geom.shape[2], geom.spacing[1], geom.spacing[0], cfg.image_size
    )
    # a run of slices (selection "all", or a tumour's range) as a view, not a fancy-index copy
    run = idx.size and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1))
    kept = vols[:, idx[0] : idx[-1] + 1] if run else vols[:, idx]
    images = rs.apply(kept.transpose(1, 0, 2, 3))  # (n, 1 + P, S, S)
    msk = (
        rs.apply(mask[idx][:, None], binary=True)[:, 0]
        if mask is not None
        else np.zeros((len(idx), cfg.image_size, cfg.image_size), np.uint8)
    )
    box2d = rs.box(*box[2:]) if box else None
    tumour = (idx >= box[0]) & (idx <= box[1]) if box else (msk.reshape(len(idx), -1).max(1) > 0)
    slices = {
        "slice_index": idx.astype(np.int32),
        "pre": images[:, 0],
        "post": images[:, 1:],
        "mask": msk,
        "tumour": tumour,
        "box": [list(box2d) if t and box2d else None for t in tumour],
    }
    row = {
        "case_id": spec.case_id,
        "split": spec.split,
        "shape": list(geom.shape),
        "spacing": list(geom.spacing),
        "origin": list(geom.origin),
        "direction": list(geom.direction),
        "affine_lps": geom.affine_lps.ravel().tolist(),
        "phases_present": list(range(n_post + 1)),
        "phases_kept": keep,
        "acquisition_s": [raw.acquisition_s[p] for p in keep],
        "intensity_window": windows,
        **{
            k: raw.facts.get(k)
            for k in ("manufacturer", "model", "field_t", "tr_ms", "flip_deg", "agent")
        },
        "box_zyx": list(box) if box else None,
        "has_mask": mask is not None,
        "n_slices": len(idx),
        "n_tumour_slices": int(tumour.sum()),
        "resize": [rs.scale_y, rs.scale_x, rs.pad_y, rs.pad_x, rs.out_h, rs.out_w],
    }
    return {"row": row, "slices": slices, "ignored": raw.ignored}


def _mask_z(mask: np.ndarray | None) -> tuple[int, int] | None:
    if mask is None or not mask.any():
        return None
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).max(1))
    return int(zs.min()), int(zs.max())
