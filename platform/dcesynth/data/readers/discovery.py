"""Which DICOM files belong to which patient and series: from the headers, never from folders.

Archives come laid out in many ways: one folder per patient (Duke's
``<patient>/<study>/<series>/*.dcm``), per study, per series, or every file of every patient in
one folder (a PACS export with random file names). Only the headers say what belongs together:
PatientID (the case key, as in ``Annotation_Boxes`` and ``<case>.nii.gz`` masks),
StudyInstanceUID and SeriesInstanceUID. :func:`survey` walks a source once (file names only),
:func:`scan_headers` reads headers without pixels (in Ray tasks for large sources), and
:func:`group` turns headers into cases, listing what it ignored and why.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.uid import UID

from dcesynth.durable import is_machine_error

# Files that are never DICOM: skipped by name, without opening them.
NOT_DICOM_SUFFIXES = {
    ".txt", ".json", ".xml", ".csv", ".tsv", ".md", ".xlsx", ".xls", ".nii", ".gz", ".zip",
    ".yaml", ".yml", ".log", ".png", ".jpg", ".jpeg", ".pdf", ".html", ".py", ".bval", ".bvec",
}  # fmt: skip
NIFTI_PHASE = re.compile(r"^(?P<case>.+)_(?P<k>\d{4})\.nii(\.gz)?$")
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # the SOP class of a DICOMDIR


@dataclass(frozen=True)
class Survey:
    """What a walk over a source found (hidden files and folders are left out).

    Attributes:
        dicom: candidate DICOM files, relative POSIX paths, sorted (any name not ruled out).
        nifti_roots: folders laid out as ``<case>/<case>_000k.nii.gz``.
    """

    root: Path
    dicom: tuple[str, ...]
    nifti_roots: tuple[Path, ...]

    def has_dicom(self) -> bool:
        """Whether any candidate carries the DICOM file prefix ("DICM" after 128 bytes)."""
        for rel in self.dicom:
            try:
                with open(self.root / rel, "rb") as f:
                    if f.read(132)[128:] == b"DICM":
                        return True
            except OSError:
                continue
        return False


def survey(root: Path) -> Survey:
    root = Path(root)
    dicom: list[str] = []
    nifti_roots: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # .git, .tmp-*
        here = Path(dirpath)
        for name in filenames:
            if name.startswith("."):
                continue
            m = NIFTI_PHASE.match(name)
            if m and m.group("case") == here.name:
                nifti_roots.add(here.parent)
            if Path(name).suffix.lower() in NOT_DICOM_SUFFIXES:
                continue
            dicom.append((here / name).relative_to(root).as_posix())
    return Survey(root, tuple(sorted(dicom)), tuple(sorted(nifti_roots)))


@dataclass(frozen=True)
class Header:
    """The facts of one file that grouping needs (small: many of them cross Ray's object store).

    ``error`` is set when the file cannot be read as an image: it is then attributed to the
    patient whose images share its folder, so that the case reports it rather than losing a
    slice unnoticed.
    """

    path: str
    patient: str | None = None
    study: str | None = None
    series: str | None = None
    sop: str | None = None
    sop_class: str = ""
    modality: str = ""
    description: str = ""
    has_pixels: bool = False
    has_geometry: bool = False
    error: str | None = None
    directory_file: bool = False


def _header(root: Path, rel: str) -> Header:
    try:
        ds = pydicom.dcmread(root / rel, stop_before_pixels=True)
    except Exception as e:  # pydicom raises many types for damaged files
        if is_machine_error(e):  # a full disk or I/O error: not the case's fault
            raise
        return Header(rel, error=f"unreadable DICOM ({type(e).__name__}: {e})")
    meta = getattr(ds, "file_meta", None) or {}
    sop_class = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == MEDIA_DIRECTORY or "DirectoryRecordSequence" in ds:
        return Header(rel, sop_class=MEDIA_DIRECTORY, directory_file=True)
    if "SeriesInstanceUID" not in ds:
        return Header(rel, error="not a DICOM image (no SeriesInstanceUID)")
    enhanced = "PerFrameFunctionalGroupsSequence" in ds
    return Header(
        rel,
        patient=str(ds.get("PatientID", "") or "").strip() or None,
        study=str(ds.get("StudyInstanceUID", "") or "") or None,
        series=str(ds.SeriesInstanceUID),
        sop=str(ds.get("SOPInstanceUID", "") or "") or None,
        sop_class=sop_class,
        modality=str(ds.get("Modality", "") or ""),
        description=str(ds.get("SeriesDescription", "") or "").strip(),
        # stop_before_pixels drops PixelData itself: an image is what has a matrix
        has_pixels="Rows" in ds and "Columns" in ds,
        has_geometry=enhanced or ("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds),
    )


def scan_headers(root: str | Path, paths: list[str]) -> list[Header]:
    """Headers of ``paths`` (relative to ``root``), without pixel data; never raises."""
    return [_header(Path(root), rel) for rel in paths]


@dataclass
class Cohort:
    """Cases found by :func:`group`.

    Attributes:
        cases: case key (PatientID) → its files (relative paths, sorted).
        errors: case key → why the whole case cannot be used (e.g. images stored twice).
        ignored: files and series left out, each ``{"source", "reason"}`` (+ ``"case"``).
    """

    cases: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    ignored: list[dict] = field(default_factory=list)


def _top(rel: str) -> str:
    """The folder directly below the root that holds ``rel`` ("." for a file at the root)."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else "."


def _folder(rel: str) -> str:
    return str(PurePosixPath(rel).parent)


def _apart(a: str, b: str) -> tuple[str, str]:
    """The first path components in which two files' paths differ (their distinct folders)."""
    pa, pb = PurePosixPath(a).parts, PurePosixPath(b).parts
    pairs = enumerate(zip(pa, pb, strict=False))
    n = next((i for i, (x, y) in pairs if x != y), min(len(pa), len(pb)))
    return "/".join(pa[: n + 1]), "/".join(pb[: n + 1])


def _sop_name(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name if name and name != uid else (f"SOP class {uid}" if uid else "no SOP class")


def group(headers: list[Header]) -> Cohort:
    """Headers → cases by PatientID, series by SeriesInstanceUID; non-images left out with why.

    * A file without PatientID belongs to the folder directly below the root (a case named
      after it), or, at the root itself, to nobody (ignored).
    * A series none of whose files holds an image matrix (structured reports, presentation
      states, key objects) is ignored, as is one whose images lack a position and orientation
      in the patient (secondary captures, screenshots): neither can be a DCE phase.
    * An unreadable file joins the patient whose images share its folder (that case then
      fails naming the file); in a folder of several patients it is ignored.
    * The same SOP instance in two files (a case copied twice): the case fails naming both
      folders, since which copy is right cannot be told.
    """
    out = Cohort()
    images: dict[str, list[Header]] = defaultdict(list)  # patient → image headers
    series: dict[tuple[str, str], list[Header]] = defaultdict(list)
    broken: list[Header] = []
    for h in sorted(headers, key=lambda h: h.path):
        if h.directory_file:
            out.ignored.append({"source": h.path, "reason": "DICOMDIR (a media index, no image)"})
            continue
        if h.error is not None:
            broken.append(h)
            continue
        patient = h.patient or (_top(h.path) if _top(h.path) != "." else None)
        if patient is None:
            out.ignored.append({"source": h.path, "reason": "no PatientID, at the root of SOURCE"})
            continue
        series[(patient, h.series or "")].append(h)
    for (patient, _), hs in sorted(series.items()):
        reason = None
        if not any(h.has_pixels for h in hs):
            kinds = sorted({_sop_name(h.sop_class) for h in hs})
            reason = f"no image data ({', '.join(kinds)}; modality {hs[0].modality or '-'})"
        elif not any(h.has_geometry for h in hs):
            reason = "image without position/orientation in the patient (e.g. a secondary capture)"
        if reason is not None:
            out.ignored.append(
                {
                    "case": patient,
                    "source": _folder(hs[0].path) if len(hs) > 1 else hs[0].path,
                    "files": len(hs),
                    "series": hs[0].description,
                    "reason": reason,
                }
            )
            continue
        images[patient].extend(hs)
    by_folder: dict[str, set[str]] = defaultdict(set)
    for patient, hs in images.items():
        for h in hs:
            by_folder[_folder(h.path)].add(patient)
    for patient, hs in images.items():
        out.cases[patient] = [h.path for h in hs]
    for h in broken:
        owners = by_folder.get(_folder(h.path), set())
        if len(owners) == 1:
            out.cases[next(iter(owners))].append(h.path)
        else:
            who = "several patients" if owners else "no patient's images"
            out.ignored.append({"source": h.path, "reason": f"{h.error}; its folder holds {who}"})
    for patient, hs in images.items():
        seen: dict[str, str] = {}
        twice = []
        for h in hs:
            if h.sop is None:
                continue
            if h.sop in seen:
                twice.append((seen[h.sop], h.path))
            else:
                seen[h.sop] = h.path
        if twice:
            folders = sorted({f for a, b in twice for f in _apart(a, b)})
            out.errors[patient] = (
                f"duplicate case: {len(twice)} images stored twice, in folders {folders} "
                f"(e.g. {twice[0][0]} and {twice[0][1]}); keep one copy"
            )
    for patient in out.cases:
        out.cases[patient].sort()
    return out
