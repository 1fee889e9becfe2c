"""One patient's DICOM series → the DCE phases of a case.

The files of a case are those :mod:`~dcesynth.data.readers.discovery` found for one PatientID
(any layout), or, read directly, a Duke-style folder ``<root>/<case>/<study>/<series>/*.dcm``.
Series are recognised by description with a configurable table of regular expressions (real
names vary: ``ax dyn pre``, ``ax dyn 1st pass``, ``ax 3d dyn``, ``Ax Vibrant MultiPhase``, a typo
such as ``ax dyn 1st pas``) and by header facts: a contrast agent marks a post-contrast series
and acquisition time orders the phases. A single series holding all phases (classic or enhanced
multi-frame) is split into time points (see :mod:`~dcesynth.data.readers.frames`). Slices are
ordered by position along the slice normal, never by file name or InstanceNumber.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydantic import field_validator
from pydicom.uid import UID

from dcesynth.config import StrictModel
from dcesynth.data.readers.common import CaseError, RawCase, canonical, clock_seconds
from dcesynth.data.readers.discovery import NOT_DICOM_SUFFIXES
from dcesynth.data.readers.frames import (
    Frame,
    PixelCache,
    assemble,
    choose_time_points,
    frames_of,
    n_time_points,
    split_time_points,
)
from dcesynth.durable import is_machine_error


class SeriesRules(StrictModel):
    """How series descriptions map to DCE phases (case-insensitive regular expressions)."""

    dynamic: tuple[str, ...] = (r"dyn", r"vibrant", r"\bdce\b", r"fl3d", r"multi\s*-?phase")
    exclude: tuple[str, ...] = (r"\bloc", r"\bsub", r"\bmip\b", r"\bt2\b", r"dwi|diff")
    multiphase: tuple[str, ...] = (r"multi\s*-?phase",)
    pre: tuple[str, ...] = (r"\bpre\b",)
    ordinal: tuple[str, ...] = (
        r"\b(?P<n>[1-9])\s*(?:st|nd|rd|th)\b",
        r"\bph(?:ase)?\s*(?P<n>[1-9])\b",
        r"\bpost\s*(?P<n>[1-9])\b",
    )

    @field_validator("dynamic", "exclude", "multiphase", "pre", "ordinal")
    @classmethod
    def _compiles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
        return v

    @field_validator("ordinal")
    @classmethod
    def _named(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if "(?P<n>" not in p]
        if bad:
            raise ValueError(f"ordinal patterns need a named group (?P<n>…): {bad}")
        return v


def _any(patterns: tuple[str, ...], text: str) -> bool:
    return any(re.search(p, text, re.I) for p in patterns)


def _ordinal(patterns: tuple[str, ...], text: str) -> int | None:
    for p in patterns:
        if m := re.search(p, text, re.I):
            return int(m.group("n"))
    return None


def list_cases(root: Path) -> list[str]:
    """Case folders (one per patient) directly below ``root`` (a Duke tree read folder-wise)."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


class _Series:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.items: list[tuple[Path, pydicom.Dataset]] = []
        self._frames: list[Frame] | None = None

    @property
    def first(self) -> pydicom.Dataset:
        return self.items[0][1]

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "")).strip()

    @property
    def study(self) -> str:
        return str(self.first.get("StudyInstanceUID", ""))

    @property
    def has_agent(self) -> bool:
        return any(str(ds.get("ContrastBolusAgent", "")).strip() for _, ds in self.items)

    @property
    def time(self) -> float:
        times = [clock_seconds(ds.get("AcquisitionTime")) for _, ds in self.items]
        known = [t for t in times if t is not None]
        return min(known) if known else float("inf")

    def frames(self, key: str, root: Path) -> list[Frame]:
        if self._frames is None:
            self._frames = [f for p, ds in self.items for f in frames_of(key, root, p, ds)]
        return self._frames

    def folder(self, root: Path) -> str:
        return str(self.items[0][0].parent.relative_to(root))

    def where(self, root: Path) -> str:
        """Its file when it has one (an enhanced object; a folder of many cases), else folder."""
        if len(self.items) == 1:
            return str(self.items[0][0].relative_to(root))
        return self.folder(root)


# The SOP classes of MR images: a DCE phase is one of these, whatever the description says.
MR_IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
    }
)


def not_mr(ds: pydicom.Dataset) -> str | None:
    """Why a file is not an MR image (``"modality CT, CT Image Storage"``), or None when it is
    one (a file that states neither its modality nor its SOP class is given the benefit of the
    doubt: anonymisers sometimes strip both)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    meta = getattr(ds, "file_meta", None) or {}
    sop = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "") or "")
    if (not modality or modality == "MR") and (not sop or sop in MR_IMAGE_SOP_CLASSES):
        return None
    name = UID(sop).name if sop else ""
    sop_text = name if name and name != sop else (f"SOP class {sop}" if sop else "no SOP class")
    return f"modality {modality or '-'}, {sop_text}"


def mr_series(
    key: str, root: Path, series: dict[str, _Series]
) -> tuple[dict[str, _Series], list[dict]]:
    """The MR series of a case, and the non-MR series left out (each naming its file and
    modality). A CT file in a series described "ax dyn pre" is not a phase.

    Raises:
        CaseError: a series that mixes MR images with a non-MR file, naming that file.
    """
    keep: dict[str, _Series] = {}
    ignored: list[dict] = []
    for uid, s in series.items():
        why = [(p, w) for p, ds in s.items if (w := not_mr(ds)) is not None]
        if not why:
            keep[uid] = s
        elif len(why) == len(s.items):
            first = str(why[0][0].relative_to(root))
            more = f" ({len(why)} files, first {first})" if len(why) > 1 else f" ({first})"
            reason = f"not an MR image: {why[0][1]}{more}"
            ignored.append({**_ignored(root, s, reason), "file": first})
        else:
            p, w = why[0]
            raise CaseError(
                key,
                f"series {s.description!r} holds MR images and {len(why)} non-MR file(s) "
                f"({w}); remove them from the series",
                str(p.relative_to(root)),
            )
    return keep, ignored


def _headers(root: Path, key: str, files: list[str] | None = None) -> dict[str, _Series]:
    if files is None:
        paths = sorted(
            f
            for f in (root / key).rglob("*")
            if f.is_file()
            and not f.name.startswith(".")
            and f.suffix.lower() not in NOT_DICOM_SUFFIXES
        )
    else:
        paths = sorted(root / f for f in files)
    series: dict[str, _Series] = {}
    for f in paths:
        rel = str(f.relative_to(root))
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as e:  # pydicom raises many types for damaged files
            if is_machine_error(e):  # a full disk or I/O error: not the case's fault
                raise
            raise CaseError(key, f"unreadable DICOM ({type(e).__name__}: {e})", rel) from None
        if "SeriesInstanceUID" not in ds:
            raise CaseError(key, "not a DICOM image (no SeriesInstanceUID)", rel)
        uid = str(ds.SeriesInstanceUID)
        series.setdefault(uid, _Series(uid)).items.append((f, ds))
    if not series:
        raise CaseError(key, "no DICOM files found")
    return series


@dataclass
class _Phases:
    """The frames of each phase (pre first), their times when one series gave them all, and
    the series left out with why."""

    frames: list[list[Frame]]
    times: list[float] | None = None
    ignored: list[dict] = field(default_factory=list)


def _ignored(root: Path, s: _Series, reason: str) -> dict:
    return {"source": s.where(root), "series": s.description, "reason": reason}


def _select_phases(
    key: str,
    root: Path,
    series: dict[str, _Series],
    rules: SeriesRules,
    frames: tuple[int, ...] | None = None,
    frame_times_s: tuple[float, ...] | None = None,
) -> _Phases:
    """Pre then post phases from the series of one case."""
    ignored, dynamic = [], []
    for s in sorted(series.values(), key=lambda s: s.folder(root)):
        if hit := next((p for p in rules.exclude if re.search(p, s.description, re.I)), None):
            ignored.append(_ignored(root, s, f"matches series_rules.exclude '{hit}'"))
        elif not _any(rules.dynamic, s.description):
            ignored.append(_ignored(root, s, "not a dynamic series (series_rules.dynamic)"))
        else:
            dynamic.append(s)
    studies = sorted({s.study for s in dynamic})
    if len(studies) > 1:  # a patient scanned twice: which study the boxes describe is unknown
        where = sorted(sorted({s.folder(root) for s in dynamic if s.study == u}) for u in studies)
        raise CaseError(
            key, f"{len(studies)} studies hold dynamic series ({where}); keep one in SOURCE"
        )
    n_tp = {s.uid: n_time_points(s.frames(key, root)) for s in dynamic}
    multi = [s for s in dynamic if _any(rules.multiphase, s.description) or n_tp[s.uid] > 1]
    single = [s for s in dynamic if s not in multi]
    if not single and multi:
        # the widest coverage is the DCE acquisition (a 1-slice perfusion reference is not)
        chosen = min(multi, key=lambda s: (-len({f.position for f in s.frames(key, root)}), s.time))
        for s in multi:
            if s is not chosen:
                ignored.append(_ignored(root, s, "another single-series dynamic acquisition used"))
        points, times = split_time_points(key, root, chosen.frames(key, root), chosen.description)
        idx = choose_time_points(
            key,
            chosen.where(root),
            chosen.description,
            times,
            len(points),
            frames,
            frame_times_s,
        )
        return _Phases(
            [points[i] for i in idx], [times[i] for i in idx] if times else None, ignored
        )
    for s in multi:
        ignored.append(
            _ignored(root, s, f"holds {n_tp[s.uid]} time points; the per-phase series are used")
        )
    pre = [s for s in single if _any(rules.pre, s.description)]
    post = [s for s in single if s not in pre]
    if not pre:  # no "pre" in any name: the earliest series without contrast agent
        plain = sorted((s for s in post if not s.has_agent), key=lambda s: s.time)
        pre, post = plain[:1], [s for s in post if s not in plain[:1]]
    if not pre:
        names = sorted({s.description for s in series.values()})
        raise CaseError(key, f"missing phase: no pre-contrast series among {names}")
    if len(pre) > 1:
        raise CaseError(key, f"{len(pre)} series look pre-contrast: {[s.description for s in pre]}")
    # Physical order first (acquisition time), the ordinal in the name breaks ties.
    post.sort(key=lambda s: (s.time, _ordinal(rules.ordinal, s.description) or 99))
    ords = [_ordinal(rules.ordinal, s.description) for s in post]
    if post and None not in ords and sorted(ords) != list(range(1, len(post) + 1)):
        names = [s.description for s in post]
        raise CaseError(
            key,
            f"missing phase: post-contrast series numbered {sorted(ords)} "
            f"({names}), expected 1..{max(ords)}",
        )
    return _Phases([s.frames(key, root) for s in [pre[0], *post]], None, ignored)


def read_case(
    root: Path,
    key: str,
    rules: SeriesRules | None = None,
    keep: list[int] | None = None,
    files: list[str] | None = None,
    frames: tuple[int, ...] | None = None,
    frame_times_s: tuple[float, ...] | None = None,
) -> RawCase:
    """Read one case: the given files, or the folder ``root/key`` of a Duke-style tree.

    Args:
        root: the source's root; files and error messages are relative to it.
        key: the case (PatientID; the folder when ``files`` is None).
        rules: the series table.
        keep: phase indices (0 = pre) whose pixels to read; the others come back as None
            (all phases are still found and ordered). Default: all.
        files: the case's files (from discovery), relative to ``root``.
        frames, frame_times_s: the time points of a single-series dynamic acquisition that
            become the phases (see :func:`~dcesynth.data.readers.frames.choose_time_points`).

    Raises:
        CaseError: naming the case and file (unreadable DICOM, missing phase, mismatched
            geometry, duplicate or uneven slices, too many time points to number, …).
    """
    root = Path(root)
    series, not_mr_series = mr_series(key, root, _headers(root, key, files))
    if not series:
        raise CaseError(key, f"no MR image series ({not_mr_series[0]['reason']})")
    sel = _select_phases(key, root, series, rules or SeriesRules(), frames, frame_times_s)
    sel.ignored[:0] = not_mr_series
    phases = sel.frames
    wanted = sorted(
        {0, *(range(len(phases)) if keep is None else (k for k in keep if k < len(phases)))}
    )
    cache = PixelCache()
    read = {p: assemble(key, root, phases[p], cache) for p in wanted}
    del cache
    geoms = {p: r[1] for p, r in read.items()}
    instances = {p: r[2] for p, r in read.items()}
    for p, g in geoms.items():
        if not g.allclose(geoms[0], atol=1e-2):
            raise CaseError(
                key,
                f"pre and post phase {p} have different geometry: "
                f"{geoms[0].to_dict()} vs {g.to_dict()}",
                str(phases[p][0].path.parent.relative_to(root)),
            )
    vols, geom, reo = canonical(key, [read[p][0] for p in wanted], geoms[0])
    del read
    by_phase = dict(zip(wanted, vols, strict=True))
    vols = [by_phase.get(p) for p in range(len(phases))]
    if sel.times is not None:
        times = sel.times
    else:  # one series per phase: its acquisition time
        times = [
            min((clock_seconds(f.ds.get("AcquisitionTime")) or np.inf) for f in fs) for fs in phases
        ]
    t0 = times[0]
    acq = [round(float(t - t0), 3) if np.isfinite(t) and np.isfinite(t0) else None for t in times]
    ds0, post = phases[0][0].ds, phases[1][0].ds if len(phases) > 1 else None
    facts = {
        "manufacturer": str(ds0.get("Manufacturer", "")) or None,
        "model": str(ds0.get("ManufacturerModelName", "")) or None,
        "field_t": float(ds0.MagneticFieldStrength) if "MagneticFieldStrength" in ds0 else None,
        "tr_ms": float(ds0.RepetitionTime) if "RepetitionTime" in ds0 else None,
        "flip_deg": float(ds0.FlipAngle) if "FlipAngle" in ds0 else None,
        "agent": str(post.get("ContrastBolusAgent", "")) or None if post is not None else None,
    }
    ranks = np.argsort(np.argsort(instances[0], kind="stable"), kind="stable") + 1
    return RawCase(
        key=key,
        phases=vols,
        geometry=geom,
        acquisition_s=acq,
        facts=facts,
        identity=str(ds0.get("PatientID", "")) or None,
        slice_numbers=ranks,
        reorientation=reo,
        sources=[str(fs[0].path.parent.relative_to(root)) for fs in phases],
        ignored=sel.ignored,
    )
