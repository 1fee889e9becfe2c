"""`dcectl export`, `dcectl model info`, `dcectl predict` and `dcectl bench predict` from the
command line: what they print and their exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app


@pytest.fixture(scope="module")
def model(hand_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli_model") / "m.dcem"
    res = CliRunner().invoke(app, ["export", str(hand_run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "epoch 1, phases [1, 2, 3]" in res.output
    return out


def test_model_info_prints_the_description(model: Path) -> None:
    res = CliRunner().invoke(app, ["model", "info", str(model)])
    assert res.exit_code == 0, res.output
    for text in (
        "phases generated  1, 2, 3",
        "normalisation     minmax per volume",
        "input slice       32²",
        "selection         epoch 1 by SAMe",
        "checksums         verified",
    ):
        assert text in res.output, res.output


def test_model_info_refuses_a_damaged_file(model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcem"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    res = CliRunner().invoke(app, ["model", "info", str(bad)])
    assert res.exit_code == 2 and "do not match their checksum" in res.output


def test_export_names_a_missing_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "not a run directory" in res.output


def test_predict_exit_status_says_some_failed(
    model: Path, phantom_source: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    shutil.copytree(phantom_source / "dicom" / "Phantom_MRI_004", src / "Phantom_MRI_004")
    post = next((phantom_source / "dicom" / "Phantom_MRI_003").glob("*/*1st pass*"))
    shutil.copytree(post, src / "post_only")  # a post-contrast series alone: refused
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["predict", str(model), str(src), "--out", str(out), "--phases", "2", "--no-dicom"]
    )
    assert res.exit_code == 1, res.output
    assert "Phantom_MRI_004 →" in res.output and "failed: Phantom_MRI_003" in res.output
    assert "1 patient(s) written, 1 failed" in res.output
    assert sorted(p.name for p in (out / "Phantom_MRI_004").iterdir()) == [
        "post_0002.nii.gz",
        "sub_0002.nii.gz",
    ]
    bad = CliRunner().invoke(
        app, ["predict", str(model), str(src), "--out", str(out), "--phases", "x"]
    )
    assert bad.exit_code == 2 and "--phases 'x'" in bad.output


def test_bench_predict_prints_both_ways(ray_session) -> None:
    size = ["--patients", "3", "--matrix", "32", "--slices", "4", "--device", "cpu"]
    res = CliRunner().invoke(app, ["bench", "predict", *size])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # rich wraps lines at the terminal's width
    assert "Ray Data (dcectl predict)" in out and "plain PyTorch loop" in out
    assert "3 phantom patients 32² × 4" in out and "×" in out
    # the one-patient latency: a fresh `dcectl predict`, wall and generator time both printed
    assert "one patient (32² × 4" in out and "wall − generator" in out
