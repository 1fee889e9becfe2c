"""Bad input: one broken case is skipped with an error naming the case and the file, the rest of
the cohort still ingests; unusable options or ``out`` fail before any work; an interrupted
ingest leaves nothing behind.

Each test damages one case of a private copy of the phantom cohort (``source_copy``) and checks
the result's ``skipped`` list, ``ingest_report.json``, ``cases.parquet`` and the slice shards.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest

from dcesynth.data.ingest import DatasetError, IngestConfig, SplitConfig, ingest, pipeline
from dcesynth.data.ingest.shards import ShardWriter
from dcesynth.data.ingest.transforms import pseudonym

CFG = IngestConfig(image_size=32, phases=(1, 2))
N_SLICES = 16  # slices per phantom case (conftest: SOURCE_CFG)
FORMATS = ("dicom", "nifti")


# --- the cohort on disk ---------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    fmt: str
    root: Path  # the SOURCE given to ingest
    boxes: Path  # the Annotation_Boxes.csv ingest finds beside it
    masks: Path


def layout(source: Path, fmt: str) -> Layout:
    if fmt == "dicom":
        return Layout(
            fmt, source / "dicom", source / "Annotation_Boxes.csv", source / "nifti/masks"
        )
    return Layout(
        fmt, source / "nifti/images", source / "nifti/Annotation_Boxes.csv", source / "nifti/masks"
    )


def case_keys(source: Path) -> list[str]:
    return sorted(p.stem for p in (source / "ground_truth").glob("*.json"))


ROLES: dict[str, Callable[[dict], bool]] = {
    "plain": lambda p: not (p["multiphase_series"] or p["typo"]) and p["instance_order"] > 0,
    "multiphase": lambda p: p["multiphase_series"],
    "reversed": lambda p: not p["multiphase_series"] and p["instance_order"] < 0,
}


def case_with(source: Path, role: str) -> str:
    """The first case of the cohort stored the way ``role`` says (see ROLES)."""
    protos = {
        k: json.loads((source / "ground_truth" / f"{k}.json").read_text())["protocol"]
        for k in case_keys(source)
    }
    found = [k for k, p in protos.items() if ROLES[role](p)]
    assert found, f"the phantom cohort has no {role} case"
    return found[0]


def series_dirs(lay: Layout, key: str) -> list[Path]:
    """DICOM series folders of a case in SeriesNumber order (pre first)."""
    dirs = [d for d in (lay.root / key).glob("*/*") if d.is_dir()]
    return sorted(dirs, key=lambda d: float(d.name.split("-")[0]))


def phase_files(lay: Layout, key: str, phase: int) -> list[Path]:
    """The DICOM files of one phase (a folder, or one temporal position of a multiphase series)."""
    dirs = series_dirs(lay, key)
    if len(dirs) > 1:
        return sorted(dirs[phase].glob("*.dcm"))
    return sorted(
        f
        for f in dirs[0].glob("*.dcm")
        if int(pydicom.dcmread(f, stop_before_pixels=True).TemporalPositionIdentifier) == phase + 1
    )


def edit_dicom(files: list[Path], edit: Callable[[pydicom.Dataset], None]) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f, enforce_file_format=True)


def nifti_phase(lay: Layout, key: str, phase: int) -> Path:
    return lay.root / key / f"{key}_{phase:04d}.nii.gz"


def rewrite_nifti(
    path: Path, data: np.ndarray | None = None, affine: np.ndarray | None = None
) -> None:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj) if data is None else data
    affine = img.affine if affine is None else affine
    nib.save(nib.Nifti1Image(data, affine), str(path))


def shifted(affine: np.ndarray, mm: float = 4.0) -> np.ndarray:
    a = affine.copy()
    a[0, 3] += mm
    return a


def edit_box(lay: Layout, key: str, **values: int) -> None:
    df = pd.read_csv(lay.boxes)
    for col, v in values.items():
        df.loc[df["Patient ID"] == key, col] = v
    df.to_csv(lay.boxes, index=False)


# --- the dataset ----------------------------------------------------------------------------


def run(lay: Layout, out: Path, cfg: IngestConfig = CFG):
    return ingest(lay.root, out, cfg, progress=False)


def shard_case_ids(out: Path) -> dict[str, list[tuple[str, int]]]:
    """(case_id, slice_index) rows per split folder of the slice shards."""
    rows: dict[str, list[tuple[str, int]]] = {}
    for f in sorted(out.glob("slices/*/part-*.parquet")):
        t = pq.read_table(f, columns=["case_id", "slice_index"])
        rows.setdefault(f.parent.name, []).extend(
            zip(t["case_id"].to_pylist(), t["slice_index"].to_pylist(), strict=True)
        )
    return rows


def assert_dataset_holds(
    out: Path, res, good: list[str], bad: list[str], volumes: bool = True
) -> None:
    """``good`` cases (source keys) are in cases.parquet and the shards, ``bad`` ones nowhere."""
    cases = pq.read_table(out / "cases.parquet").to_pylist()
    ids = {pseudonym(k, CFG.salt) for k in good}
    assert sorted(r["case_id"] for r in cases) == sorted(ids)
    split_of = {r["case_id"]: r["split"] for r in cases}
    shards = shard_case_ids(out)
    per_case: dict[str, list[int]] = {}
    for split, rows in shards.items():
        for cid, z in rows:
            assert split_of[cid] == split, f"{cid} in slices/{split}, its split is {split_of[cid]}"
            per_case.setdefault(cid, []).append(z)
    assert set(per_case) == ids
    for r in cases:  # selection "all": every slice of every kept case, once
        assert r["n_slices"] == N_SLICES
        assert sorted(per_case[r["case_id"]]) == list(range(N_SLICES))
    assert sum(res.cases.values()) == len(good)
    assert res.slices == {s: len(rows) for s, rows in shards.items()}
    assert sum(res.slices.values()) == N_SLICES * len(good)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"cases": res.cases, "slices": res.slices, "skipped": len(bad)}
    for k in bad:
        cid = pseudonym(k, CFG.salt)
        assert cid not in split_of and cid not in per_case
        if volumes:
            assert not list((out / "volumes").glob(f"{cid}_*")), f"volumes of skipped {k}"


def assert_skipped(
    out: Path, res, bad: list[str], needles: tuple[str, ...], file: str | None, keys: list[str]
) -> None:
    """Exactly ``bad`` were skipped, with errors naming the case, the file and the fault."""
    assert sorted(s["source"] for s in res.skipped) == sorted(bad), res.skipped
    for s in res.skipped:
        err = s["error"]
        assert err.startswith(f"{s['source']}: "), err
        assert s["case_id"] == pseudonym(s["source"], CFG.salt)
        for needle in needles:  # regular expressions, case-insensitive
            assert re.search(needle, err, re.I), f"{needle!r} not in {err!r}"
        if file is not None:
            assert file in err, f"{file!r} not in {err!r}"
    report = json.loads((out / "ingest_report.json").read_text())
    assert report == {"skipped": res.skipped, "ignored": res.ignored}
    assert_dataset_holds(out, res, [k for k in keys if k not in bad], bad)
    assert not list(out.parent.glob(f".tmp-{out.name}-*"))


# --- one damaged case -----------------------------------------------------------------------
# A damage takes (layout, case key), breaks the case, and returns the file the error must name
# (relative to SOURCE, or a file name) or None.


def truncate_half(lay: Layout, key: str) -> str:
    f = phase_files(lay, key, 1)[5]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return f.relative_to(lay.root).as_posix()


def truncate_header(lay: Layout, key: str) -> str:
    f = phase_files(lay, key, 0)[3]
    f.write_bytes(f.read_bytes()[:300])
    return f.relative_to(lay.root).as_posix()


def garbage(lay: Layout, key: str) -> str:
    f = phase_files(lay, key, 2)[0]
    f.write_bytes(b"this is not a DICOM file\n" * 200)
    return f.relative_to(lay.root).as_posix()


def empty_file(lay: Layout, key: str) -> str:
    f = phase_files(lay, key, 1)[-1]
    f.write_bytes(b"")
    return f.relative_to(lay.root).as_posix()


def dicom_keep_posts(n: int) -> Callable[[Layout, str], None]:
    """Delete every post phase after the ``n``-th (phases (1, 2) asked for)."""

    def damage(lay: Layout, key: str) -> None:
        dirs = series_dirs(lay, key)
        if len(dirs) == 1:  # multiphase: delete the later temporal positions' files
            for ph in range(n + 1, 5):
                for f in phase_files(lay, key, ph):
                    f.unlink()
        else:
            for d in dirs[n + 1 :]:
                shutil.rmtree(d)

    return damage


def dicom_delete_pre(lay: Layout, key: str) -> None:
    shutil.rmtree(series_dirs(lay, key)[0])


def nifti_delete(phase: int) -> Callable[[Layout, str], str]:
    def damage(lay: Layout, key: str) -> str:
        nifti_phase(lay, key, phase).unlink()
        return key  # the case folder: nothing else to name

    return damage


def dicom_move(dx_mm: float) -> Callable[[Layout, str], str]:
    def damage(lay: Layout, key: str) -> str:
        files = phase_files(lay, key, 1)

        def edit(ds: pydicom.Dataset) -> None:
            ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + dx_mm] + [
                float(v) for v in ds.ImagePositionPatient[1:]
            ]

        edit_dicom(files, edit)
        return files[0].parent.relative_to(lay.root).as_posix()

    return damage


def dicom_spacing(lay: Layout, key: str) -> str:
    files = phase_files(lay, key, 1)

    def edit(ds: pydicom.Dataset) -> None:
        ds.PixelSpacing = [round(float(v) * 1.1, 6) for v in ds.PixelSpacing]

    edit_dicom(files, edit)
    return files[0].parent.relative_to(lay.root).as_posix()


def nifti_move(lay: Layout, key: str) -> str:
    f = nifti_phase(lay, key, 1)
    rewrite_nifti(f, affine=shifted(nib.load(str(f)).affine))
    return f.relative_to(lay.root).as_posix()


def nifti_crop(lay: Layout, key: str) -> str:
    f = nifti_phase(lay, key, 2)
    rewrite_nifti(f, data=np.asarray(nib.load(str(f)).dataobj)[:, :40])  # (i, j, k): drop rows
    return f.relative_to(lay.root).as_posix()


def nifti_nonfinite(phase: int, value: float) -> Callable[[Layout, str], str]:
    def damage(lay: Layout, key: str) -> str:
        f = nifti_phase(lay, key, phase)
        data = np.asarray(nib.load(str(f)).dataobj, dtype=np.float32)
        data[10:12, 20, 3:6] = value
        rewrite_nifti(f, data=data)
        return f.name

    damage.file_not_named = True
    return damage


def box(**values: int) -> Callable[[Layout, str], str]:
    def damage(lay: Layout, key: str) -> str:
        edit_box(lay, key, **values)
        return lay.boxes.name

    damage.file_not_named = True
    return damage


def duplicate_box_row(lay: Layout, key: str) -> str:
    df = pd.read_csv(lay.boxes)
    pd.concat([df, df[df["Patient ID"] == key]]).to_csv(lay.boxes, index=False)
    return lay.boxes.name


duplicate_box_row.file_not_named = True


def blank_box_cell(lay: Layout, key: str) -> str:
    df = pd.read_csv(lay.boxes).astype(object)
    df.loc[df["Patient ID"] == key, "End Slice"] = ""
    df.to_csv(lay.boxes, index=False)
    return lay.boxes.name


def mask_crop(lay: Layout, key: str) -> str:
    f = lay.masks / f"{key}.nii.gz"
    rewrite_nifti(f, data=np.asarray(nib.load(str(f)).dataobj)[:, :, :12])
    return f.name


def mask_move(lay: Layout, key: str) -> str:
    f = lay.masks / f"{key}.nii.gz"
    rewrite_nifti(f, affine=shifted(nib.load(str(f)).affine, 5.0))
    return f.name


def mask_garbage(lay: Layout, key: str) -> str:
    f = lay.masks / f"{key}.nii.gz"
    f.write_bytes(b"\x1f\x8b garbage")
    return f.name


P = pytest.param

# (layout, victim role, damage, regular expressions the error must match)
DAMAGES = [
    # unreadable or truncated DICOM
    P("dicom", "plain", truncate_half, ("unreadable DICOM",), id="truncated-half"),
    P("dicom", "multiphase", truncate_half, ("unreadable DICOM",), id="truncated-multiphase"),
    P(
        "dicom",
        "reversed",
        truncate_header,
        ("unreadable DICOM|not a DICOM image",),
        id="truncated-header",
    ),
    P("dicom", "plain", garbage, ("unreadable DICOM",), id="garbage"),
    P("dicom", "multiphase", empty_file, ("unreadable DICOM",), id="zero-bytes"),
    # a missing phase
    P("dicom", "plain", dicom_keep_posts(1), ("missing phase",), id="dicom-one-post"),
    P("dicom", "reversed", dicom_keep_posts(1), ("missing phase",), id="dicom-reversed-one-post"),
    P("dicom", "multiphase", dicom_keep_posts(1), ("missing phase",), id="multiphase-one-post"),
    P("dicom", "plain", dicom_delete_pre, ("missing phase", "pre-contrast"), id="dicom-no-pre"),
    P(
        "nifti",
        "plain",
        nifti_delete(2),
        ("missing phase", r"present \[0, 1, 3, 4\]"),
        id="nifti-no-0002",
    ),
    P("nifti", "plain", nifti_delete(0), ("missing phase", "pre-contrast"), id="nifti-no-0000"),
    # pre and post with different geometry
    P("dicom", "plain", dicom_move(4.0), ("different geometry",), id="dicom-position"),
    P("dicom", "reversed", dicom_move(-2.5), ("different geometry",), id="dicom-reversed-pos"),
    P("dicom", "plain", dicom_spacing, ("different geometry",), id="dicom-spacing"),
    P("nifti", "plain", nifti_move, ("different geometry",), id="nifti-affine"),
    P("nifti", "plain", nifti_crop, ("different geometry",), id="nifti-shape"),
    # NaN/inf voxels (the file is named in test_error_names_the_file)
    P("nifti", "plain", nifti_nonfinite(0, np.nan), ("NaN/inf", "phase 0"), id="nan-pre"),
    P("nifti", "plain", nifti_nonfinite(1, np.inf), ("NaN/inf", "phase 1"), id="inf-post"),
    P("nifti", "reversed", nifti_nonfinite(2, -np.inf), ("6 NaN/inf",), id="-inf-post"),
    # an empty box, a box outside the volume (all on NIfTI, which is quick; some on DICOM)
    *[
        P(fmt, "plain", damage, words, id=f"{fmt}-{name}")
        for name, damage, words, formats in [
            ("rows-reversed", box(**{"Start Row": 30, "End Row": 20}), ("empty box",), FORMATS),
            ("columns-reversed", box(**{"Start Column": 9, "End Column": 8}), ("empty box",), ()),
            ("slices-reversed", box(**{"Start Slice": 9, "End Slice": 6}), ("empty",), FORMATS),
            ("row-beyond", box(**{"End Row": 49}), ("outside the volume",), ()),
            ("column-beyond", box(**{"Start Column": 47, "End Column": 60}), ("outside",), ()),
            ("slice-beyond", box(**{"End Slice": N_SLICES + 1}), ("outside",), FORMATS),
            ("row-zero", box(**{"Start Row": 0}), ("outside the volume",), ()),
        ]
        for fmt in formats or ("nifti",)
    ],
    # DICOM slices count in InstanceNumber order: 1..16 whichever way the series runs
    P("dicom", "reversed", box(**{"Start Slice": 0}), ("outside",), id="dicom-reversed-slice0"),
    P("dicom", "reversed", box(**{"End Slice": 17}), ("outside",), id="dicom-reversed-slice17"),
    # a mask that does not match its image (both layouts)
    *[
        P(fmt, role, damage, words, id=f"{fmt}-{name}")
        for fmt in FORMATS
        for role, name, damage, words in [
            ("plain", "mask-shape", mask_crop, ("mask does not match its image",)),
            ("reversed", "mask-affine", mask_move, ("mask does not match its image",)),
            ("plain", "mask-unreadable", mask_garbage, ("unreadable mask",)),
        ]
    ],
    # duplicate rows in the boxes file
    *[P(fmt, "plain", duplicate_box_row, ("duplicate",), id=f"{fmt}-box-row") for fmt in FORMATS],
]


@pytest.mark.parametrize(("fmt", "role", "damage", "needles"), DAMAGES)
def test_one_bad_case_is_skipped(
    ray_session, source_copy: Path, tmp_path: Path, fmt, role, damage, needles
) -> None:
    lay = layout(source_copy, fmt)
    victim = case_with(source_copy, role)
    file = damage(lay, victim)
    if getattr(damage, "file_not_named", False):
        file = None  # a known gap: see test_error_names_the_file
    out = tmp_path / "ds"
    res = run(lay, out)
    assert not res.up_to_date
    assert_skipped(out, res, [victim], needles, file, case_keys(source_copy))


# Faults that lie in one file: the error names it.
FILE_FAULTS = [
    P(
        "nifti",
        nifti_nonfinite(1, np.nan),
        id="nan-in-nifti",
    ),
    *[
        P(
            fmt,
            damage,
            id=f"{fmt}-{name}",
        )
        for fmt in FORMATS
        for name, damage, where in [
            ("empty-box", box(**{"Start Row": 30, "End Row": 20}), "boxes.box_in_stored_indices"),
            ("outside-box", box(**{"End Slice": 99}), "boxes.box_in_stored_indices"),
            ("duplicate-row", duplicate_box_row, "prepare._box"),
        ]
    ],
    P("nifti", nifti_move, id="nifti-geometry"),  # a fault the message does name: the control
]


@pytest.mark.parametrize(("fmt", "damage"), FILE_FAULTS)
def test_error_names_the_file(ray_session, source_copy: Path, tmp_path: Path, fmt, damage) -> None:
    """The issue: "a clear error naming the case and the file" — for every fault in one file."""
    lay = layout(source_copy, fmt)
    victim = case_with(source_copy, "plain")
    file = damage(lay, victim)
    res = run(lay, tmp_path / "ds")
    (err,) = [s["error"] for s in res.skipped if s["source"] == victim]
    assert err.startswith(f"{victim}: ")
    assert file in err, f"{file!r} not named in {err!r}"


def test_dicom_gap_in_post_phases_is_a_missing_phase(
    ray_session, source_copy: Path, tmp_path: Path
) -> None:
    lay = layout(source_copy, "dicom")
    victim = case_with(source_copy, "plain")
    shutil.rmtree(series_dirs(lay, victim)[2])  # "ax dyn 2nd pass"
    out = tmp_path / "ds"
    res = run(lay, out)
    assert_skipped(out, res, [victim], ("missing phase",), None, case_keys(source_copy))


@pytest.mark.parametrize("fmt", FORMATS)
def test_blank_box_cell_skips_that_case(
    ray_session, source_copy: Path, tmp_path: Path, fmt: str
) -> None:
    lay = layout(source_copy, fmt)
    victim = case_with(source_copy, "plain")
    blank_box_cell(lay, victim)
    out = tmp_path / "ds"
    res = run(lay, out)
    assert_skipped(out, res, [victim], ("box",), lay.boxes.name, case_keys(source_copy))


def remove_box_and_mask(source: Path, key: str) -> None:
    for fmt in FORMATS:
        lay = layout(source, fmt)
        df = pd.read_csv(lay.boxes)
        df[df["Patient ID"] != key].to_csv(lay.boxes, index=False)
    (layout(source, "dicom").masks / f"{key}.nii.gz").unlink()


TUMOUR = IngestConfig(image_size=32, phases=(1, 2), selection="tumour")


@pytest.mark.parametrize("fmt", FORMATS)
def test_tumour_selection_without_box_or_mask_skips_the_case(
    ray_session, source_copy: Path, tmp_path: Path, fmt: str
) -> None:
    lay = layout(source_copy, fmt)
    victim = case_with(source_copy, "plain")
    remove_box_and_mask(source_copy, victim)
    out = tmp_path / "ds"
    res = run(lay, out, TUMOUR)
    (err,) = [s["error"] for s in res.skipped]
    assert err == f"{victim}: selection 'tumour' needs a box or a mask"
    cases = pq.read_table(out / "cases.parquet").to_pylist()
    assert sorted(r["case_id"] for r in cases) == sorted(
        pseudonym(k, CFG.salt) for k in case_keys(source_copy) if k != victim
    )
    slices = {s: len(rows) for s, rows in shard_case_ids(out).items()}
    assert slices == res.slices and sum(slices.values()) == sum(r["n_slices"] for r in cases)
    assert pseudonym(victim, CFG.salt) not in {
        c for rows in shard_case_ids(out).values() for c, _ in rows
    }


def test_tumour_selection_skip_leaves_no_volumes(
    ray_session, source_copy: Path, tmp_path: Path
) -> None:
    victim = case_with(source_copy, "plain")
    remove_box_and_mask(source_copy, victim)
    out = tmp_path / "ds"
    run(layout(source_copy, "nifti"), out, TUMOUR)
    assert sorted(p.name for p in (out / "volumes").glob(f"{pseudonym(victim, CFG.salt)}_*")) == []


# --- duplicate case ids ---------------------------------------------------------------------


def copy_dicom_case(lay: Layout, key: str, new: str) -> None:
    shutil.copytree(lay.root / key, lay.root / new)  # same PatientID in every header


def copy_nifti_case(lay: Layout, key: str, new: str) -> None:
    (lay.root / new).mkdir()
    for f in (lay.root / key).iterdir():
        shutil.copy(f, lay.root / new / f.name.replace(key, new))


@pytest.mark.parametrize(
    ("fmt", "copy", "new"),
    [
        P("dicom", copy_dicom_case, "Phantom_MRI_003_rescan", id="dicom-same-patient-id"),
        P("dicom", copy_dicom_case, "a_renamed_folder", id="dicom-renamed-folder"),
        P("nifti", copy_nifti_case, "phantom_mri_003", id="nifti-case-insensitive"),
    ],
)
def test_duplicate_case_ids_skip_both(
    ray_session, source_copy: Path, tmp_path: Path, fmt, copy, new
) -> None:
    """One patient under two folders. NIfTI: two case keys that differ only in case, both
    skipped. DICOM: cases are PatientIDs, so the copy joins its patient, whose images are then
    stored twice: that case is skipped (which copy is right cannot be told)."""
    lay = layout(source_copy, fmt)
    victim = case_with(source_copy, "plain")
    assert victim == "Phantom_MRI_003"  # the ids above are written for it
    copy(lay, victim, new)
    out = tmp_path / "ds"
    res = run(lay, out)
    keys = case_keys(source_copy)
    bad = [victim, new] if fmt == "nifti" else [victim]
    assert_skipped(out, res, bad, ("duplicate",), None, [*keys, *bad[1:]])
    for s in res.skipped:  # each names both folders, so that either can be removed
        assert victim in s["error"] and new in s["error"]


# --- failures before any work ---------------------------------------------------------------


def assert_untouched(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".tmp-{out.name}-*"))


@pytest.mark.parametrize("what", ["missing", "file"])
def test_source_not_a_directory(ray_session, tmp_path: Path, what: str) -> None:
    src = tmp_path / "cohort"
    if what == "file":
        src.write_text("not a folder")
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"SOURCE .*cohort: not a directory"):
        ingest(src, out, CFG, progress=False)
    assert_untouched(out)


@pytest.mark.parametrize(
    ("option", "field"), [("--boxes", "boxes"), ("--masks", "masks"), ("split.file", "split")]
)
def test_missing_option_path(
    ray_session, phantom_source: Path, tmp_path: Path, option: str, field: str
) -> None:
    missing = tmp_path / "nowhere" / "thing.csv"
    value = SplitConfig(file=missing) if field == "split" else missing
    cfg = IngestConfig(**{**CFG.model_dump(), field: value})
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=rf"`{option}` {missing}: not found"):
        ingest(phantom_source / "dicom", out, cfg, progress=False)
    assert_untouched(out)


def test_source_without_cases(ray_session, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match="no case folders found"):
        ingest(tmp_path / "empty", out, CFG, progress=False)
    assert_untouched(out)


@pytest.mark.parametrize("what", ["dir-with-a-file", "a-file"])
def test_out_exists_and_is_not_a_dataset(
    ray_session, phantom_source: Path, tmp_path: Path, what: str
) -> None:
    out = tmp_path / "ds"
    if what == "a-file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DatasetError, match="exists and is not a prepared dataset"):
        ingest(phantom_source / "dicom", out, CFG, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (out.read_text() if what == "a-file" else (out / "notes.txt").read_text()) == "mine"


@pytest.fixture(scope="module")
def dataset(ray_session, phantom_source: Path, tmp_path_factory) -> tuple[Path, object]:
    """One dataset of the whole phantom cohort (DICOM layout) made with CFG; read-only."""
    out = tmp_path_factory.mktemp("bad_inputs") / "ds"
    res = ingest(phantom_source / "dicom", out, CFG, progress=False)
    assert sum(res.cases.values()) == 4 and not res.skipped
    return out, res


def _snapshot(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"image_size": 64}, "image_size"),
        ({"phases": (1,)}, "phases"),
        ({"normalisation": "zscore"}, "normalisation"),
        ({"selection": "tumour"}, "selection"),
        ({"split": SplitConfig(seed=1)}, "split"),
        ({"salt": "another secret"}, "salt_sha256"),
        ({"image_size": 48, "phases": (1, 2, 3)}, "image_size, phases"),
    ],
)
def test_out_holds_a_dataset_made_differently(
    ray_session, phantom_source: Path, dataset, changes: dict, named: str
) -> None:
    out, _ = dataset
    before = _snapshot(out)
    cfg = IngestConfig(**{**CFG.model_dump(), **changes})
    with pytest.raises(DatasetError, match=rf"made differently \(options that differ: {named}\)"):
        ingest(phantom_source / "dicom", out, cfg, progress=False)
    assert _snapshot(out) == before
    assert not list(out.parent.glob(".tmp-*"))


def test_out_holds_a_dataset_of_changed_source(
    ray_session, source_copy: Path, tmp_path: Path
) -> None:
    lay = layout(source_copy, "dicom")
    out = tmp_path / "ds"
    run(lay, out)
    before = _snapshot(out)
    edit_box(lay, "Phantom_MRI_004", **{"End Row": 22})  # same values, new file: a new source
    with pytest.raises(DatasetError, match="the source files changed"):
        run(lay, out)
    assert _snapshot(out) == before


def test_rerun_with_same_options_is_up_to_date(
    ray_session, phantom_source: Path, dataset, monkeypatch
) -> None:
    out, first = dataset
    before = _snapshot(out)

    def no_work(*a, **k):
        raise AssertionError("an up-to-date dataset must not run any task")

    monkeypatch.setattr(pipeline, "_run", no_work)
    monkeypatch.setattr(pipeline, "_finish", no_work)
    res = ingest(phantom_source / "dicom", out, CFG, progress=False)
    assert res.up_to_date
    assert (res.cases, res.slices, res.skipped) == (first.cases, first.slices, [])
    assert res.out == out
    assert _snapshot(out) == before


def test_up_to_date_rerun_reports_the_skipped_cases(
    ray_session, source_copy: Path, tmp_path: Path
) -> None:
    lay = layout(source_copy, "dicom")
    victim = case_with(source_copy, "plain")
    garbage(lay, victim)
    out = tmp_path / "ds"
    first = run(lay, out)
    assert [s["source"] for s in first.skipped] == [victim]
    again = run(lay, out)
    assert again.up_to_date
    assert again.skipped == first.skipped


# --- interrupted ingest ---------------------------------------------------------------------


def _fail_finish(*a, **k):
    raise RuntimeError("disk full while finishing")


def _fail_write(self, table):
    raise RuntimeError("disk full while writing a shard")


def _interrupt_write(self, table):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("fmt", "target", "name", "replacement", "exc"),
    [
        P("dicom", pipeline, "_finish", _fail_finish, RuntimeError, id="dicom-finish-raises"),
        P("nifti", pipeline, "_finish", _fail_finish, RuntimeError, id="nifti-finish-raises"),
        P("dicom", ShardWriter, "write", _fail_write, RuntimeError, id="shard-write-raises"),
        P("nifti", ShardWriter, "write", _interrupt_write, KeyboardInterrupt, id="ctrl-c"),
    ],
)
def test_interrupted_ingest_leaves_nothing(
    ray_session,
    phantom_source: Path,
    tmp_path: Path,
    monkeypatch,
    fmt,
    target,
    name,
    replacement,
    exc,
) -> None:
    lay = layout(phantom_source, fmt)
    out = tmp_path / "ds"
    monkeypatch.setattr(target, name, replacement)
    with pytest.raises(exc):
        run(lay, out)
    assert_untouched(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    res = run(lay, out)
    assert not res.up_to_date and not res.skipped
    assert_dataset_holds(out, res, case_keys(phantom_source), [])


def test_stale_tmp_of_a_killed_run_is_removed(
    ray_session, phantom_source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    stale = tmp_path / ".tmp-ds-0badc0de"
    (stale / "volumes").mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")
    other = tmp_path / ".tmp-other-0badc0de"  # another dataset's leftovers are not ours
    other.mkdir()
    res = run(layout(phantom_source, "nifti"), out)
    assert not stale.exists() and other.is_dir()
    assert_dataset_holds(out, res, case_keys(phantom_source), [])
