"""Which cases a study uses, and every impossible input refused before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest

from dcesynth.segmentation.cases import StudyInputError, collect_cases
from dcesynth.segmentation.config import SegmentConfig


def _cfg(dataset: Path, run: Path | None, **kw) -> SegmentConfig:
    return SegmentConfig(dataset=dataset, synthetic=run, folds=2, **kw)


def test_collects_masked_unifocal_cases_with_their_roles(seg_dataset: Path, seg_run: Path) -> None:
    cases, excluded = collect_cases(_cfg(seg_dataset, seg_run), progress=False)
    rows = {r["case_id"]: r for r in pq.read_table(seg_dataset / "cases.parquet").to_pylist()}
    assert {c.case_id for c in cases} | set(excluded) == set(rows)
    assert all(v.startswith("multifocal") for v in excluded.values()) and excluded
    for c in cases:
        assert c.role == ("test" if rows[c.case_id]["split"] == "test" else "fold")
        assert c.lesions == 1
        # tests read real volumes only; fold cases also their synthetic version
        assert ("syn" in c.files) == (c.role == "fold")
        assert {"pre", "post", "mask"} <= set(c.files)
    assert [c.role for c in cases] == sorted((c.role for c in cases), key=lambda r: r != "fold")


def test_keeps_multifocal_cases_when_asked(seg_dataset: Path, seg_run: Path) -> None:
    cases, excluded = collect_cases(_cfg(seg_dataset, seg_run, multifocal="keep"), progress=False)
    assert not excluded and max(c.lesions for c in cases) >= 2


@pytest.fixture
def damaged(seg_dataset: Path, seg_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    ds, run = tmp_path / "ds", tmp_path / "run"
    shutil.copytree(seg_dataset, ds)
    shutil.copytree(seg_run, run)
    return ds, run


def _first(ds: Path, split: str) -> str:
    return next(r["case_id"] for r in pq.read_table(ds / "cases.parquet").to_pylist()
                if r["split"] == split)  # fmt: skip


def test_missing_synthetic_volume_names_case_file_and_command(damaged) -> None:
    ds, run = damaged
    cid = _first(ds, "val")
    shutil.rmtree(run / "synthetic" / "val")
    with pytest.raises(
        StudyInputError,
        match=rf"case {cid} \(split val\): no synthetic phase 1 "
        rf".*splits \['test', 'train'\].*dcectl synthesize {run} --split val",
    ):
        collect_cases(_cfg(ds, run), progress=False)
    # a study whose sets need no synthetic volume does not ask for them
    collect_cases(_cfg(ds, None, scenarios=(3,), sets=("D", "F")), progress=False)


def test_synthetic_sets_need_a_run(damaged) -> None:
    ds, _ = damaged
    with pytest.raises(StudyInputError, match=r"`synthetic` is required: sets \['A', 'B', 'C'\]"):
        collect_cases(_cfg(ds, None, scenarios=(1,)), progress=False)


def test_missing_mask_file_names_it(damaged) -> None:
    ds, run = damaged
    cid = _first(ds, "train")
    (ds / "volumes" / f"{cid}_mask.nii.gz").unlink()
    with pytest.raises(StudyInputError, match=rf"case {cid}: mask volume missing: .*{cid}_mask"):
        collect_cases(_cfg(ds, run), progress=False)


def test_geometry_disagreement_names_both_files(damaged) -> None:
    ds, run = damaged
    cid = _first(ds, "train")
    f = run / "synthetic" / "train" / f"{cid}_0001.nii.gz"
    img = nib.load(f)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, :-1], img.affine), f)
    with pytest.raises(StudyInputError, match=rf"case {cid}: {f} has shape .* the pre-contrast"):
        collect_cases(_cfg(ds, run), progress=False)


def test_too_few_patients_for_the_folds(damaged) -> None:
    ds, run = damaged
    with pytest.raises(
        StudyInputError,
        match=r"usable patients outside split 'test' for 9 folds"
        r".*left out: \d × multifocal",
    ):
        collect_cases(SegmentConfig(dataset=ds, synthetic=run, folds=9), progress=False)


def test_no_test_patient(damaged) -> None:
    ds, run = damaged
    with pytest.raises(StudyInputError, match="no usable patient in test split 'holdout'"):
        collect_cases(_cfg(ds, run, test_split="holdout"), progress=False)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(StudyInputError, match="not a prepared dataset"):
        collect_cases(_cfg(tmp_path, None, scenarios=(3,), sets=("D",)), progress=False)
    with pytest.raises(StudyInputError, match="`dataset` is required"):
        collect_cases(SegmentConfig(), progress=False)


def test_post_phase_the_dataset_lacks(damaged) -> None:
    ds, run = damaged
    with pytest.raises(StudyInputError, match="`post_phase` 3 is not among them"):
        collect_cases(_cfg(ds, run, post_phase=3), progress=False)
    assert json.loads((ds / "manifest.json").read_text())["phases"] == [0, 1, 2]
