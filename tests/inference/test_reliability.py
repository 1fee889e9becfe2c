"""Issue 23, predict: hostile PatientIDs never write outside OUT and never share a folder; a
second predict into one OUT is refused; de-identified DICOM stays within DICOM's LO length."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from dcesynth.inference.predict import predict
from dcesynth.locks import FolderLocked
from dcesynth.names import safe_name

pytestmark = pytest.mark.filterwarnings("ignore:The value length")  # long hostile PatientIDs


def _pre_series(cohort: Path) -> Path:
    patient = sorted((cohort / "dicom").iterdir())[0]
    series = sorted(patient.glob("*/*"))
    return next((s for s in series if "pre" in s.name.lower()), series[0])


@pytest.fixture
def hostile_input(phantom_source: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """One pre-contrast series copied under four PatientIDs: ``x/y`` and ``x_y`` (one folder
    each, not one for both), ``../../evil`` and an absolute path (never outside OUT)."""
    series = _pre_series(phantom_source)
    ids = ["x/y", "x_y", "../../evil", str(tmp_path / "abs_evil")]
    root = tmp_path / "input"
    for i, pid in enumerate(ids):
        dst = root / f"p{i}"
        shutil.copytree(series, dst)
        for f in dst.iterdir():
            ds = pydicom.dcmread(f)
            ds.PatientID = pid
            ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i + 1}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(f)
    return root, {pid: f"p{i}" for i, pid in enumerate(ids)}


def test_hostile_patient_ids_get_distinct_folders_inside_out(
    model_file: Path, hostile_input, tmp_path: Path
) -> None:
    root, ids = hostile_input
    out = tmp_path / "sub" / "out"
    res = predict(model_file, root, out, phases=(1,), dicom=False, progress=False)
    assert res.failed == {} and sorted(res.done) == sorted(ids)
    folders = {Path(f) for f in res.done.values()}
    assert len(folders) == len(ids)  # x/y and x_y: two outputs
    assert all(f.parent == out and (f / "post_0001.nii.gz").is_file() for f in folders)
    assert res.done["x_y"] == str(out / "x_y")  # a plain ID keeps its name
    assert res.done["x/y"] == str(out / safe_name("x/y")) != res.done["x_y"]
    record = json.loads((out / "predict.json").read_text())
    assert record["done"] == res.done  # each patient → its folder, for the user to find
    # nothing outside OUT: not tmp_path/evil, not the absolute path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "sub"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out"]


def test_deidentified_dicom_keeps_lo_values_within_64(
    model_file: Path, hostile_input, tmp_path: Path
) -> None:
    root, ids = hostile_input
    out = tmp_path / "deid"
    res = predict(model_file, root, out, phases=(1,), deidentify=True, progress=False)
    assert res.failed == {} and len(res.done) == len(ids)
    f = next(out.rglob("*.dcm"))
    ds = pydicom.dcmread(f)
    method = ds.DeidentificationMethod
    values = list(method) if isinstance(method, pydicom.multival.MultiValue) else [method]
    assert values and all(len(v) <= 64 for v in values), values
    assert "dcesynth predict --deidentify" in values


def test_a_second_predict_into_out_is_refused(
    model_file: Path, hostile_input, tmp_path: Path, held_by_other
) -> None:
    root, _ = hostile_input
    out = tmp_path / "out"
    holder = held_by_other(out, "predict")
    with pytest.raises(FolderLocked, match=rf"another predict process \(PID {holder.pid} "):
        predict(model_file, root, out, progress=False)
    assert not out.exists()
