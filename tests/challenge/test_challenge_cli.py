"""`dcectl challenge prepare` and `dcectl challenge evaluate` on a tiny phantom: the summary,
identity predictions with a known MSE, error rows for a missing or wrong-shape prediction, and
every metric not computed listed with its reason."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from dcesynth.challenge.models import parse_trusted, sha256
from dcesynth.cli.app import app
from dcesynth.data.phantom import PhantomConfig, generate_cohort

PHANTOM = PhantomConfig(cases=3, matrix=64, slices=16, seed=3, formats=("nifti",))


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)


def write(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.asarray(array, np.float32)), str(path))


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom's nifti/ folder prepared by the CLI (asserts its summary)."""
    root = tmp_path_factory.mktemp("challenge")
    generate_cohort(PHANTOM, root / "cohort", workers=1, progress=False)
    res = CliRunner().invoke(
        app, ["challenge", "prepare", str(root / "cohort" / "nifti"), "--out", str(root / "task")]
    )
    assert res.exit_code == 0, res.output
    assert "3 case(s) prepared, 0 skipped" in res.output and " s" in res.output
    assert "107.412" in res.output  # the official z-score constants by default
    return root / "task"


def test_prepare_writes_the_official_layout(task: Path) -> None:
    manifest = json.loads((task / "manifest.json").read_text())
    ids = [c["patient_id"] for c in manifest["cases"]]
    for sub in ("input", "ground_truth", "mask"):
        assert sorted(p.stem for p in (task / "mha" / sub).glob("*.mha")) == sorted(ids)
    assert (task / "splits.csv").is_file()


def test_prepare_refuses_a_bad_zscore_and_a_folder_without_images(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["challenge", "prepare", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "images/" in res.output
    res = CliRunner().invoke(
        app, ["challenge", "prepare", str(tmp_path), "--out", str(tmp_path / "o"), "--zscore", "x"]
    )
    assert res.exit_code == 2 and "challenge or train" in res.output


def evaluate(task: Path, preds: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        app,
        ["challenge", "evaluate", "--predictions", str(preds), "--ground-truth",
         str(task / "mha" / "ground_truth"), "--masks", str(task / "mha" / "mask"),
         "--out", str(out), "--lpips-weights", "none", *extra],
    )  # fmt: skip


def test_identity_predictions_score_their_known_mse(task: Path, tmp_path: Path) -> None:
    """Prediction = the pre-contrast input (the organisers' baseline): MSE = mean (pre − gt)²."""
    preds = task / "mha" / "input"
    out = tmp_path / "metrics.json"
    res = evaluate(task, preds, out)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["n_cases"] == 3 and doc["n_errors"] == 0
    for cid, row in doc["case"].items():
        pre, gt = read(preds / f"{cid}.mha"), read(task / "mha" / "ground_truth" / f"{cid}.mha")
        assert row["mse"] == pytest.approx(float(np.mean((pre - gt) ** 2)), rel=1e-12)
        assert -1 <= row["ssim_tumour"] <= 1
    mses = [r["mse"] for r in doc["case"].values()]
    assert doc["aggregates"]["mse"] == {
        "mean": pytest.approx(np.mean(mses)),
        "std": pytest.approx(np.std(mses)),
        "n": 3,
    }
    missing = {n["metric"]: n["reason"] for n in doc["not_computed"]}
    assert "--lpips-weights none" in missing["lpips"]
    assert "--models" in missing["dice"] and "--models" in missing["hausdorff_95"]
    assert "--models" in missing["auroc_contrast"] and "--models" in missing["auroc_tumor_roi"]
    # FRD on 64² phantom tumours: either a number over 3 cases or a stated reason, never silent
    assert ("frd" in doc["aggregates"] and doc["aggregates"]["frd"]["n"] == 3) or "frd" in missing
    assert "not computed: lpips" in res.output and "3 of 3" in res.output


def test_missing_and_wrong_shape_predictions_are_error_rows(task: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    shutil.copytree(task / "mha" / "input", preds)
    cases = sorted(p.stem for p in preds.glob("*.mha"))
    (preds / f"{cases[0]}.mha").unlink()
    write(np.zeros((5, 7)), preds / f"{cases[1]}.mha")
    out = tmp_path / "metrics.json"
    res = evaluate(task, preds, out)
    assert res.exit_code == 1, res.output  # metrics written, but some cases could not be scored
    doc = json.loads(out.read_text())
    assert doc["n_cases"] == 3 and doc["n_errors"] == 2
    assert "no prediction" in doc["case"][cases[0]]["error"]
    assert "shape (5, 7)" in doc["case"][cases[1]]["error"]
    assert doc["aggregates"]["mse"]["n"] == 1  # the aggregate says whom it covers
    assert "frd" in {n["metric"] for n in doc["not_computed"]}  # 1 scored case: < 2
    assert f"error: {cases[0]}" in res.output


def test_pickles_are_loaded_only_when_vouched_for(task: Path, tmp_path: Path) -> None:
    env_before = set(os.environ)
    models = tmp_path / "models"
    pkl = models / "classification" / "contrast_classifier.pkl"
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes(b"not loaded")
    ckpt = models / "segmentation" / "fold_0" / "checkpoint_final.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"never unpickled")
    out = tmp_path / "metrics.json"
    res = evaluate(task, task / "mha" / "input", out, "--models", str(models))
    assert res.exit_code == 0, res.output
    why = {n["metric"]: n["reason"] for n in json.loads(out.read_text())["not_computed"]}
    assert f"--trust-pickles {sha256(pkl)}" in why["auroc_contrast"]
    assert f"--trust-pickles {sha256(ckpt)}" in why["dice"]
    assert "not found" in why["auroc_tumor_roi"]
    # vouched for: the checkpoint is handed to nnU-Net, whose failure is the stated reason
    res = evaluate(task, task / "mha" / "input", out, "--models", str(models),
                   "--trust-pickles", f"sha256:{sha256(ckpt)}")  # fmt: skip
    why = {n["metric"]: n["reason"] for n in json.loads(out.read_text())["not_computed"]}
    assert "trust-pickles" not in why["dice"] and why["dice"]
    # nnU-Net's folders were set only around its import: nothing leaks into this process
    assert not {"nnUNet_raw", "nnUNet_results"} & set(os.environ) - env_before


def test_trust_values_must_be_checksums() -> None:
    assert parse_trusted(["A" * 64, "sha256=" + "b" * 64]) == {"a" * 64, "b" * 64}
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_trusted(["abc"])
