"""Generate a phantom cohort directory: cases in parallel, tables, manifest, previews.

Layout of ``OUT``::

    phantom.json                 config + fingerprint, written before any case
    dicom/<case>/<study>/<series>/1-NNN.dcm        Duke-style tree (if "dicom" in formats)
    nifti/images/<case>/<case>_000k.nii.gz|.json   k = 0 pre, 1.. post (if "nifti"); the JSON
                                                   sidecars are dcm2niix-style (BIDS units)
    nifti/Annotation_Boxes.csv   the same boxes with slices counted along the NIfTI k axis
    nifti/masks/<case>.nii.gz  nifti/labels/<case>_labels.nii.gz
    ground_truth/<case>.json     kinetics, protocol, boxes — written last for each case
    Annotation_Boxes.csv  clinical.csv  identities.csv  cohort.json (cohort complete)

``Annotation_Boxes.csv`` follows Duke: 1-based inclusive ``Start/End Row`` (image rows) and
``Start/End Column``, and ``Start/End Slice`` counted in DICOM InstanceNumber order — which runs
along +z for some series and −z for others, exactly the ambiguity readers of Duke must handle.
NIfTI files carry no InstanceNumber, so ``nifti/Annotation_Boxes.csv`` counts slices along k.
``identities.csv`` holds the fake patient identities written into the DICOM headers; it exists
so that de-identification tests know what must never leak. Nothing reads it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from dcesynth.config import atomic_write_text
from dcesynth.data.phantom.case import PhantomCase, case_id, generate_case
from dcesynth.data.phantom.config import PhantomConfig
from dcesynth.data.phantom.writers import remove_stale_tmp, write_dicom, write_nifti
from dcesynth.data.readers.boxes import COLUMNS as BOX_COLUMNS
from dcesynth.progress import progress_bar

log = logging.getLogger(__name__)

ANNOTATION_COLUMNS = BOX_COLUMNS  # the Duke format, defined once with its reader


class PhantomError(ValueError):
    """The cohort cannot be generated as asked (the message names the option)."""


def duke_box(box_zyx: list[int], n_slices: int, instance_order: int) -> dict[str, int]:
    """Array-order 0-based box → Duke's 1-based row/column/InstanceNumber-ordered slice box."""
    z0, z1, y0, y1, x0, x1 = box_zyx
    s0, s1 = (z0 + 1, z1 + 1) if instance_order > 0 else (n_slices - z1, n_slices - z0)
    return {
        "Start Row": y0 + 1,
        "End Row": y1 + 1,
        "Start Column": x0 + 1,
        "End Column": x1 + 1,
        "Start Slice": s0,
        "End Slice": s1,
    }


def check_output_dir(out: Path, cfg: PhantomConfig) -> None:
    """Refuse, before any work, a directory that holds something other than this cohort."""
    if not out.exists() or not any(out.iterdir()):
        return
    manifest = out / "phantom.json"
    if not manifest.is_file():
        raise PhantomError(
            f"--out {out}: directory is not empty and holds no phantom cohort "
            "(no phantom.json); choose an empty or new directory"
        )
    old = json.loads(manifest.read_text())
    if old.get("fingerprint") != cfg.fingerprint():
        new = cfg.model_dump(mode="json")
        diff = sorted(
            k for k in new if k not in ("cases", "formats") and old["config"].get(k) != new[k]
        )
        raise PhantomError(
            f"--out {out}: holds a different phantom cohort (options that differ: "
            f"{', '.join(diff) or 'generator version'}); choose another --out or delete it"
        )


def _case_done(out: Path, cfg: PhantomConfig, cid: str) -> bool:
    gt = out / "ground_truth" / f"{cid}.json"
    if not gt.is_file() or json.loads(gt.read_text()).get("fingerprint") != cfg.fingerprint():
        return False
    if "dicom" in cfg.formats and not (out / "dicom" / cid).is_dir():
        return False
    return "nifti" not in cfg.formats or (
        (out / "nifti" / "images" / cid).is_dir()
        and (out / "nifti" / "masks" / f"{cid}.nii.gz").is_file()
    )


def write_case(case: PhantomCase, out: Path, formats: tuple[str, ...]) -> None:
    """All artifacts of one case; the ground-truth record goes last and marks it complete."""
    if "dicom" in formats:
        write_dicom(case, out / "dicom")
    if "nifti" in formats:
        write_nifti(
            case, out / "nifti" / "images", out / "nifti" / "masks", out / "nifti" / "labels"
        )
    record = {**case.ground_truth, "identity_keys": sorted(case.identity)}
    record["_identity"] = case.identity  # kept out of the tables; see identities.csv
    atomic_write_text(out / "ground_truth" / f"{case.case_id}.json", json.dumps(record, indent=1))


def _make_case(cfg: PhantomConfig, index: int, out: str) -> str:
    case = generate_case(cfg, index)
    write_case(case, Path(out), cfg.formats)
    return case.case_id


def generate_cohort(
    cfg: PhantomConfig, out: Path, workers: int = 1, progress: bool | None = None
) -> list[dict]:
    """Generate (or complete) the cohort in ``out``; returns the ground-truth records.

    Cases already complete with the same fingerprint are kept, so an interrupted run resumes.

    Args:
        cfg: the cohort.
        out: output directory (created).
        workers: parallel processes (each generates and writes whole cases).
        progress: draw a progress bar (default: when in a terminal).

    Raises:
        PhantomError: if ``out`` holds something else (checked before any work).
    """
    out = Path(out)
    check_output_dir(out, cfg)
    out.mkdir(parents=True, exist_ok=True)
    if removed := remove_stale_tmp(out):
        log.info("removed %d leftovers of an interrupted run", removed)
    atomic_write_text(
        out / "phantom.json",
        json.dumps(
            {
                "kind": "dcesynth-phantom",
                "fingerprint": cfg.fingerprint(),
                "config": cfg.model_dump(mode="json"),
            },
            indent=1,
        ),
    )
    (out / "cohort.json").unlink(missing_ok=True)  # complete again only when this run ends
    todo = [i for i in range(cfg.cases) if not _case_done(out, cfg, case_id(i))]
    log.info("phantom: %d cases to generate, %d already complete", len(todo), cfg.cases - len(todo))
    with progress_bar(len(todo), "phantom cases", progress) as advance:
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                _make_case(cfg, i, str(out))
                advance()
        else:
            # spawn: workers start clean (no inherited threads or locks of the parent)
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
                futures = [pool.submit(_make_case, cfg, i, str(out)) for i in todo]
                for fut in as_completed(futures):
                    fut.result()
                    advance()
    records = [
        json.loads((out / "ground_truth" / f"{case_id(i)}.json").read_text())
        for i in range(cfg.cases)
    ]
    _write_tables(out, records)
    atomic_write_text(
        out / "cohort.json",
        json.dumps(
            {
                "kind": "dcesynth-phantom",
                "fingerprint": cfg.fingerprint(),
                "cases": [r["case_id"] for r in records],
                "formats": list(cfg.formats),
                "complete": True,
            },
            indent=1,
        ),
        keep_if_same=True,
    )
    return records


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_tables(out: Path, records: list[dict]) -> None:
    boxes, nifti_boxes, clinical, identities = [], [], [], []
    for r in records:
        p, idx = r["protocol"], r["index_lesion"]
        les = r["lesions"][idx] if idx is not None else None
        if r["box_zyx"] is not None:
            boxes.append(
                {
                    "Patient ID": r["case_id"],
                    **duke_box(r["box_zyx"], p["slices"], p["instance_order"]),
                }
            )
            # NIfTI files have no InstanceNumber: their boxes count slices along the k axis
            nifti_boxes.append(
                {"Patient ID": r["case_id"], **duke_box(r["box_zyx"], p["slices"], 1)}
            )
        clinical.append(
            {
                "Patient ID": r["case_id"],
                "Manufacturer": p["manufacturer"],
                "Model": p["model"],
                "Field Strength (T)": p["field_t"],
                "Contrast Agent": p["agent"],
                "TR (ms)": p["tr_ms"],
                "Flip Angle (deg)": p["flip_deg"],
                "Matrix": p["matrix"],
                "Slices": p["slices"],
                "Post Phases": p["post_phases"],
                "Density": r["density"],
                "BPE": r["bpe"],
                "Lesion Count": r["lesion_count"],
                "Multifocal": int(r["multifocal"]),
                "Tumour Side": les["side"] if les else "",
                "Tumour Diameter (mm)": round(les["diameter_mm"], 1) if les else "",
                "Curve Type": les["curve_type"] if les else "",
                "Lesion Kind": les.get("kind", "") if les else "",
                "Lesion Shape": les.get("shape", "") if les else "",
                "Necrotic": int(les["necrotic"]) if les else "",
                "Spiculated": int(les["spiculated"]) if les else "",
            }
        )
        identities.append(r["_identity"])
    # unchanged tables keep their mtime: a re-run must not make ingest see a new source
    atomic_write_text(
        out / "Annotation_Boxes.csv", _csv(boxes, ANNOTATION_COLUMNS), keep_if_same=True
    )
    if (out / "nifti").is_dir():
        atomic_write_text(
            out / "nifti" / "Annotation_Boxes.csv",
            _csv(nifti_boxes, ANNOTATION_COLUMNS),
            keep_if_same=True,
        )
    atomic_write_text(out / "clinical.csv", _csv(clinical, list(clinical[0])), keep_if_same=True)
    atomic_write_text(
        out / "identities.csv", _csv(identities, list(identities[0])), keep_if_same=True
    )
