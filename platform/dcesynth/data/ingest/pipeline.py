"""``dcectl ingest``: a cohort on disk → a prepared dataset (DESIGN.md, "Data contracts").

Layout of the dataset directory::

    manifest.json            version, fingerprints, options, counts (no paths, no identities)
    cases.parquet            one row per case: pseudonym, split, geometry, phases, times, box
    volumes/<id>_000k.nii.gz normalised uint8 volumes at native resolution (k = 0 pre, posts)
    volumes/<id>_mask.nii.gz
    slices/<split>/part-NNNNN.parquet   one row per kept axial slice (see shards.py)
    ingest_report.json       cases skipped and files/series left out, and why (names source
                             folders, so they can be fixed)

Cases are prepared by Ray tasks (one per case) and written by the driver in case order. The
dataset is built under a hidden ``.tmp-`` name beside ``out``, fsynced, and renamed when
complete (the manifest, its completion marker, is written last), so an interrupted ingest
leaves nothing that looks like a dataset. One process at a time writes ``out``
(:func:`dcesynth.locks.folder_lock`).

A case is skipped only for a reason that is about the case. An ``OSError`` about the machine
(a full disk, an I/O error, a refused permission) stops the ingest instead: nothing is marked
complete, the error names the path and the space, and the re-run does the missing work. When
no case at all can be used, every reason is listed and ``ingest_report.json`` is still written
into ``out`` (which then holds that report only, and a later ingest may use it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dcesynth.cluster import check_engine
from dcesynth.config import atomic_write_text
from dcesynth.data.ingest.config import DATASET_VERSION, IngestConfig
from dcesynth.data.ingest.executor import Runner, open_runner
from dcesynth.data.ingest.failures import all_failed, machine_error
from dcesynth.data.ingest.prepare import CaseSpec, prepare_case
from dcesynth.data.ingest.shards import ShardWriter, slice_schema, slices_table
from dcesynth.data.ingest.source import DatasetError, Source, discover, resolve_source
from dcesynth.data.ingest.transforms import assign_splits, pseudonym
from dcesynth.data.readers import nifti
from dcesynth.data.readers.boxes import read_boxes
from dcesynth.data.readers.common import CaseError
from dcesynth.durable import (
    TMP_PREFIX,
    MachineError,
    os_error_of,
    replace_dir,
    tree_bytes,
)
from dcesynth.locks import folder_lock
from dcesynth.names import safe_name
from dcesynth.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    out: Path
    up_to_date: bool
    cases: dict[str, int] = field(default_factory=dict)
    slices: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    ignored: list[dict] = field(default_factory=list)  # files and series left out, with why
    source_format: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. which format SOURCE was read as


def source_fingerprint(paths: list[Path | None]) -> str:
    """Hash of every input file's relative path, size and modification time."""
    h = hashlib.sha256()
    for base in (Path(p) for p in paths if p is not None):
        files = [base] if base.is_file() else sorted(f for f in base.rglob("*") if f.is_file())
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(base.parent)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _existing(out: Path, fingerprint: str, cfg: IngestConfig) -> dict | None:
    """The manifest of an identical dataset in ``out``; refuse anything else there."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if out.is_dir() and [p.name for p in out.iterdir()] == ["ingest_report.json"]:
        return None  # an ingest in which no case could be used: only its report
    manifest = out / "manifest.json"
    if not manifest.is_file():
        raise DatasetError(
            f"--out {out}: exists and is not a prepared dataset; choose another --out"
        )
    old = json.loads(manifest.read_text())
    if old.get("fingerprint") == fingerprint:
        return old
    new = cfg.public_dump()
    diff = sorted(k for k in new if old.get("options", {}).get(k) != new[k])
    why = f"options that differ: {', '.join(diff)}" if diff else "the source files changed"
    raise DatasetError(
        f"--out {out}: holds a dataset made differently ({why}); "
        "write to a new --out or delete the old dataset"
    )


def _splits(keys: list[str], cfg: IngestConfig) -> dict[str, str]:
    if cfg.split.file is None:
        return assign_splits(keys, cfg.split.ratios, cfg.split.seed)
    path = Path(cfg.split.file)
    if path.suffix == ".json":
        table = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    else:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if rows and not {"case", "split"} <= set(rows[0]):
            raise DatasetError(f"split.file {path}: needs columns 'case' and 'split'")
        table = {r["case"]: r["split"] for r in rows}
    return {k: table[k] for k in keys if k in table}


def _cases(src: Source, runner: Runner):
    """Case keys, each DICOM case's files, cases that cannot be used (key → error) and what
    was left out of the source."""
    if src.fmt == "nifti":
        keys = nifti.list_cases(src.root)
        owners: dict[str, list[str]] = {}
        for k in keys:  # one patient under two folders that differ only in case
            owners.setdefault(k.lower(), []).append(k)
        errors = {
            k: f"{k}: duplicate case id: folders {ks} hold the same patient"
            for ks in owners.values()
            if len(ks) > 1
            for k in ks
        }
        return keys, {}, errors, []
    cohort = discover(src, runner=runner)
    errors = {k: str(CaseError(k, e)) for k, e in cohort.errors.items()}
    return sorted({*cohort.cases, *errors}), cohort.cases, errors, cohort.ignored


def ingest(
    source: Path,
    out: Path,
    cfg: IngestConfig,
    workers: int | None = None,
    address: str | None = None,
    progress: bool | None = None,
    engine: str = "auto",
) -> IngestResult:
    """Prepare ``source`` into the dataset ``out`` (one task per case).

    Args:
        source: any folder of DICOM files (cases found by PatientID in the headers, whatever
            the layout) or a NIfTI tree; a folder holding both is read as DICOM unless
            ``cfg.format`` says otherwise (see ``source.resolve_source``).
        out: the dataset directory; must not exist or hold this very dataset.
        cfg: the options.
        workers: CPUs of a local Ray instance or processes of the local pool [all].
        address: a Ray cluster to join instead.
        progress: draw a progress bar (default: in a terminal).
        engine: ``ray`` (tasks on a cluster or this machine's Ray), ``local`` (a process pool)
            or ``auto``: Ray when a cluster is named or Ray runs in this process, else local
            (Ray's start-up would be most of a small ingest; see ``executor.py``). The
            dataset is the same bytes either way.

    Raises:
        DatasetError: for unusable options or ``out`` (before any work).
        ValueError: an unknown engine, or ``local`` with an address.
    """
    t0 = time.perf_counter()
    out = Path(out)
    check_engine(engine, address)  # an unknown engine is refused before anything is read
    src = resolve_source(source, cfg)
    with folder_lock(out, "ingest"):  # a second ingest into out is refused, naming this one
        res = _ingest(src, out, cfg, workers, address, progress, engine)
    res.wall_s = time.perf_counter() - t0
    return res


def _up_to_date(out: Path, old: dict) -> IngestResult:
    log.info("%s is up to date (fingerprint %s): nothing to do", out, old["fingerprint"])
    c = old["counts"]
    report = out / "ingest_report.json"
    rep = json.loads(report.read_text()) if report.is_file() else {}
    return IngestResult(
        out,
        True,
        c["cases"],
        c["slices"],
        rep.get("skipped", []),
        ignored=rep.get("ignored", []),
        source_format=old.get("source_format", ""),
        notes=[old["source_note"]] if old.get("source_note") else [],
    )


def _pseudonyms(keys: list[str], salt: str) -> dict[str, str]:
    """Each case key's pseudonym; two keys with one pseudonym would share files: refused."""
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for k in keys:
        p = pseudonym(k, salt)
        if p in owner:
            raise DatasetError(f"cases {owner[p]!r} and {k!r} get one pseudonym {p}; change `salt`")
        owner[p], out[k] = k, p
    return out


def _ingest(
    src: Source,
    out: Path,
    cfg: IngestConfig,
    workers: int | None,
    address: str | None,
    progress: bool | None,
    engine: str,
) -> IngestResult:
    fp = cfg.fingerprint(source_fingerprint([src.root, src.boxes, src.masks, cfg.split.file]))
    if old := _existing(out, fp, cfg):
        return _up_to_date(out, old)
    if src.note:
        log.info("%s", src.note)
    runner = open_runner(engine, address, workers)
    try:
        return _ingest_with(runner, src, out, cfg, fp, progress)
    finally:
        runner.close()


def _ingest_with(
    runner: Runner, src: Source, out: Path, cfg: IngestConfig, fp: str, progress: bool | None
) -> IngestResult:
    keys, files, errors, ignored = _cases(src, runner)
    if not keys:
        left = f"; {len(ignored)} left out, first: {ignored[0]}" if ignored else ""
        raise DatasetError(
            f"SOURCE {src.root}: no case folders found (no DICOM image, no NIfTI tree "
            f"<case>/<case>_0000.nii.gz){left}"
        )
    ids = _pseudonyms(keys, cfg.salt)
    boxes = read_boxes(src.boxes) if src.boxes else {}
    splits = _splits(keys, cfg)
    # safe under the lock: no other ingest is writing beside out
    for stale in out.parent.glob(f"{TMP_PREFIX}{out.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f"{TMP_PREFIX}{out.name}-{uuid.uuid4().hex[:8]}"
    (tmp / "volumes").mkdir(parents=True)
    skipped = [
        {"source": k, "case_id": ids[k], "error": f"{k}: not in split.file"}
        for k in keys
        if k not in splits
    ]
    skipped += [
        {"source": k, "case_id": ids[k], "error": errors[k]} for k in sorted(splits) if k in errors
    ]
    specs = [
        CaseSpec(
            k,
            ids[k],
            splits[k],
            src.fmt,
            str(src.root),
            str(src.masks) if src.masks else None,
            tuple(boxes.get(k, ())),
            src.box_slices,
            str(tmp / "volumes"),
            src.boxes.name if src.boxes else None,
            tuple(files.get(k, ())),
        )
        for k in sorted(splits)
        if k not in errors
    ]
    # keys that are no plain file name: their mask is looked up under the safe name
    names = {k: n for k in keys if (n := safe_name(k)) != k}
    report = {"skipped": skipped, "ignored": ignored, **({"names": names} if names else {})}
    try:
        rows, writers = _run(runner, specs, cfg, tmp, skipped, ignored, progress)
        if not rows:
            all_failed(out, report, len(keys))
        _finish(tmp, out, cfg, src, fp, rows, writers, report)
    except BaseException as e:
        written = tree_bytes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        oe = os_error_of(e) if not isinstance(e, (MachineError, DatasetError)) else None
        if oe is not None:
            raise machine_error(oe, out, written, len(specs)) from e
        raise
    for s in skipped:
        log.warning("skipped %s", s["error"])
    if ignored:
        log.info("%d files or series left out (see ingest_report.json)", len(ignored))
    return IngestResult(
        out,
        False,
        _count(rows),
        {n: w.total_rows for n, w in writers.items()},
        skipped,
        ignored=ignored,
        source_format=src.fmt,
        notes=[src.note] if src.note else [],
    )


def _count(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["split"]] = out.get(r["split"], 0) + 1
    return out


def _run(runner: Runner, specs, cfg, tmp, skipped, ignored, progress):
    """Prepare every case on ``runner`` (a window of twice its slots in flight) and write the
    slices in submission order: shards come out the same on every run and either engine."""
    window = max(2, 2 * runner.slots)
    todo, pending = deque(specs), deque()
    schema = slice_schema(cfg.image_size, len(cfg.phases))
    writers: dict[str, ShardWriter] = {}
    rows: list[dict] = []
    with progress_bar(len(specs), "ingest cases", progress) as advance:
        while todo or pending:
            while todo and len(pending) < window:
                spec = todo.popleft()
                name = f"ingest:{spec.case_id}"
                pending.append((spec, runner.submit(prepare_case, spec, cfg, name=name)))
            spec, handle = pending.popleft()
            res = runner.result(handle)
            advance()
            if res.get("machine"):  # the machine, not the case: stop, mark nothing complete
                for _, h in pending:
                    runner.cancel(h)
                raise OSError(res["errno"], res["strerror"], res["filename"])
            if not res["ok"]:
                skipped.append({"source": spec.key, "case_id": spec.case_id, "error": res["error"]})
                continue
            w = writers.setdefault(
                spec.split, ShardWriter(tmp / "slices" / spec.split, schema, cfg.target_shard_mb)
            )
            w.write(slices_table(spec.case_id, res["slices"], schema))
            rows.append(res["row"])
            ignored.extend({"case": spec.key, **e} for e in res.get("ignored", []))
    for w in writers.values():
        w.close()
    return rows, writers


def _finish(tmp, out, cfg, src, fp, rows, writers, report) -> None:
    pq.write_table(pa.Table.from_pylist(rows), tmp / "cases.parquet")
    counts = {
        "cases": _count(rows),
        "slices": {n: w.total_rows for n, w in writers.items()},
        "skipped": len(report["skipped"]),
    }
    manifest = {
        "kind": "dcesynth-dataset",
        "version": DATASET_VERSION,
        "fingerprint": fp,
        "source_format": src.fmt,
        "source_note": src.note,
        "box_slices": src.box_slices,
        "options": cfg.public_dump(),
        "split_seed": cfg.split.seed,
        "image_size": cfg.image_size,
        "phases": [0, *cfg.phases],
        "counts": counts,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(tmp / "ingest_report.json", json.dumps(report, indent=1))
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1))  # the marker: last
    replace_dir(tmp, out)  # everything fsynced first; out may hold a failed run's report only
