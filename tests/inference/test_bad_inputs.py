"""Inputs prediction must refuse, each with an error naming the file; a folder of patients
where one is broken still yields the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dcesynth.inference.artifact import ModelError, load_artifact, save_artifact
from dcesynth.inference.predict import predict


def _series(patients: Path, patient: str, word: str) -> Path:
    return next(s for s in sorted((patients / patient).glob("*/*")) if word in s.name)


def test_post_contrast_series_is_refused(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    post = _series(phantom_source / "dicom", "Phantom_MRI_003", "1st pass")
    res = predict(model_file, post, tmp_path, progress=False)
    assert res.done == {}
    (why,) = res.failed.values()
    assert "post-contrast series 'ax dyn 1st pass'" in why and "ContrastBolusAgent" in why
    assert str(post) in why  # the folder that was refused
    assert not (tmp_path / "Phantom_MRI_003").exists()


def test_series_with_a_gap_is_refused(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    pre = tmp_path / "in" / "pre"
    shutil.copytree(_series(phantom_source / "dicom", "Phantom_MRI_003", "pre"), pre)
    files = sorted(pre.iterdir())
    files[len(files) // 2].unlink()
    res = predict(model_file, pre, tmp_path / "out", progress=False)
    (why,) = res.failed.values()
    assert "uneven slice spacing (missing slices?)" in why and str(pre) in why


def test_post_phase_nifti_is_refused(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    f = next((phantom_source / "nifti" / "images").glob("*/*_0001.nii.gz"))
    res = predict(model_file, f, tmp_path, progress=False)
    (why,) = res.failed.values()
    assert "post-contrast phase 1" in why and str(f) in why


def test_phases_the_model_does_not_make(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    pre = _series(phantom_source / "dicom", "Phantom_MRI_003", "pre")
    with pytest.raises(ModelError, match=r"model\.dcem: generates post phase\(s\) \[1, 2, 3\]"):
        predict(model_file, pre, tmp_path, phases=(4,), progress=False)


def test_input_channels_the_request_cannot_meet(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    art = load_artifact(model_file)
    desc = json.loads(json.dumps(art.description))
    desc["generator"]["in_channels"] = 2  # e.g. a model trained on pre + another sequence
    other = tmp_path / "two_inputs.dcem"
    save_artifact(other, desc, art.weights)
    pre = _series(phantom_source / "dicom", "Phantom_MRI_003", "pre")
    with pytest.raises(ModelError, match=r"two_inputs\.dcem: its generator takes 2 input"):
        predict(other, pre, tmp_path / "out", progress=False)


def test_missing_input_is_named(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"INPUT .*nowhere: no such file or folder"):
        predict(model_file, tmp_path / "nowhere", tmp_path / "out", progress=False)


def test_one_broken_patient_does_not_stop_the_others(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    for p in ("Phantom_MRI_001", "Phantom_MRI_002", "Phantom_MRI_003"):
        shutil.copytree(phantom_source / "dicom" / p, folder / p)
    pre = _series(folder, "Phantom_MRI_003", "pre")
    files = sorted(pre.iterdir())
    files[len(files) // 2].unlink()  # 003's pre series now has a gap
    res = predict(model_file, folder, tmp_path / "out", progress=False)
    assert sorted(res.done) == ["Phantom_MRI_001", "Phantom_MRI_002"]
    assert list(res.failed) == ["Phantom_MRI_003"]
    assert "missing slices" in res.failed["Phantom_MRI_003"]
    for p in res.done:  # multiphase series (002) and a typo'd description (001) both read
        assert len(list((tmp_path / "out" / p / "dicom").glob("*/*.dcm"))) == 6 * 16
    assert not (tmp_path / "out" / "Phantom_MRI_003").exists()
    rec = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert sorted(rec["done"]) == sorted(res.done) and list(rec["failed"]) == ["Phantom_MRI_003"]


def test_a_second_run_over_its_own_output_is_refused(
    model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    """A folder that holds only dcesynth's synthetic series has no acquired pre series."""
    pre = _series(phantom_source / "dicom", "Phantom_MRI_004", "pre")
    predict(model_file, pre, tmp_path / "first", phases=(1,), progress=False)
    res = predict(model_file, tmp_path / "first", tmp_path / "second", progress=False)
    (why,) = res.failed.values()
    assert "only series synthesised by dcesynth" in why
