"""One patient's pre-contrast volume, for prediction: the series a user points at, checked.

Ingest reads whole DCE studies. Prediction gets whatever a user has for a new patient — the
pre-contrast series alone (whatever its description), a whole study folder, a NIfTI file — and
must refuse what is not a pre-contrast volume *before* a generator turns it into images that
look plausible: a post-contrast series (a contrast agent in its headers, or a post-phase name),
a subtraction, MIP, T2 or DWI series (``series_rules.exclude``), a series with missing slices,
a file holding several volumes or colour channels, or a series dcesynth itself synthesised.
Errors are :class:`CaseError`\\ s naming the patient and the file or folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from dcesynth.data.geometry import Geometry, Reorientation
from dcesynth.data.readers.common import CaseError, canonical
from dcesynth.data.readers.dicom import (
    SeriesRules,
    _any,
    _headers,
    _ordinal,
    _select_phases,
    mr_series,
)
from dcesynth.data.readers.frames import (
    Frame,
    PixelCache,
    _normal,
    assemble,
    n_time_points,
    split_time_points,
)
from dcesynth.data.readers.nifti import PHASE_FILE, load_nifti
from dcesynth.durable import is_machine_error

# The ImageType value dcesynth writes into every series it synthesises: such a series is never
# taken for an acquired one (a second prediction over a folder that holds the first's output).
SYNTHETIC_MARK = "SYNTHETIC"
POST_WORDS = r"\bpost\b"


@dataclass
class PreVolume:
    """A checked pre-contrast volume.

    Attributes:
        key: the patient (DICOM PatientID, or the NIfTI file's case name).
        volume: float32 ``(z, y, x)`` in canonical orientation.
        geometry: its canonical geometry.
        reorientation: stored → canonical; ``reorientation.source`` is the input's own grid.
        source: where it came from (for messages and records).
        headers: DICOM only: each stored slice's header (no pixels), in stored order along the
            slice normal.
        frames: DICOM only: each stored slice's frame (file and frame index).
        nifti: NIfTI only: the file.
    """

    key: str
    volume: np.ndarray
    geometry: Geometry
    reorientation: Reorientation
    source: str
    headers: list[pydicom.Dataset] | None = None
    frames: list[Frame] | None = None
    nifti: Path | None = None

    @property
    def stored_geometry(self) -> Geometry:
        return self.reorientation.source


def is_synthetic(ds: pydicom.Dataset) -> bool:
    return SYNTHETIC_MARK in [str(v).strip().upper() for v in (ds.get("ImageType") or [])]


def _refuse_not_pre(
    key: str, where: str, desc: str, frames: list[Frame], rules: SeriesRules, named: bool
) -> None:
    """CaseError unless ``frames`` look like one pre-contrast grey-scale time point."""
    agents = sorted({str(f.ds.get("ContrastBolusAgent", "")).strip() for f in frames} - {""})
    advice = "predict needs the pre-contrast series, acquired before the contrast injection"
    if agents:
        raise CaseError(
            key,
            f"post-contrast series {desc!r} (ContrastBolusAgent {agents[0]!r}): {advice}",
            where,
        )
    if named:  # a multiphase series' description names all its phases; not checked then
        if hit := next((p for p in rules.exclude if re.search(p, desc, re.I)), None):
            raise CaseError(
                key,
                f"series {desc!r} matches series_rules.exclude {hit!r} (localiser, subtraction, "
                "MIP, T2 or DWI): not a pre-contrast T1 series",
                where,
            )
        n = _ordinal(rules.ordinal, desc)
        if not _any(rules.pre, desc) and (n is not None or re.search(POST_WORDS, desc, re.I)):
            phase = f" phase {n}" if n is not None else ""
            raise CaseError(
                key, f"series {desc!r} is named as post-contrast{phase}: {advice}", where
            )
    samples = {int(f.ds.get("SamplesPerPixel", 1) or 1) for f in frames}
    if samples != {1}:
        raise CaseError(
            key,
            f"series {desc!r} has {max(samples)} samples per pixel (colour): the model takes one "
            "grey-scale pre-contrast channel",
            where,
        )


def read_pre_dicom(
    root: Path, key: str, files: list[str] | None = None, rules: SeriesRules | None = None
) -> PreVolume:
    """The pre-contrast volume of one patient's DICOM files (found by discovery).

    One image series: it must be pre-contrast (a series holding every phase gives its first
    time point). Several: the pre phase as ingest chooses it (``series_rules``).

    Raises:
        CaseError: naming the patient and the file or folder (see the module's docstring).
    """
    root, rules = Path(root), rules or SeriesRules()
    series, not_mr_series = mr_series(key, root, _headers(root, key, files))
    if not series:
        first = not_mr_series[0]
        raise CaseError(key, f"no MR image series: {first['reason']}", first["source"])
    ours = [s for s in series.values() if is_synthetic(s.first)]
    images = {u: s for u, s in series.items() if s not in ours and "Rows" in s.first}
    if not images:
        what = "only series synthesised by dcesynth" if ours else "no image series"
        where = ours[0].where(root) if ours else None
        raise CaseError(key, f"{what}: give the acquired pre-contrast series", where)
    if len(images) == 1:
        (s,) = images.values()
        frames = s.frames(key, root)
        named = True
        if n_time_points(frames) > 1:  # one series holding every phase: time point 0 is pre
            frames = split_time_points(key, root, frames, s.description)[0][0]
            named = False
        where, desc = s.where(root), s.description
    else:
        try:
            sel = _select_phases(key, root, images, rules)
        except CaseError as e:
            if all(s.has_agent for s in images.values()):
                names = sorted(s.description for s in images.values())
                raise CaseError(
                    key,
                    f"post-contrast series only ({names}, each with a ContrastBolusAgent): "
                    "predict needs the pre-contrast series",
                    e.file,
                ) from None
            raise CaseError(
                key, f"{e.message}; point INPUT at the pre-contrast series' folder", e.file
            ) from None
        frames = sel.frames[0]
        chosen = next(
            s for s in images.values() if any(f is frames[0] for f in s.frames(key, root))
        )
        where, desc, named = chosen.where(root), chosen.description, False
    _refuse_not_pre(key, where, desc, frames, rules, named)
    vol, geom, _ = assemble(key, root, frames, PixelCache())  # gaps, duplicates → CaseError
    normal = _normal(frames[0])
    order = np.argsort([float(np.dot(f.position, normal)) for f in frames], kind="stable")
    stored = [frames[i] for i in order]
    if not np.isfinite(vol).all():
        raise CaseError(key, f"{int((~np.isfinite(vol)).sum())} NaN/inf voxels", where)
    (cvol,), cgeom, reo = canonical(key, [vol], geom, where)
    return PreVolume(key, cvol, cgeom, reo, where, [f.ds for f in stored], stored)


def read_pre_nifti(path: Path, key: str | None = None) -> PreVolume:
    """A NIfTI file holding one pre-contrast volume.

    Raises:
        CaseError: a file of several volumes or channels, a post-phase file name
            (``<case>_000k`` with k ≥ 1) or sidecar (``ContrastBolusAgent``), NaN voxels.
    """
    import json

    import nibabel as nib

    path = Path(path)
    stem = path.name.split(".nii")[0]
    key = key or stem
    try:
        shape = nib.load(str(path)).shape
    except Exception as e:
        if is_machine_error(e):  # a full disk or I/O error: not the case's fault
            raise
        raise CaseError(key, f"unreadable NIfTI ({type(e).__name__}: {e})", str(path)) from None
    extra = [n for n in shape[3:] if n != 1]
    if len(shape) < 3 or extra:
        raise CaseError(
            key,
            f"image of shape {tuple(shape)} holds {int(np.prod(extra)) if extra else 0} "
            "volumes/channels: the model takes one pre-contrast volume (one channel)",
            str(path),
        )
    if (m := PHASE_FILE.match(path.name)) and int(m.group("k")) > 0:
        raise CaseError(
            key,
            f"file named as post-contrast phase {int(m.group('k'))} (`_0000` is pre): "
            "predict needs the pre-contrast image",
            str(path),
        )
    sidecar = path.with_name(stem + ".json")
    if sidecar.is_file():
        agent = json.loads(sidecar.read_text()).get("ContrastBolusAgent")
        if agent:
            raise CaseError(
                key,
                f"post-contrast image (ContrastBolusAgent {agent!r} in {sidecar.name}): predict "
                "needs the pre-contrast image",
                str(path),
            )
    try:
        vol, geom = load_nifti(path)
    except Exception as e:
        if is_machine_error(e):  # a full disk or I/O error: not the case's fault
            raise
        raise CaseError(key, f"unreadable NIfTI ({type(e).__name__}: {e})", str(path)) from None
    if not np.isfinite(vol).all():
        raise CaseError(key, f"{int((~np.isfinite(vol)).sum())} NaN/inf voxels", str(path))
    (cvol,), cgeom, reo = canonical(key, [vol], geom, str(path))
    return PreVolume(key, cvol, cgeom, reo, str(path), nifti=path)
