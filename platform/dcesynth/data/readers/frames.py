"""Frames of a DICOM series: one per classic image file, many per enhanced multi-frame file.

A DCE acquisition is often stored as ONE series whose frames at each slice position differ
only in time. Its time points are told apart by the first of :data:`TEMPORAL_KEYS` that gives
every frame at a slice position a distinct value (per position, so that 2-D acquisitions whose
slices carry their own acquisition times still sort right). When a series holds more time
points than phases can be numbered, the user chooses them (:func:`choose_time_points`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from dcesynth.data.geometry import Geometry
from dcesynth.data.readers.common import CaseError, clock_seconds, datetime_seconds
from dcesynth.durable import is_machine_error

REQUIRED = (
    "SeriesInstanceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
)
# The order in which header fields decide a frame's time point within a series.
TEMPORAL_KEYS = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "TriggerTime",
    "AcquisitionTime",
    "ContentTime",
)
INDEX_KEYS = TEMPORAL_KEYS[:2]
TIME_KEYS = TEMPORAL_KEYS[2:]  # seconds (TriggerTime is stored in ms)
# Phases are numbered 0 (pre) and 1..9 (IngestConfig.phases): a series with more time points
# than that cannot be read one phase per time point; its frames must be chosen.
MAX_TIME_POINTS = 10


@dataclass
class Frame:
    """One 2-D image of a series, with what ordering and assembly need."""

    path: Path
    ds: pydicom.Dataset  # the file's header (shared by the frames of a multi-frame file)
    index: int | None  # frame within a multi-frame file; None for a single-frame file
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None  # PixelSpacing: between rows, between columns
    thickness: float | None
    instance: int  # the box "slice" numbering: InstanceNumber, or the frame number
    slope: float
    intercept: float
    temporal: dict[str, float | None]
    missing: tuple[str, ...] = ()


def _floats(v) -> tuple[float, ...] | None:
    return tuple(float(x) for x in v) if v is not None else None


def _num(v) -> float | None:
    try:
        return float(v) if v is not None and str(v).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _item(seq) -> pydicom.Dataset | None:
    return seq[0] if seq is not None and len(seq) else None


def frames_of(key: str, root: Path, path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """The frames of one file (header only); missing geometry is noted, raised on use."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_frames(key, root, path, ds)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise CaseError(
            key,
            "multi-frame image without per-frame functional groups (not supported)",
            str(path.relative_to(root)),
        )
    trigger = _num(ds.get("TriggerTime"))
    return [
        Frame(
            path,
            ds,
            None,
            _floats(ds.get("ImagePositionPatient")),
            _floats(ds.get("ImageOrientationPatient")),
            _floats(ds.get("PixelSpacing")),
            _num(ds.get("SliceThickness")),
            int(ds.get("InstanceNumber", 0) or 0),
            float(ds.get("RescaleSlope", 1.0) or 1.0),
            float(ds.get("RescaleIntercept", 0.0) or 0.0),
            {
                "TemporalPositionIdentifier": _num(ds.get("TemporalPositionIdentifier")),
                "TemporalPositionIndex": _num(ds.get("TemporalPositionIndex")),
                "TriggerTime": trigger / 1000 if trigger is not None else None,
                "AcquisitionTime": clock_seconds(ds.get("AcquisitionTime")),
                "ContentTime": clock_seconds(ds.get("ContentTime")),
            },
            tuple(t for t in REQUIRED if t not in ds),
        )
    ]


def _enhanced_frames(key: str, root: Path, path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """Enhanced MR: per-frame functional groups, falling back to the shared ones."""
    per = ds.PerFrameFunctionalGroupsSequence
    shared = _item(ds.get("SharedFunctionalGroupsSequence")) or pydicom.Dataset()
    n = int(ds.get("NumberOfFrames", len(per)) or len(per))
    if len(per) != n:
        raise CaseError(
            key,
            f"{len(per)} per-frame functional groups for {n} frames",
            str(path.relative_to(root)),
        )

    def group(i: int, name: str) -> pydicom.Dataset:
        return _item(per[i].get(name)) or _item(shared.get(name)) or pydicom.Dataset()

    frames = []
    for i in range(n):
        pos = group(i, "PlanePositionSequence").get("ImagePositionPatient")
        iop = group(i, "PlaneOrientationSequence").get("ImageOrientationPatient")
        measures = group(i, "PixelMeasuresSequence")
        content = group(i, "FrameContentSequence")
        value = group(i, "PixelValueTransformationSequence")
        missing = [
            name
            for name, v in (
                ("PlanePositionSequence", pos),
                ("PlaneOrientationSequence", iop),
                ("PixelMeasuresSequence", measures.get("PixelSpacing")),
            )
            if v is None
        ]
        frames.append(
            Frame(
                path,
                ds,
                i,
                _floats(pos),
                _floats(iop),
                _floats(measures.get("PixelSpacing")),
                _num(measures.get("SliceThickness")),
                i + 1,  # one InstanceNumber for all frames: frames are numbered in the file
                float(value.get("RescaleSlope", ds.get("RescaleSlope", 1.0)) or 1.0),
                float(value.get("RescaleIntercept", ds.get("RescaleIntercept", 0.0)) or 0.0),
                {
                    "TemporalPositionIdentifier": None,
                    "TemporalPositionIndex": _num(content.get("TemporalPositionIndex")),
                    "TriggerTime": None,
                    "AcquisitionTime": datetime_seconds(content.get("FrameAcquisitionDateTime")),
                    "ContentTime": datetime_seconds(content.get("FrameReferenceDateTime")),
                },
                tuple(missing),
            )
        )
    return frames


def _where(root: Path, frame: Frame) -> str:
    return str(frame.path.relative_to(root))


def _check(key: str, root: Path, frames: list[Frame]) -> None:
    for f in frames:
        if f.missing:
            raise CaseError(key, f"missing {', '.join(f.missing)}", _where(root, f))


def _normal(f: Frame) -> np.ndarray:
    iop = np.asarray(f.orientation, float)
    return np.cross(iop[:3], iop[3:])


def _by_position(frames: list[Frame]) -> list[list[Frame]]:
    """Frames grouped by position along the slice normal (positions 1 µm apart are one)."""
    placed = [f for f in frames if f.position is not None and f.orientation is not None]
    if not placed:
        return []
    normal = _normal(placed[0])
    d = np.array([float(np.dot(f.position, normal)) for f in placed])
    order = np.argsort(d, kind="stable")
    groups: list[list[Frame]] = [[placed[order[0]]]]
    for a, b in itertools.pairwise(order):
        if d[b] - d[a] < 1e-3:
            groups[-1].append(placed[b])
        else:
            groups.append([placed[b]])
    return groups


def temporal_key(frames: list[Frame]) -> str | None:
    """The first of TEMPORAL_KEYS giving the frames at every slice position distinct values."""
    groups = _by_position(frames)
    if not groups or all(len(g) == 1 for g in groups):
        return None
    for k in TEMPORAL_KEYS:
        ok = all(
            None not in (vals := [f.temporal[k] for f in g]) and len(set(vals)) == len(vals)
            for g in groups
        )
        if ok:
            return k
    return None


def n_time_points(frames: list[Frame]) -> int:
    """How many time points the series holds (1 when no temporal key tells frames apart)."""
    if temporal_key(frames) is None:
        return 1
    return max(len(g) for g in _by_position(frames))


def split_time_points(
    key: str, root: Path, frames: list[Frame], desc: str
) -> tuple[list[list[Frame]], list[float] | None]:
    """A series → its time points in order (frame lists) and their times in seconds.

    Raises:
        CaseError: missing geometry, a gap in temporal positions, or positions holding
            different numbers of time points (missing files).
    """
    _check(key, root, frames)
    folder = str(frames[0].path.parent.relative_to(root))
    tkey = temporal_key(frames)
    if tkey is None:  # one time point; duplicate positions are reported on assembly
        return [frames], _times([frames])
    groups = _by_position(frames)
    counts = sorted({len(g) for g in groups})
    if len(counts) > 1:
        raise CaseError(
            key,
            f"series {desc!r}: {len(frames)} frames at {len(groups)} slice positions do not form "
            f"whole time points ({tkey} gives {counts[0]}..{counts[-1]} per position; "
            "missing or extra files?)",
            folder,
        )
    if tkey in INDEX_KEYS:
        values = sorted({f.temporal[tkey] for f in frames})
        if values != list(range(1, len(values) + 1)) or len(values) != counts[0]:
            raise CaseError(
                key,
                f"missing phase: temporal positions {[int(v) for v in values]} in series {desc!r}",
                folder,
            )
    ranked = [sorted(g, key=lambda f: f.temporal[tkey]) for g in groups]
    points = [[g[t] for g in ranked] for t in range(counts[0])]
    return points, _times(points)


def _times(points: list[list[Frame]]) -> list[float] | None:
    """Each time point's time (its earliest frame) from the first time field that varies
    between time points, else the first one every frame has."""
    present = [k for k in TIME_KEYS if all(f.temporal[k] is not None for p in points for f in p)]
    for k in present:
        t = [min(f.temporal[k] for f in p) for p in points]
        if len(set(t)) == len(t):
            return t
    if present:
        return [min(f.temporal[present[0]] for f in p) for p in points]
    return None


def _listed(times: list[float] | None) -> str:
    if times is None:
        return "frame times unknown (no TriggerTime, AcquisitionTime or ContentTime)"
    rel = [round(t - times[0], 3) for t in times]
    return "frame times (s after the first): " + ", ".join(f"{i}: {t:g}" for i, t in enumerate(rel))


def choose_time_points(
    key: str,
    where: str,
    desc: str,
    times: list[float] | None,
    n: int,
    frames: tuple[int, ...] | None,
    frame_times_s: tuple[float, ...] | None,
) -> list[int]:
    """Which time points of a single-series acquisition become the pre and post phases.

    ``frames`` (indices) or ``frame_times_s`` (nearest frame to each time after the first
    frame) when given; otherwise every time point, if there are at most MAX_TIME_POINTS.

    Raises:
        CaseError: listing the frame times and naming the options, when the choice is needed
            or cannot be met.
    """
    options = (
        "choose them with the option `frames` (--frames, frame indices, e.g. 0,5,10,15) or "
        "`frame_times_s` (--frame-times-s, seconds after the first frame, e.g. 0,60,120,180)"
    )
    head = f"series {desc!r} holds {n} time points (frames 0..{n - 1})"
    if frames is not None:
        if bad := [i for i in frames if i >= n]:
            raise CaseError(key, f"{head}: `frames` {bad} out of range; {_listed(times)}", where)
        return list(frames)
    if frame_times_s is not None:
        if times is None:
            raise CaseError(
                key, f"{head}, {_listed(None)}: `frame_times_s` cannot be used; use `frames`", where
            )
        rel = np.asarray(times) - times[0]
        step = float(np.median(np.diff(rel))) if n > 1 else 0.0
        chosen = []
        for t in frame_times_s:
            i = int(np.argmin(np.abs(rel - t)))
            if abs(rel[i] - t) > step / 2 + 1e-3:
                raise CaseError(
                    key, f"{head}: no frame near {t:g} s (`frame_times_s`); {_listed(times)}", where
                )
            chosen.append(i)
        if len(set(chosen)) != len(chosen):
            raise CaseError(
                key,
                f"{head}: `frame_times_s` {list(frame_times_s)} pick frames {chosen}, one twice; "
                f"{_listed(times)}",
                where,
            )
        return chosen
    if n > MAX_TIME_POINTS:
        raise CaseError(
            key,
            f"{head}, more than the {MAX_TIME_POINTS} phases (pre + 9 post) ingest numbers "
            f"one per time point: {options}; {_listed(times)}",
            where,
        )
    return list(range(n))


class PixelCache:
    """The pixels of the last multi-frame file read (its time points are assembled in turn)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.array: np.ndarray | None = None

    def frame(self, f: Frame) -> np.ndarray:
        if f.index is None:
            return pydicom.dcmread(f.path).pixel_array
        if self.path != f.path:
            self.path, self.array = None, None  # drop the old file before reading the next
            arr = pydicom.dcmread(f.path).pixel_array
            self.path, self.array = f.path, arr if arr.ndim == 3 else arr[None]
        return self.array[f.index]


def assemble(
    key: str, root: Path, frames: list[Frame], cache: PixelCache
) -> tuple[np.ndarray, Geometry, np.ndarray]:
    """Volume (stored order along the normal), its geometry and each slice's instance number."""
    _check(key, root, frames)
    f0 = frames[0]
    folder = str(f0.path.parent.relative_to(root))
    normal = _normal(f0)
    pos = np.array([float(np.dot(f.position, normal)) for f in frames])
    order = np.argsort(pos, kind="stable")
    steps = np.diff(pos[order])
    if len(frames) > 1:
        if np.min(steps) < 1e-3:
            raise CaseError(key, "duplicate slice positions in one series", folder)
        if np.max(np.abs(steps - np.median(steps))) > 0.05 * np.median(steps) + 1e-3:
            raise CaseError(key, "uneven slice spacing (missing slices?)", folder)
    rows, cols = int(f0.ds.Rows), int(f0.ds.Columns)
    vol = np.empty((len(frames), rows, cols), np.float32)
    for z, i in enumerate(order):
        f = frames[i]
        try:
            px = cache.frame(f)
        except Exception as e:
            if is_machine_error(e):  # a full disk or I/O error: not the case's fault
                raise
            raise CaseError(
                key, f"unreadable DICOM ({type(e).__name__}: {e})", _where(root, f)
            ) from None
        if px.shape != vol.shape[1:]:
            raise CaseError(
                key, f"slice of shape {px.shape} in a {vol.shape[1:]} series", _where(root, f)
            )
        # the common case (slope 1, intercept 0) without a float64 temporary: the same values
        vol[z] = px if (f.slope, f.intercept) == (1, 0) else px * f.slope + f.intercept
    ps = f0.spacing
    dz = float(np.median(steps)) if len(frames) > 1 else float(f0.thickness or 1.0)
    iop = np.asarray(f0.orientation, float)
    geom = Geometry(
        shape=vol.shape,
        spacing=(ps[1], ps[0], dz),
        origin=tuple(float(v) for v in frames[order[0]].position),
        direction=tuple(float(v) for v in np.column_stack([iop[:3], iop[3:], normal]).ravel()),
    )
    instances = np.array([frames[i].instance for i in order])
    return vol, geom, instances
