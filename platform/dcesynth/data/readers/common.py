"""What every reader returns, and the error that skips one case."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from dcesynth.data.geometry import Geometry, Reorientation


class CaseError(Exception):
    """One case cannot be used; the message names the case and, where known, the file."""

    def __init__(self, case: str, message: str, file: str | None = None) -> None:
        self.case, self.file, self.message = case, file, message
        super().__init__(f"{case}: {file}: {message}" if file else f"{case}: {message}")


@dataclass
class RawCase:
    """A case as read: phase volumes (pre first) on one canonical geometry.

    Attributes:
        key: the case's folder name in the source (never written to a prepared dataset).
        phases: float32 volumes ``(z, y, x)``, phase 0 pre-contrast, then post in time order.
        geometry: canonical geometry shared by all phases.
        acquisition_s: each phase's acquisition time, seconds after the pre phase (None unknown).
        facts: non-identifying acquisition facts (scanner, field, TR, flip angle, agent).
        identity: the patient key used to detect duplicates (kept in memory only).
        slice_numbers: Annotation_Boxes "slice" number of each *stored* slice (DICOM: rank of
            InstanceNumber, the Duke convention; NIfTI: 1 + k).
        reorientation: stored → canonical mapping (boxes are given in stored indices).
        mask: uint8 tumour mask on the canonical geometry, if the source has one.
        sources: per phase, the series folder or file it came from (relative to the root).
        ignored: series of the case left out, each ``{"source", "series", "reason"}``.
    """

    key: str
    phases: list[np.ndarray]
    geometry: Geometry
    acquisition_s: list[float | None]
    facts: dict = field(default_factory=dict)
    identity: str | None = None
    slice_numbers: np.ndarray | None = None
    reorientation: Reorientation | None = None
    mask: np.ndarray | None = None
    sources: list[str] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)


def canonical(
    case: str, volumes: list[np.ndarray], geom: Geometry, file: str | None = None
) -> tuple[list[np.ndarray], Geometry, Reorientation]:
    """Bring volumes stored on ``geom`` into canonical orientation (one copy each)."""
    try:
        r = Reorientation.of(geom)
    except ValueError as e:
        raise CaseError(case, str(e), file) from None
    return [np.ascontiguousarray(r.array(v)) for v in volumes], r.geometry, r


def clock_seconds(value: str | None) -> float | None:
    """DICOM TM ('HHMMSS.ffffff') or BIDS ('HH:MM:SS.ffffff') time of day in seconds."""
    if not value:
        return None
    v = str(value).replace(":", "").strip()
    try:
        return int(v[:2]) * 3600 + int(v[2:4] or 0) * 60 + float(v[4:] or 0)
    except ValueError:
        return None


def datetime_seconds(value) -> float | None:
    """DICOM DT ('YYYYMMDDHHMMSS.ffffff', optional UTC offset) in seconds on one time line."""
    v = str(value or "").split("+")[0].split("-")[0].strip()
    if len(v) < 8:
        return None
    try:
        day = dt.date(int(v[:4]), int(v[4:6]), int(v[6:8])).toordinal()
    except ValueError:
        return None
    clock = clock_seconds(v[8:]) if len(v) > 8 else 0.0
    return day * 86400.0 + (clock or 0.0)
