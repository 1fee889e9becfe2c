"""Readers against the phantom's known answers: DICOM and NIfTI trees, series rules, boxes, and
the canonical reorientation of geometry."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from dcesynth.config import ConfigError, build_config
from dcesynth.data.geometry import Geometry, Reorientation
from dcesynth.data.ingest import IngestConfig
from dcesynth.data.phantom.case import PhantomCase
from dcesynth.data.phantom.cohort import ANNOTATION_COLUMNS, duke_box
from dcesynth.data.phantom.kinetics import AGENT_TRADE_NAMES
from dcesynth.data.readers import CaseError, RawCase, dicom, nifti
from dcesynth.data.readers.boxes import box_in_stored_indices, read_boxes
from dcesynth.data.readers.dicom import SeriesRules

KEYS = [f"Phantom_MRI_{i:03d}" for i in range(1, 5)]
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def dicom_cases(phantom_source: Path) -> dict[str, RawCase]:
    return {k: dicom.read_case(phantom_source / "dicom", k) for k in KEYS}


@pytest.fixture(scope="module")
def nifti_cases(phantom_source: Path) -> dict[str, RawCase]:
    root = phantom_source / "nifti"
    return {k: nifti.read_case(root / "images", k, root / "masks") for k in KEYS}


def assert_same_as_phantom(raw: RawCase, case: PhantomCase) -> None:
    """Volumes (float32, pre first), geometry, times and scanner facts of the phantom case."""
    p = case.protocol
    assert len(raw.phases) == p.post_phases + 1
    for k, vol in enumerate(raw.phases):
        assert vol.dtype == np.float32 and vol.shape == case.geometry.shape
        np.testing.assert_array_equal(vol, case.images[k].astype(np.float32), err_msg=f"phase {k}")
    assert raw.geometry.shape == case.geometry.shape
    assert raw.geometry.allclose(case.geometry, atol=1e-3), (raw.geometry, case.geometry)
    assert raw.geometry.direction == IDENTITY
    np.testing.assert_allclose(raw.acquisition_s, p.acquisition_s, atol=1e-3)
    assert raw.acquisition_s[0] == 0.0
    assert raw.facts == {
        "manufacturer": p.manufacturer,
        "model": p.model,
        "field_t": pytest.approx(p.field_t),
        "tr_ms": pytest.approx(p.tr_ms),
        "flip_deg": pytest.approx(p.flip_deg),
        "agent": AGENT_TRADE_NAMES[p.agent],
    }


# --- DICOM ------------------------------------------------------------------------------------


def test_cohort_has_the_hard_cases(phantom_cases: dict[str, PhantomCase]) -> None:
    """The parametrizations below cover a multiphase, a typo'd and both slice orders."""
    protos = [phantom_cases[k].protocol for k in KEYS]
    assert sorted(phantom_cases) == KEYS
    assert any(p.multiphase_series for p in protos) and any(p.typo for p in protos)
    assert {p.instance_order for p in protos} == {1, -1}


@pytest.mark.parametrize("key", KEYS)
def test_dicom_case_equals_phantom(
    dicom_cases: dict[str, RawCase], phantom_cases: dict[str, PhantomCase], key: str
) -> None:
    raw, case = dicom_cases[key], phantom_cases[key]
    assert raw.key == key
    assert_same_as_phantom(raw, case)
    assert raw.identity == case.identity["Patient ID"]
    assert raw.reorientation.identity  # the phantom stores axial slices along +z
    assert raw.mask is None


@pytest.mark.parametrize("key", KEYS)
def test_dicom_slice_numbers_are_instance_number_ranks(
    dicom_cases: dict[str, RawCase],
    phantom_cases: dict[str, PhantomCase],
    phantom_source: Path,
    key: str,
) -> None:
    raw, p = dicom_cases[key], phantom_cases[key].protocol
    n = p.slices
    expected = np.arange(1, n + 1) if p.instance_order > 0 else np.arange(n, 0, -1)
    np.testing.assert_array_equal(raw.slice_numbers, expected)
    # and from the headers: the pre phase's InstanceNumbers in order of position along z
    headers = [
        pydicom.dcmread(f, stop_before_pixels=True)
        for f in (phantom_source / "dicom" / key).rglob("*.dcm")
    ]
    pre = [ds for ds in headers if int(ds.get("TemporalPositionIdentifier", 1)) == 1]
    if not p.multiphase_series:
        pre = [ds for ds in pre if "pre" in ds.SeriesDescription]
    by_z = sorted(pre, key=lambda ds: float(ds.ImagePositionPatient[2]))
    ranks = np.argsort(np.argsort([int(ds.InstanceNumber) for ds in by_z])) + 1
    np.testing.assert_array_equal(raw.slice_numbers, ranks)


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
@pytest.mark.parametrize("key", KEYS)
def test_phantom_boxes_map_to_the_case_box(
    dicom_cases, nifti_cases, phantom_cases, phantom_source: Path, fmt: str, key: str
) -> None:
    """Duke's Annotation_Boxes (InstanceNumber order; NIfTI: k order) → the true array box."""
    raw = (dicom_cases if fmt == "dicom" else nifti_cases)[key]
    table = phantom_source / (
        "Annotation_Boxes.csv" if fmt == "dicom" else "nifti/Annotation_Boxes.csv"
    )
    (row,) = read_boxes(table)[key]
    stored = box_in_stored_indices(key, row, raw.reorientation.source.shape, raw.slice_numbers)
    assert raw.reorientation.box(stored) == tuple(phantom_cases[key].box)


# --- series rules ---------------------------------------------------------------------------


def role(desc: str, rules: SeriesRules | None = None) -> str:
    """What dicom._select_phases makes of a series description."""
    r = rules or SeriesRules()
    if not dicom._any(r.dynamic, desc) or dicom._any(r.exclude, desc):
        return "ignored"
    if dicom._any(r.multiphase, desc):
        return "multiphase"
    if dicom._any(r.pre, desc):
        return "pre"
    n = dicom._ordinal(r.ordinal, desc)
    return f"post{n if n is not None else ''}"


@pytest.mark.parametrize(
    ("desc", "expected"),
    [
        ("ax dyn pre", "pre"),
        ("ax 3d dyn pre", "pre"),
        ("AX DYN PRE", "pre"),
        ("ax dyn 1st pass", "post1"),
        ("ax dyn 1st pas", "post1"),  # the typo seen in Duke
        ("ax 3d dyn 2nd pass", "post2"),
        ("ax dyn 3rd pass", "post3"),
        ("ax 3d dyn 4th pass", "post4"),
        ("Ax Vibrant MultiPhase", "multiphase"),
        ("Ax Vibrant Multi-Phase", "multiphase"),
        ("ax 3d dyn", "post"),
        ("fl3d dce phase 2", "post2"),
        ("DCE post 3", "post3"),
        ("ax vibrant ph4", "post4"),
        ("3 Plane Loc", "ignored"),
        ("ax dyn loc", "ignored"),
        ("ax dyn sub 1st pass", "ignored"),
        ("ax 3d dyn MIP", "ignored"),
        ("T2 FSE ax", "ignored"),
        ("ax DWI b800", "ignored"),
        ("pre", "ignored"),  # not dynamic
        ("predynamic", "post"),  # "pre" as a word only
    ],
)
def test_default_series_rules(desc: str, expected: str) -> None:
    assert role(desc) == expected


def test_custom_series_rules_roles() -> None:
    rules = SeriesRules(dynamic=(r"^t1 fs\b",), pre=(r"\bpre$",), ordinal=(r"\bpost (?P<n>\d)$",))
    assert [role(d, rules) for d in ("T1 FS PRE", "T1 FS POST 3", "ax dyn pre", "T1 FS")] == [
        "pre",
        "post3",
        "ignored",
        "post",
    ]


@pytest.mark.parametrize(
    ("field", "patterns", "match"),
    [
        ("dynamic", ("(unclosed",), "invalid regular expression '\\(unclosed'"),
        ("exclude", ("[a-",), "invalid regular expression"),
        ("pre", ("*pre",), "invalid regular expression"),
        ("multiphase", ("multi(",), "invalid regular expression"),
        ("ordinal", (r"(\d)st",), r"named group \(\?P<n>"),
        ("ordinal", (r"\bpost (?P<m>\d)",), r"named group \(\?P<n>"),
        ("ordinal", (r"\b(?P<n>[1-9])st\b", r"phase\d"), r"phase\\\\d"),
        ("ordinal", ("(?P<n>[1-9]",), "invalid regular expression"),
    ],
)
def test_invalid_series_rules(field: str, patterns: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SeriesRules(**{field: patterns})
    with pytest.raises(ValueError, match=match):  # and nested in the ingest options
        IngestConfig(series_rules={field: list(patterns)})


def test_invalid_series_rules_in_a_config_file(tmp_path: Path) -> None:
    f = tmp_path / "ingest.yaml"
    f.write_text("series_rules:\n  ordinal: ['(\\d)st']\n")
    with pytest.raises(ConfigError, match=r"ingest.yaml.*series_rules\.ordinal") as e:
        build_config(IngestConfig, f)
    assert "named group" in str(e.value)


def test_unknown_series_rules_key() -> None:
    with pytest.raises(ValueError, match="dynamics"):
        SeriesRules(dynamics=("dyn",))


# --- DICOM trees edited on disk -------------------------------------------------------------


def private_case(phantom_source: Path, tmp_path: Path, key: str) -> Path:
    """A copy of one DICOM case under ``tmp_path/dicom``; returns that root."""
    root = tmp_path / "dicom"
    shutil.copytree(phantom_source / "dicom" / key, root / key)
    return root


def series_dirs(root: Path, key: str) -> list[Path]:
    dirs = [d for d in (root / key).glob("*/*") if d.is_dir()]
    return sorted(dirs, key=lambda d: float(d.name.split("-")[0]))


def edit_dicom(folder: Path, edit: Callable[[pydicom.Dataset], None]) -> None:
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f, enforce_file_format=True)


def set_description(desc: str, time: str | None = None) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        ds.SeriesDescription = desc
        if time is not None:
            ds.AcquisitionTime = time

    return edit


CUSTOM = SeriesRules(dynamic=(r"^t1 fs\b",), pre=(r"\bpre$",), ordinal=(r"\bpost (?P<n>\d)$",))


@pytest.mark.parametrize("same_times", [False, True], ids=["timed", "equal-times"])
def test_custom_rules_read_renamed_series(
    phantom_source: Path, phantom_cases, tmp_path: Path, same_times: bool
) -> None:
    """Series named "T1 FS PRE", "T1 FS POST 1".. need a rules table; with equal acquisition
    times (and folders in reverse order) the ordinals in the names decide the phase order."""
    key = "Phantom_MRI_003"  # one series per phase
    case = phantom_cases[key]
    assert not case.protocol.multiphase_series
    root = private_case(phantom_source, tmp_path, key)
    dirs = series_dirs(root, key)
    t_post = str(pydicom.dcmread(next(dirs[1].glob("*.dcm"))).AcquisitionTime)
    for k, d in enumerate(dirs):
        time = t_post if same_times and k > 0 else None
        edit_dicom(d, set_description("T1 FS PRE" if k == 0 else f"T1 FS POST {k}", time))
        if same_times and k > 0:  # post 4 sorts first by path
            d.rename(d.parent / f"{10 - k}.000000-series-{10 - k:05d}")
    with pytest.raises(CaseError, match=r"missing phase: no pre-contrast series among .*T1 FS PRE"):
        dicom.read_case(root, key)
    raw = dicom.read_case(root, key, CUSTOM)
    if not same_times:
        assert_same_as_phantom(raw, case)
        return
    assert raw.acquisition_s == [0.0, *[case.protocol.acquisition_s[1]] * 4]
    for k, vol in enumerate(raw.phases):
        np.testing.assert_array_equal(vol, case.images[k], err_msg=f"phase {k}")


def add_distractor(root: Path, key: str, desc: str, source: Path) -> Path:
    """A one-slice series copied from ``source`` with its own description and UID."""
    d = source.parent.parent / f"99.000000-{desc}-00099"
    d.mkdir()
    ds = pydicom.dcmread(source)
    ds.SeriesDescription = desc
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    ds.AcquisitionTime = "070000.000000"  # earliest of all
    if "TemporalPositionIdentifier" in ds:
        del ds.TemporalPositionIdentifier
    ds.save_as(d / "1-001.dcm", enforce_file_format=True)
    return d


@pytest.mark.parametrize(
    ("key", "desc"),
    [
        ("Phantom_MRI_003", "3 Plane Loc"),
        ("Phantom_MRI_002", "3 Plane Loc"),  # the multiphase case
        ("Phantom_MRI_001", "ax 3d dyn sub 1st pass"),  # a subtraction, with contrast agent
        ("Phantom_MRI_004", "Ax T2 FSE"),
    ],
)
def test_distractor_series_are_ignored(
    phantom_source: Path, phantom_cases, tmp_path: Path, key: str, desc: str
) -> None:
    root = private_case(phantom_source, tmp_path, key)
    donor = sorted(series_dirs(root, key)[-1].glob("*.dcm"))[7]
    add_distractor(root, key, desc, donor)
    (series_dirs(root, key)[0] / "notes.txt").write_text("not DICOM")  # skipped by suffix
    (root / key / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: skipped
    assert_same_as_phantom(dicom.read_case(root, key), phantom_cases[key])


def test_a_dynamic_distractor_is_not_ignored(phantom_source: Path, tmp_path: Path) -> None:
    """The control for the test above: the same one-slice series named like a DCE phase."""
    key = "Phantom_MRI_003"
    root = private_case(phantom_source, tmp_path, key)
    d = add_distractor(
        root, key, "ax dyn 5th pass", sorted(series_dirs(root, key)[-1].glob("*"))[7]
    )
    with pytest.raises(CaseError, match="different geometry") as e:
        dicom.read_case(root, key)
    assert d.relative_to(root).as_posix() in str(e.value)


def test_dicom_stored_rows_up_and_slices_down(
    phantom_source: Path, phantom_cases, tmp_path: Path
) -> None:
    """Rows stored along −y (IOP 1,0,0,0,−1,0, so the normal is −z): same canonical case."""
    key = "Phantom_MRI_004"
    case = phantom_cases[key]
    root = private_case(phantom_source, tmp_path, key)
    ny, dy = case.geometry.shape[1], case.geometry.spacing[1]

    def flip(ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.ImagePositionPatient = [x, round(y + (ny - 1) * dy, 4), z]
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()

    for d in series_dirs(root, key):
        edit_dicom(d, flip)
    raw = dicom.read_case(root, key)
    assert raw.reorientation.flip == (True, True, False) and raw.reorientation.transpose == (
        0,
        1,
        2,
    )
    assert_same_as_phantom(raw, case)


# --- NIfTI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_nifti_equals_dicom(
    dicom_cases: dict[str, RawCase], nifti_cases: dict[str, RawCase], phantom_cases, key: str
) -> None:
    d, n = dicom_cases[key], nifti_cases[key]
    assert len(n.phases) == len(d.phases)
    for k, (a, b) in enumerate(zip(d.phases, n.phases, strict=True)):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b, err_msg=f"phase {k}")
    assert n.geometry.allclose(d.geometry, atol=1e-3)
    assert n.geometry.as_float32() == d.geometry.as_float32()  # ingest relies on this
    assert n.facts == {
        k: pytest.approx(v) if isinstance(v, float) else v for k, v in d.facts.items()
    }
    np.testing.assert_allclose(n.acquisition_s, d.acquisition_s, atol=1e-3)
    assert (n.reorientation.transpose, n.reorientation.flip) == (
        d.reorientation.transpose,
        d.reorientation.flip,
    )
    np.testing.assert_array_equal(n.slice_numbers, np.arange(1, n.geometry.shape[0] + 1))
    np.testing.assert_array_equal(n.mask, phantom_cases[key].mask)
    assert n.mask.dtype == np.uint8


# --- Annotation_Boxes -----------------------------------------------------------------------


def test_boxes_csv_and_xlsx_give_the_same_rows(
    phantom_source: Path, phantom_cases, tmp_path: Path
) -> None:
    csv = phantom_source / "Annotation_Boxes.csv"
    xlsx = tmp_path / "Annotation_Boxes.xlsx"
    pd.read_csv(csv).to_excel(xlsx, index=False)
    rows = read_boxes(csv)
    assert read_boxes(xlsx) == rows
    expected = {
        k: [duke_box(c.box, c.protocol.slices, c.protocol.instance_order)]
        for k, c in phantom_cases.items()
    }
    assert rows == expected
    assert all(type(v) is int for r in rows.values() for v in r[0].values())


def test_boxes_keep_duplicates_and_strip_headers(tmp_path: Path) -> None:
    f = tmp_path / "boxes.csv"
    header = ",".join(f" {c} " for c in ANNOTATION_COLUMNS)
    f.write_text(f"{header}\nBreast_MRI_001,1,2,3,4,5,6\nBreast_MRI_001 ,7,8,9,10,11,12\n")
    assert read_boxes(f) == {
        "Breast_MRI_001": [
            dict(zip(ANNOTATION_COLUMNS[1:], range(1, 7), strict=True)),
            dict(zip(ANNOTATION_COLUMNS[1:], range(7, 13), strict=True)),
        ]
    }


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("drop", [["End Slice"], ["Patient ID", "Start Row"], ["Start Column"]])
def test_boxes_missing_columns(tmp_path: Path, suffix: str, drop: list[str]) -> None:
    df = pd.DataFrame([["Case_1", 1, 2, 3, 4, 5, 6]], columns=ANNOTATION_COLUMNS).drop(columns=drop)
    f = tmp_path / f"boxes{suffix}"
    df.to_csv(f, index=False) if suffix == ".csv" else df.to_excel(f, index=False)
    with pytest.raises(ValueError, match="missing columns") as e:
        read_boxes(f)
    assert str(f) in str(e.value)
    assert str(drop) in str(e.value)


def test_boxes_other_format(tmp_path: Path) -> None:
    f = tmp_path / "boxes.tsv"
    f.write_text("\t".join(ANNOTATION_COLUMNS))
    with pytest.raises(ValueError, match=r"boxes.tsv: boxes must be \.csv or \.xlsx"):
        read_boxes(f)


def duke(r0: int, r1: int, c0: int, c1: int, s0: int, s1: int) -> dict[str, int]:
    return dict(zip(ANNOTATION_COLUMNS[1:], (r0, r1, c0, c1, s0, s1), strict=True))


UP, DOWN = np.arange(1, 17), np.arange(16, 0, -1)  # InstanceNumber ranks of stored slices


@pytest.mark.parametrize(
    ("row", "numbers", "expected"),
    [
        (duke(21, 25, 34, 38, 5, 8), UP, (4, 7, 20, 24, 33, 37)),
        (duke(21, 25, 34, 38, 5, 8), DOWN, (8, 11, 20, 24, 33, 37)),
        (duke(1, 1, 1, 1, 1, 1), UP, (0, 0, 0, 0, 0, 0)),
        (duke(1, 1, 1, 1, 1, 1), DOWN, (15, 15, 0, 0, 0, 0)),
        (duke(1, 48, 1, 40, 1, 16), DOWN, (0, 15, 0, 47, 0, 39)),
        (duke(48, 48, 40, 48, 16, 16), UP, (15, 15, 47, 47, 39, 47)),
    ],
)
def test_box_in_stored_indices(row, numbers, expected) -> None:
    assert box_in_stored_indices("Case_1", row, (16, 48, 48), numbers) == expected


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (duke(25, 21, 1, 2, 1, 2), "empty box"),
        (duke(1, 2, 9, 8, 1, 2), "empty box"),
        (duke(1, 2, 1, 2, 8, 5), "empty box"),
        (duke(0, 2, 1, 2, 1, 2), "outside the volume of 16×48×48"),
        (duke(1, 49, 1, 2, 1, 2), "outside the volume"),
        (duke(1, 2, 1, 49, 1, 2), "outside the volume"),
        (duke(1, 2, 1, 2, 0, 2), "outside the volume"),
        (duke(1, 2, 1, 2, 15, 17), "outside the volume"),
    ],
)
@pytest.mark.parametrize("numbers", [UP, DOWN], ids=["up", "down"])
def test_bad_box(row, match: str, numbers) -> None:
    with pytest.raises(CaseError, match=f"^Case_1: .*{match}") as e:
        box_in_stored_indices("Case_1", row, (16, 48, 48), numbers)
    assert e.value.case == "Case_1"


# --- geometry -------------------------------------------------------------------------------

CANON = Geometry(shape=(4, 5, 6), spacing=(0.7, 0.9, 2.5), origin=(-10.0, 20.0, 30.0))
X, Y, Z = np.eye(3)


def stored_as(columns: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[Geometry, np.ndarray]:
    """CANON's grid stored with index axes (i, j, k) along ``columns`` (signed LPS axes), and
    the stored array of CANON_VALUES, found voxel by voxel through physical positions."""
    d = np.column_stack(columns)
    lps = [int(np.argmax(np.abs(c))) for c in columns]  # LPS axis of i, j, k
    size = [CANON.shape[2 - a] for a in lps]
    first = np.zeros(3)  # canonical (i, j, k) of stored voxel 0
    for c, a, n in zip(columns, lps, size, strict=True):
        if c[a] < 0:
            first[a] = n - 1
    origin = CANON.index_to_lps(first[::-1])
    geom = Geometry(
        shape=(size[2], size[1], size[0]),
        spacing=tuple(CANON.spacing[a] for a in lps),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in d.ravel()),
    )
    kji = np.indices(geom.shape).reshape(3, -1).T
    pos = geom.index_to_lps(kji)
    ijk = (np.c_[pos, np.ones(len(pos))] @ np.linalg.inv(CANON.affine_lps).T)[:, :3]
    ijk = np.rint(ijk).astype(int)
    values = CANON_VALUES[ijk[:, 2], ijk[:, 1], ijk[:, 0]].reshape(geom.shape)
    return geom, values


CANON_VALUES = np.arange(np.prod(CANON.shape)).reshape(CANON.shape)
ORIENTATIONS = {
    "canonical": (X, Y, Z),
    "slices-down": (X, Y, -Z),
    "rows-up": (X, -Y, Z),
    "columns-right-to-left": (-X, Y, Z),
    "all-flipped": (-X, -Y, -Z),
    "sagittal": (Y, -Z, X),
    "coronal": (X, -Z, Y),
    "permuted-flipped": (-Z, X, -Y),
}


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_reorientation(name: str) -> None:
    geom, stored = stored_as(ORIENTATIONS[name])
    r = Reorientation.of(geom)
    assert r.identity == (name == "canonical")
    assert r.geometry.allclose(CANON, atol=1e-9), r.geometry
    assert r.geometry.direction == IDENTITY
    canon = r.array(stored)
    np.testing.assert_array_equal(canon, CANON_VALUES)
    # every stored index goes where the same physical point lies
    kji = np.indices(geom.shape).reshape(3, -1).T
    np.testing.assert_allclose(r.geometry.index_to_lps(r.index(kji)), geom.index_to_lps(kji))
    np.testing.assert_array_equal(canon[tuple(r.index(kji).T)], stored[tuple(kji.T)])
    # a stored box covers the same voxels as its canonical box
    box = (0, 1, 1, geom.shape[1] - 1, 2, 3)
    inside = np.zeros(geom.shape, bool)
    inside[box[0] : box[1] + 1, box[2] : box[3] + 1, box[4] : box[5] + 1] = True
    z0, z1, y0, y1, x0, x1 = r.box(box)
    expected = np.zeros(CANON.shape, bool)
    expected[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1] = True
    np.testing.assert_array_equal(r.array(inside), expected)


def test_canonical_geometry_is_its_own_canonical_form() -> None:
    r = Reorientation.of(CANON)
    assert r.identity and r.geometry == CANON
    assert r.array(CANON_VALUES) is CANON_VALUES


@pytest.mark.parametrize("columns", [(X, X, Z), (X, Y, Y), (Z, Y, -Z)], ids=["i=j", "j=k", "i=-k"])
def test_degenerate_orientation(columns) -> None:
    geom = Geometry(
        (2, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.column_stack(columns).ravel())
    )
    with pytest.raises(ValueError, match="oblique or degenerate orientation"):
        Reorientation.of(geom)
