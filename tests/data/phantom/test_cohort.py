"""The cohort directory: Duke tables, identities kept out of the tables, and determinism
across separate generations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dcesynth.data.phantom.anatomy import lesion_label
from dcesynth.data.phantom.cohort import ANNOTATION_COLUMNS, duke_box, generate_cohort
from dcesynth.data.phantom.config import PhantomConfig

DUKE_COLUMNS = [
    "Patient ID",
    "Start Row",
    "End Row",
    "Start Column",
    "End Column",
    "Start Slice",
    "End Slice",
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _nifti_zyx(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).transpose(2, 1, 0)


def _instance_to_z(case_dir: Path) -> dict[int, int]:
    """InstanceNumber → slice index (order along +z) for the pre-contrast phase, from headers."""
    pre = []
    for f in case_dir.rglob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if int(ds.get("TemporalPositionIdentifier", 1)) == 1 and "ContrastBolusAgent" not in ds:
            pre.append((float(ds.ImagePositionPatient[2]), int(ds.InstanceNumber)))
    return {inst: k for k, (_, inst) in enumerate(sorted(pre))}


# --- Duke tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (
            1,
            {
                "Start Row": 11,
                "End Row": 21,
                "Start Column": 31,
                "End Column": 41,
                "Start Slice": 3,
                "End Slice": 6,
            },
        ),
        (
            -1,
            {
                "Start Row": 11,
                "End Row": 21,
                "Start Column": 31,
                "End Column": 41,
                "Start Slice": 11,
                "End Slice": 14,
            },
        ),
    ],
)
def test_duke_box_known_answer(order: int, expected: dict[str, int]) -> None:
    """0-based array box (z 2–5, y 10–20, x 30–40) of 16 slices → Duke's 1-based box."""
    assert duke_box([2, 5, 10, 20, 30, 40], 16, order) == expected


def test_annotation_boxes_enclose_index_lesion_tightly(cohort) -> None:
    """Annotation_Boxes.csv has Duke's columns; each box, read back through DICOM
    InstanceNumbers, is exactly the bounding box of the index lesion in the NIfTI labels (and of
    the whole mask for unifocal cases)."""
    assert ANNOTATION_COLUMNS == DUKE_COLUMNS
    with (cohort.out / "Annotation_Boxes.csv").open() as f:
        assert next(csv.reader(f)) == DUKE_COLUMNS
    rows = {r["Patient ID"]: r for r in _rows(cohort.out / "Annotation_Boxes.csv")}
    assert sorted(rows) == [r["case_id"] for r in cohort.records]
    for rec in cohort.records:
        cid, box = (
            rec["case_id"],
            {k: int(v) for k, v in rows[rec["case_id"]].items() if k != "Patient ID"},
        )
        labels = _nifti_zyx(cohort.out / "nifti" / "labels" / f"{cid}_labels.nii.gz")
        mask = _nifti_zyx(cohort.out / "nifti" / "masks" / f"{cid}.nii.gz")
        idx = rec["index_lesion"]
        lesion = np.isin(labels, [lesion_label(idx), lesion_label(idx, True)])
        inst_to_z = _instance_to_z(cohort.case_dir("dicom", cid))
        assert sorted(inst_to_z) == list(range(1, labels.shape[0] + 1))
        zs = sorted(inst_to_z[s] for s in range(box["Start Slice"], box["End Slice"] + 1))
        assert zs == list(range(zs[0], zs[-1] + 1))  # a contiguous slab
        boxed = np.zeros_like(lesion)
        boxed[
            zs[0] : zs[-1] + 1,
            box["Start Row"] - 1 : box["End Row"],
            box["Start Column"] - 1 : box["End Column"],
        ] = True
        assert np.all(boxed[lesion]), f"{cid}: lesion voxels outside its box"
        pts = np.argwhere(lesion)
        assert pts.min(0).tolist() == [zs[0], box["Start Row"] - 1, box["Start Column"] - 1]
        assert pts.max(0).tolist() == [zs[-1], box["End Row"] - 1, box["End Column"] - 1]
        if rec["lesion_count"] == 1:
            np.testing.assert_array_equal(mask.astype(bool), lesion)


def test_clinical_table_matches_ground_truth(cohort) -> None:
    """clinical.csv has one row per case with the recorded protocol and lesion facts."""
    rows = _rows(cohort.out / "clinical.csv")
    assert [r["Patient ID"] for r in rows] == [r["case_id"] for r in cohort.records]
    for row, rec in zip(rows, cohort.records, strict=True):
        p, les = rec["protocol"], rec["lesions"][rec["index_lesion"]]
        assert float(row["Field Strength (T)"]) == p["field_t"]
        assert row["Contrast Agent"] == p["agent"] and int(row["Matrix"]) == 48
        assert int(row["Slices"]) == 16 and int(row["Lesion Count"]) == rec["lesion_count"]
        assert row["Curve Type"] == les["curve_type"] and row["Tumour Side"] == les["side"]


def test_identities_only_in_dicom_headers(cohort) -> None:
    """Fake names and birth dates are in the DICOM headers but in none of the tables."""
    identities = _rows(cohort.out / "identities.csv")
    assert len(identities) == len(cohort.records)
    tables = {n: (cohort.out / n).read_text() for n in ("Annotation_Boxes.csv", "clinical.csv")}
    for idn in identities:
        secrets = [idn["PatientName"], idn["PatientBirthDate"], idn["AccessionNumber"]]
        for name, text in tables.items():
            for s in secrets:
                assert s not in text, f"{s!r} leaks into {name}"
        files = sorted(cohort.case_dir("dicom", idn["Patient ID"]).rglob("*.dcm"))
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert str(ds.PatientName) == idn["PatientName"]
        assert ds.PatientBirthDate == idn["PatientBirthDate"]
        assert ds.AccessionNumber == idn["AccessionNumber"]


def test_nifti_sidecars_and_boxes(cohort) -> None:
    """dcm2niix-style sidecars carry the protocol in BIDS units and no identity; the NIfTI box
    file counts slices along k, so it equals the array-order box (1-based)."""
    identities = {r["Patient ID"]: r for r in _rows(cohort.out / "identities.csv")}
    nifti_boxes = {r["Patient ID"]: r for r in _rows(cohort.out / "nifti" / "Annotation_Boxes.csv")}
    for rec in cohort.records:
        cid, p = rec["case_id"], rec["protocol"]
        sidecars = [
            json.loads(f.read_text())
            for f in sorted(cohort.case_dir("nifti/images", cid).glob("*.json"))
        ]
        assert len(sidecars) == p["post_phases"] + 1
        assert all(sc["RepetitionTime"] == pytest.approx(p["tr_ms"] / 1000) for sc in sidecars)
        assert ["ContrastBolusAgent" in sc for sc in sidecars] == [False] + [True] * p[
            "post_phases"
        ]
        times = [sc["AcquisitionTime"] for sc in sidecars]
        assert times == sorted(times)
        text = " ".join(json.dumps(sc) for sc in sidecars)
        for key in ("PatientName", "PatientBirthDate", "AccessionNumber"):
            assert identities[cid][key] not in text
        z0, z1, y0, y1, x0, x1 = rec["box_zyx"]
        row = {k: int(v) for k, v in nifti_boxes[cid].items() if k != "Patient ID"}
        assert row == {
            "Start Row": y0 + 1,
            "End Row": y1 + 1,
            "Start Column": x0 + 1,
            "End Column": x1 + 1,
            "Start Slice": z0 + 1,
            "End Slice": z1 + 1,
        }


@pytest.fixture(scope="module")
def regenerated(cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Case 1 of the session cohort generated again, serially, in a fresh directory."""
    out = tmp_path_factory.mktemp("again") / "out"
    generate_cohort(PhantomConfig(**{**cohort.cfg.model_dump(), "cases": 1}), out, progress=False)
    return out


def _dicom_pairs(cohort, out: Path) -> list[tuple[Path, Path]]:
    dcm = sorted(p.relative_to(out) for p in (out / "dicom").rglob("*.dcm"))
    assert dcm == sorted(
        p.relative_to(cohort.out)
        for p in cohort.case_dir("dicom", "Phantom_MRI_001").rglob("*.dcm")
    )
    assert len(dcm) == 5 * 16
    return [(out / p, cohort.out / p) for p in dcm]


def test_same_seed_gives_identical_output(cohort, regenerated: Path) -> None:
    """A fresh, serial generation of case 1 equals the session cohort's (made by 2 worker
    processes): NIfTI arrays, ground truth, DICOM pixels and every non-UID header element."""
    out, cid = regenerated, "Phantom_MRI_001"
    nifti = sorted(p.relative_to(out) for p in (out / "nifti").rglob("*.nii.gz"))
    assert len(nifti) == 7
    for rel in nifti:
        np.testing.assert_array_equal(_nifti_zyx(out / rel), _nifti_zyx(cohort.out / rel))
    gt = f"ground_truth/{cid}.json"
    assert json.loads((out / gt).read_text()) == json.loads((cohort.out / gt).read_text())
    for new, old in _dicom_pairs(cohort, out):
        a, b = pydicom.dcmread(new), pydicom.dcmread(old)
        non_uid = [e.tag for e in b if e.VR != "UI"]
        assert [e.tag for e in a if e.VR != "UI"] == non_uid
        assert all(a[t].value == b[t].value for t in non_uid)


def test_same_seed_gives_identical_dicom_uids(cohort, regenerated: Path) -> None:
    """The writer promises deterministic UIDs: the same case written twice is byte-identical."""
    for new, old in _dicom_pairs(cohort, regenerated):
        a, b = pydicom.dcmread(new, stop_before_pixels=True), pydicom.dcmread(old, True)
        assert (a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID) == (
            b.StudyInstanceUID,
            b.SeriesInstanceUID,
            b.SOPInstanceUID,
        )
        assert new.read_bytes() == old.read_bytes()
