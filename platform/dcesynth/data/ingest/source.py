"""What SOURCE holds: which format to read, where its cases are, boxes and masks beside it.

SOURCE may be any folder: a Duke-style download, a PACS export with every file in one folder,
the phantom's output folder (``dicom/`` and ``nifti/`` side by side), or a NIfTI tree. DICOM
cases are found by their headers (:mod:`dcesynth.data.readers.discovery`), NIfTI cases as
``<case>/<case>_000k.nii.gz`` folders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from dcesynth.data.ingest.config import IngestConfig
from dcesynth.data.ingest.executor import Runner, open_runner
from dcesynth.data.readers.discovery import Cohort, group, scan_headers, survey

log = logging.getLogger(__name__)

# Headers read per Ray task; a source of fewer files is scanned in the driver.
SCAN_CHUNK = 2000


class DatasetError(ValueError):
    """The ingest cannot run as asked; the message names the option or path."""


@dataclass(frozen=True)
class Source:
    fmt: str
    root: Path
    boxes: Path | None
    masks: Path | None
    box_slices: str
    files: tuple[str, ...] = ()  # DICOM: candidate files below root (relative)
    note: str | None = None  # how the format was chosen, when SOURCE held more than one


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix() if p != root else "."


def resolve_source(source: Path, cfg: IngestConfig) -> Source:
    """Format, root, boxes and masks: as configured, else found (the phantom's layout).

    Raises:
        DatasetError: SOURCE is not a folder, an option's path is missing, or SOURCE holds
            several NIfTI trees.
    """
    root = Path(source)
    if not root.is_dir():
        raise DatasetError(f"SOURCE {root}: not a directory")
    for opt, p in (("--boxes", cfg.boxes), ("--masks", cfg.masks), ("split.file", cfg.split.file)):
        if p is not None and not Path(p).exists():
            raise DatasetError(f"`{opt}` {p}: not found")
    found = survey(root)
    fmt, note = cfg.format, None
    if fmt == "auto":
        fmt = "nifti" if found.nifti_roots and not found.has_dicom() else "dicom"
        if fmt == "dicom" and found.nifti_roots:
            trees = ", ".join(_rel(p, root) for p in found.nifti_roots)
            note = (
                f"SOURCE holds DICOM files and a NIfTI tree ({trees}): reading the DICOM files "
                "(`--format nifti` reads the NIfTI tree)"
            )
    top = root
    if fmt == "nifti":
        if len(found.nifti_roots) > 1:
            trees = ", ".join(_rel(p, root) for p in found.nifti_roots)
            raise DatasetError(
                f"SOURCE {root}: several NIfTI trees ({trees}); point SOURCE at one of them"
            )
        top = found.nifti_roots[0] if found.nifti_roots else root
        if top != root:
            note = f"reading the NIfTI tree {_rel(top, root)} below SOURCE"
    # beside the format's own folder first (the phantom keeps NIfTI boxes in nifti/)
    near = list(dict.fromkeys([top, top.parent, root, root.parent]))
    boxes = cfg.boxes or _first_existing(
        [d / f"Annotation_Boxes.{e}" for d in near for e in ("csv", "xlsx")]
    )
    masks = cfg.masks or _first_existing(
        [m for d in near for m in (d / "masks", d / "nifti/masks")]
    )
    box_slices = (
        cfg.box_slices if cfg.box_slices != "auto" else ("instance" if fmt == "dicom" else "array")
    )
    files = found.dicom if fmt == "dicom" else ()
    return Source(fmt, top, boxes, masks, box_slices, files, note)


def discover(
    src: Source,
    address: str | None = None,
    workers: int | None = None,
    runner: Runner | None = None,
) -> Cohort:
    """Read the headers of SOURCE's DICOM files (in parallel tasks when there are many) and
    group them into cases.

    Args:
        src: the resolved source.
        address, workers: where to run the scan when no ``runner`` is given (engine ``auto``).
        runner: the ingest's own runner (Ray tasks or local processes).
    """
    files = list(src.files)
    chunks = [files[i : i + SCAN_CHUNK] for i in range(0, len(files), SCAN_CHUNK)]
    if len(chunks) <= 1:
        headers = scan_headers(src.root, files)
    else:
        own = runner is None
        run = runner if runner is not None else open_runner("auto", address, workers)
        try:
            root = str(src.root)
            handles = [run.submit(scan_headers, root, c, name="ingest:scan") for c in chunks]
            headers = [h for x in handles for h in run.result(x)]
        finally:
            if own:
                run.close()
    cohort = group(headers)
    log.info(
        "%d DICOM files: %d cases, %d files or series ignored",
        len(files),
        len(cohort.cases),
        len(cohort.ignored),
    )
    return cohort
