"""Cases found by DICOM headers, not folders: patients sharing a folder, a patient spread over
folders, files without PatientID, and objects that are no DCE image (structured reports,
presentation states, secondary captures, DICOMDIR, localisers), each left out with a reason.

The DICOM is written with pydicom (tests/data/ingest/conftest.py). The phantom's layouts
(its output folder, a flat folder of all its files) are in test_pipeline.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.readers import CaseError, dicom
from dcesynth.data.readers.discovery import Cohort, group, scan_headers, survey

TIMES = [0.0, 60.0, 120.0]


def discover(root: Path) -> Cohort:
    return group(scan_headers(root, list(survey(root).dicom)))


def rel(files: list[Path], root: Path) -> list[str]:
    return sorted(f.relative_to(root).as_posix() for f in files)


def assert_case(root: Path, cohort: Cohort, key: str, vols: np.ndarray) -> None:
    raw = dicom.read_case(root, key, files=cohort.cases[key])
    assert len(raw.phases) == len(vols) and raw.acquisition_s == TIMES[: len(vols)]
    for t, vol in enumerate(raw.phases):
        np.testing.assert_array_equal(vol, vols[t].astype(np.float32), err_msg=f"{key} {t}")


def test_patients_by_header_in_any_layout(dcm, tmp_path: Path) -> None:
    """P1 and P2 share a folder; P2's posts lie in two other folders; P3 is a Duke-style tree."""
    root = tmp_path / "src"
    vols = {k: dcm.truth(3, 4, seed=i) for i, k in enumerate(("P1", "P2", "P3"))}
    f1 = dcm.write_phases(root / "export", "P1", vols["P1"], TIMES)
    spread = [root / "export", root / "later" / "a", root / "later" / "b"]
    f2 = dcm.write_phases(spread, "P2", vols["P2"], TIMES)
    duke = [root / "P3" / "01-01-2001-NA-MRI" / f"{3 + k}.000000-x-{k}" for k in range(3)]
    f3 = dcm.write_phases(duke, "P3", vols["P3"], TIMES)
    cohort = discover(root)
    assert cohort.cases == {"P1": rel(f1, root), "P2": rel(f2, root), "P3": rel(f3, root)}
    assert not cohort.errors and not cohort.ignored
    for key, v in vols.items():
        assert_case(root, cohort, key, v)


def test_files_that_are_no_dce_image_are_left_out_with_a_reason(dcm, tmp_path: Path) -> None:
    root = tmp_path / "src"
    study = generate_uid()
    dcm.write_phases(root / "export", "P1", dcm.truth(3, 4), TIMES, study=study)
    dcm.write_phases(root / "export", "P2", dcm.truth(3, 4), TIMES)
    dcm.write_phases(root / "P3" / "s", "P3", dcm.truth(3, 4), TIMES)
    dcm.write_sr(root / "export" / "sr", "P1", study)
    dcm.write_pr(root / "export" / "pr", "P1", study)
    dcm.write_sc(root / "export" / "sc", "P1", study)
    dcm.write_dicomdir(root / "DICOMDIR")
    (root / "export" / "broken").write_bytes(b"not DICOM\n" * 50)  # whose? two patients here
    (root / "P3" / "s" / "broken").write_bytes(b"not DICOM\n" * 50)  # P3's folder: P3's
    (root / "junk").write_bytes(b"")
    (root / "notes.txt").write_text("never opened")  # by suffix
    (root / ".hidden").mkdir()
    dcm.write_phases(root / ".hidden", "P9", dcm.truth(3, 4), TIMES)  # hidden: never read
    for folder, name in ((root / "anon" / "s", "x"), (root, "y")):  # no PatientID
        ds = dcm.mr_slice("", generate_uid(), generate_uid(), "ax dyn pre", 0, np.zeros((4, 4)))
        dcm.save(ds, folder / name)
    cohort = discover(root)
    assert sorted(cohort.cases) == ["P1", "P2", "P3", "anon"]
    assert "P3/s/broken" in cohort.cases["P3"] and "notes.txt" not in str(cohort.ignored)
    reasons = {e["source"]: e["reason"] for e in cohort.ignored}
    assert reasons == {
        "DICOMDIR": "DICOMDIR (a media index, no image)",
        "export/broken": reasons["export/broken"],
        "export/pr": "no image data (Grayscale Softcopy Presentation State Storage; modality PR)",
        "export/sc": "image without position/orientation in the patient (e.g. a secondary capture)",
        "export/sr": "no image data (Basic Text SR Storage; modality SR)",
        "junk": reasons["junk"],
        "y": "no PatientID, at the root of SOURCE",
    }
    assert reasons["export/broken"].startswith("unreadable DICOM (InvalidDicomError")
    assert reasons["export/broken"].endswith("its folder holds several patients")
    assert reasons["junk"].endswith("its folder holds no patient's images")
    assert {e.get("case") for e in cohort.ignored if e["source"].startswith("export/s")} == {"P1"}
    # P3's unreadable file fails P3 alone, naming it (a slice may be missing otherwise)
    with pytest.raises(CaseError, match=r"^P3: P3/s/broken: unreadable DICOM"):
        dicom.read_case(root, "P3", files=cohort.cases["P3"])


def test_series_the_reader_leaves_out_are_named(dcm, tmp_path: Path) -> None:
    """A localiser (SeriesRules.exclude) and a T1 series without contrast (not dynamic)."""
    root = tmp_path / "src"
    vols, study = dcm.truth(3, 4), generate_uid()
    dcm.write_phases(root / "P1" / "dyn", "P1", vols, TIMES, study=study)
    loc, t2 = generate_uid(), generate_uid()
    planes = [[1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1]]
    for z, iop in enumerate(planes):  # three orthogonal planes of a scout
        ds = dcm.mr_slice("P1", study, loc, "3 Plane Loc", z, np.ones((4, 4)))
        ds.ImageOrientationPatient, ds.ImageType = iop, ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        dcm.save(ds, root / "P1" / "loc" / f"{z}")
        ds = dcm.mr_slice("P1", study, t2, "ax t1 non fs", z, np.ones((4, 4)))
        dcm.save(ds, root / "P1" / "t2" / f"{z}")
    cohort = discover(root)
    raw = dicom.read_case(root, "P1", files=cohort.cases["P1"])
    assert len(raw.phases) == 3
    assert raw.ignored == [
        {
            "source": "P1/loc",
            "series": "3 Plane Loc",
            "reason": r"matches series_rules.exclude '\bloc'",
        },
        {
            "source": "P1/t2",
            "series": "ax t1 non fs",
            "reason": "not a dynamic series (series_rules.dynamic)",
        },
    ]


def test_images_stored_twice_fail_the_case(dcm, tmp_path: Path) -> None:
    root = tmp_path / "src"
    dcm.write_phases(root / "P1", "P1", dcm.truth(3, 4), TIMES)
    dcm.write_phases(root / "P2", "P2", dcm.truth(3, 4), TIMES)
    shutil.copytree(root / "P1", root / "P1 again")
    cohort = discover(root)
    assert list(cohort.errors) == ["P1"] and sorted(cohort.cases) == ["P1", "P2"]
    assert cohort.errors["P1"].startswith(
        "duplicate case: 12 images stored twice, in folders ['P1', 'P1 again'] (e.g. "
    )


def test_a_patient_with_two_dce_studies_fails(dcm, tmp_path: Path) -> None:
    root = tmp_path / "src"
    dcm.write_phases(root / "P1" / "2019", "P1", dcm.truth(3, 4), TIMES)
    dcm.write_phases(root / "P1" / "2021", "P1", dcm.truth(3, 4), TIMES)
    cohort = discover(root)
    match = r"^P1: 2 studies hold dynamic series .*'P1/2019'.*'P1/2021'"
    with pytest.raises(CaseError, match=match):
        dicom.read_case(root, "P1", files=cohort.cases["P1"])


def test_survey_finds_dicom_and_nifti_trees(dcm, tmp_path: Path) -> None:
    root = tmp_path / "src"
    dcm.write_phases(root / "dicom" / "P1", "P1", dcm.truth(3, 4), TIMES)
    for k in range(3):
        (root / "nifti" / "images" / "P1").mkdir(parents=True, exist_ok=True)
        (root / "nifti" / "images" / "P1" / f"P1_{k:04d}.nii.gz").write_bytes(b"")
    (root / "nifti" / "masks").mkdir()
    (root / "nifti" / "masks" / "P1.nii.gz").write_bytes(b"")
    found = survey(root)
    assert found.nifti_roots == (root / "nifti" / "images",) and found.has_dicom()
    assert len(found.dicom) == 12 and all(f.startswith("dicom/P1/") for f in found.dicom)


# --- the pipeline -----------------------------------------------------------------------------


def test_ingest_a_pacs_export(ray_session, dcm, tmp_path: Path) -> None:
    """Two patients, a report, a presentation state, a screenshot, a DICOMDIR and a scout in one
    folder: two cases; everything left out is listed in ingest_report.json with its reason."""
    src, study = tmp_path / "export", generate_uid()
    dcm.write_phases(src, "P1", dcm.truth(3, 4, 16, 16), TIMES, study=study)
    study2 = generate_uid()
    dcm.write_phases(src, "P2", dcm.truth(3, 4, 16, 16, seed=2), TIMES, study=study2)
    dcm.write_sr(src / "IM_SR", "P1", study)
    dcm.write_pr(src / "IM_PR", "P1", study)
    dcm.write_sc(src / "IM_SC", "P1", study)
    dcm.write_dicomdir(src / "DICOMDIR")
    ds = dcm.mr_slice("P2", study2, generate_uid(), "3 Plane Loc", 0, np.ones((16, 16)))
    dcm.save(ds, src / "IM_LOC")
    cfg = IngestConfig(image_size=16, phases=(1, 2), split={"ratios": {"train": 1.0}})
    res = ingest(src, tmp_path / "ds", cfg, progress=False)
    assert res.cases == {"train": 2} and not res.skipped and res.source_format == "dicom"
    report = json.loads((tmp_path / "ds" / "ingest_report.json").read_text())
    assert report == {"skipped": [], "ignored": res.ignored}
    why = {e["source"]: e["reason"].split(" (")[0] for e in report["ignored"]}
    assert why == {
        "DICOMDIR": "DICOMDIR",
        "IM_PR": "no image data",
        "IM_SC": "image without position/orientation in the patient",
        "IM_SR": "no image data",
        "IM_LOC": r"matches series_rules.exclude '\bloc'",
    }
    assert [e.get("case") for e in report["ignored"]] == [None, "P1", "P1", "P1", "P2"]
