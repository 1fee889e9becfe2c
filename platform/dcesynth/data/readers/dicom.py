"""Duke-style DICOM trees: ``<root>/<case>/<study>/<series>/*.dcm``.

Series are recognised by description with a configurable table of regular expressions (real
names vary: ``ax dyn pre``, ``ax dyn 1st pass``, ``ax 3d dyn``, ``Ax Vibrant MultiPhase``, a typo
such as ``ax dyn 1st pas``) and by header facts: a contrast agent marks a post-contrast series
and acquisition time orders the phases. A single series holding all phases is split by
TemporalPositionIdentifier, else by AcquisitionTime. Slices are ordered by position along the
slice normal, never by file name or InstanceNumber.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydantic import field_validator

from dcesynth.config import StrictModel
from dcesynth.data.geometry import Geometry
from dcesynth.data.readers.common import CaseError, RawCase, canonical, clock_seconds

NOT_DICOM_SUFFIXES = {".txt", ".json", ".xml", ".csv", ".md", ".xlsx", ".nii", ".gz"}
REQUIRED = (
    "SeriesInstanceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
)


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
    """Case folders (one per patient) directly below ``root``."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


class _Series:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.items: list[tuple[Path, pydicom.Dataset]] = []

    @property
    def first(self) -> pydicom.Dataset:
        return self.items[0][1]

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "")).strip()

    @property
    def has_agent(self) -> bool:
        return any(str(ds.get("ContrastBolusAgent", "")).strip() for _, ds in self.items)

    @property
    def time(self) -> float:
        times = [clock_seconds(ds.get("AcquisitionTime")) for _, ds in self.items]
        known = [t for t in times if t is not None]
        return min(known) if known else float("inf")


def _headers(root: Path, key: str) -> dict[str, _Series]:
    series: dict[str, _Series] = {}
    files = sorted(f for f in (root / key).rglob("*") if f.is_file() and not f.name.startswith("."))
    for f in files:
        if f.suffix.lower() in NOT_DICOM_SUFFIXES:
            continue
        rel = str(f.relative_to(root))
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as e:  # pydicom raises many types for damaged files
            raise CaseError(key, f"unreadable DICOM ({type(e).__name__}: {e})", rel) from None
        if "SeriesInstanceUID" not in ds:
            raise CaseError(key, "not a DICOM image (no SeriesInstanceUID)", rel)
        uid = str(ds.SeriesInstanceUID)
        series.setdefault(uid, _Series(uid)).items.append((f, ds))
    if not series:
        raise CaseError(key, "no DICOM files found")
    return series


def _split_multiphase(key: str, s: _Series) -> list[list[tuple[Path, pydicom.Dataset]]]:
    """Phases of one series holding all of them, in time order."""
    groups: dict[float, list] = defaultdict(list)
    if all("TemporalPositionIdentifier" in ds for _, ds in s.items):
        for f, ds in s.items:
            groups[float(ds.TemporalPositionIdentifier)].append((f, ds))
        if sorted(groups) != list(range(1, len(groups) + 1)):
            raise CaseError(
                key,
                f"missing phase: temporal positions {sorted(groups)} in series {s.description!r}",
            )
    else:
        for f, ds in s.items:
            groups[clock_seconds(ds.get("AcquisitionTime")) or 0.0].append((f, ds))
    return [groups[k] for k in sorted(groups)]


def _select_phases(key: str, series: dict[str, _Series], rules: SeriesRules) -> list[list]:
    """Pre then post phases (lists of (file, header)) from the series of one case."""
    dynamic = [
        s
        for s in series.values()
        if _any(rules.dynamic, s.description) and not _any(rules.exclude, s.description)
    ]
    multi = [s for s in dynamic if _any(rules.multiphase, s.description)]
    single = [s for s in dynamic if s not in multi]
    if not single and multi:
        return _split_multiphase(key, min(multi, key=lambda s: s.time))
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
    return [pre[0].items] + [s.items for s in post]


def _assemble(key: str, root: Path, items: list) -> tuple[np.ndarray, Geometry, np.ndarray]:
    """Volume (stored order along the normal), its geometry and each slice's InstanceNumber."""
    f0, ds0 = items[0]
    for f, ds in items:
        if missing := [t for t in REQUIRED if t not in ds]:
            raise CaseError(key, f"missing {', '.join(missing)}", str(f.relative_to(root)))
    iop = np.asarray(ds0.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([float(np.dot(ds.ImagePositionPatient, normal)) for _, ds in items])
    order = np.argsort(pos, kind="stable")
    steps = np.diff(pos[order])
    if len(items) > 1:
        if np.min(steps) < 1e-3:
            raise CaseError(
                key, "duplicate slice positions in one series", str(f0.parent.relative_to(root))
            )
        if np.max(np.abs(steps - np.median(steps))) > 0.05 * np.median(steps) + 1e-3:
            raise CaseError(
                key, "uneven slice spacing (missing slices?)", str(f0.parent.relative_to(root))
            )
    vol = np.empty((len(items), int(ds0.Rows), int(ds0.Columns)), np.float32)
    for z, i in enumerate(order):
        f = items[i][0]
        try:
            ds = pydicom.dcmread(f)
            px = ds.pixel_array
        except Exception as e:
            raise CaseError(
                key, f"unreadable DICOM ({type(e).__name__}: {e})", str(f.relative_to(root))
            ) from None
        if px.shape != vol.shape[1:]:
            raise CaseError(
                key,
                f"slice of shape {px.shape} in a {vol.shape[1:]} series",
                str(f.relative_to(root)),
            )
        vol[z] = px * float(ds.get("RescaleSlope", 1.0)) + float(ds.get("RescaleIntercept", 0.0))
    ps = [float(v) for v in ds0.PixelSpacing]
    dz = float(np.median(steps)) if len(items) > 1 else float(ds0.get("SliceThickness", 1.0))
    first = items[order[0]][1]
    geom = Geometry(
        shape=vol.shape,
        spacing=(ps[1], ps[0], dz),
        origin=tuple(float(v) for v in first.ImagePositionPatient),
        direction=tuple(float(v) for v in np.column_stack([iop[:3], iop[3:], normal]).ravel()),
    )
    instances = np.array([int(items[i][1].get("InstanceNumber", 0)) for i in order])
    return vol, geom, instances


def read_case(
    root: Path, key: str, rules: SeriesRules | None = None, keep: list[int] | None = None
) -> RawCase:
    """Read one case folder of a Duke-style tree.

    Args:
        root: the tree's root.
        key: the case folder.
        rules: the series table.
        keep: phase indices (0 = pre) whose pixels to read; the others come back as None
            (all phases are still found and ordered). Default: all.

    Raises:
        CaseError: naming the case and file (unreadable DICOM, missing phase, mismatched
            geometry, duplicate or uneven slices, …).
    """
    root = Path(root)
    series = _headers(root, key)
    phases = _select_phases(key, series, rules or SeriesRules())
    wanted = sorted(
        {0, *(range(len(phases)) if keep is None else (k for k in keep if k < len(phases)))}
    )
    read = {p: _assemble(key, root, phases[p]) for p in wanted}
    geoms = {p: r[1] for p, r in read.items()}
    instances = {p: r[2] for p, r in read.items()}
    for p, g in geoms.items():
        if not g.allclose(geoms[0], atol=1e-2):
            raise CaseError(
                key,
                f"pre and post phase {p} have different geometry: "
                f"{geoms[0].to_dict()} vs {g.to_dict()}",
                str(phases[p][0][0].parent.relative_to(root)),
            )
    vols, geom, reo = canonical(key, [read[p][0] for p in wanted], geoms[0])
    del read
    by_phase = dict(zip(wanted, vols, strict=True))
    vols = [by_phase.get(p) for p in range(len(phases))]
    times = [
        min((clock_seconds(ds.get("AcquisitionTime")) or np.inf) for _, ds in items)
        for items in phases
    ]
    t0 = times[0]
    acq = [round(float(t - t0), 3) if np.isfinite(t) and np.isfinite(t0) else None for t in times]
    ds0, post = phases[0][0][1], phases[1][0][1] if len(phases) > 1 else None
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
        sources=[str(items[0][0].parent.relative_to(root)) for items in phases],
    )
