"""`dcectl phantom` and `dcectl bench` as a user calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app

runner = CliRunner()
SMALL = ["--cases", "2", "--matrix", "32", "--slices", "12", "--workers", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_phantom_with_preview(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    res = runner.invoke(
        app, ["phantom", "--out", str(out), *SMALL, "--preview", "--formats", "nifti"]
    )
    assert res.exit_code == 0, res.output
    assert "2 cases" in res.output
    assert json.loads((out / "cohort.json").read_text())["cases"] == [
        "Phantom_MRI_001",
        "Phantom_MRI_002",
    ]
    assert not (out / "dicom").exists()  # --formats nifti only
    pngs = sorted((out / "preview").glob("*.png"))
    assert [p.name for p in pngs] == [
        "Phantom_MRI_001_kinetics.png",
        "Phantom_MRI_001_montage.png",
        "Phantom_MRI_002_kinetics.png",
        "Phantom_MRI_002_montage.png",
    ]
    assert all(p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000 for p in pngs)
    # the same command again: nothing to do, same result
    res2 = runner.invoke(app, ["phantom", "--out", str(out), *SMALL, "--formats", "nifti"])
    assert res2.exit_code == 0, res2.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cases", "0"], ["--cases", "greater than or equal to 1"]),
        (["--flip-angle", "-1"], ["--flip-angle", "greater than 0"]),
        (["--agent", "gadoxx"], ["--agent", "gadobutrol", "gadoterate"]),
        (["--post-phases", "5"], ["--post-phases", "less than or equal to 4"]),
        (["--snr", "0"], ["--snr"]),
        (["--formats", "png"], ["--formats", "dicom", "nifti"]),
        (["--workers", "0"], ["--workers"]),
    ],
)
def test_phantom_rejects_bad_options_before_work(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    out = tmp_path / "never"
    res = runner.invoke(app, ["phantom", "--out", str(out), *args])
    assert res.exit_code == 2
    for text in expected:
        assert text in res.output
    assert not out.exists()  # failed before any work


def test_phantom_refuses_other_cohort_and_foreign_dir(tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert (
        runner.invoke(app, ["phantom", "--out", str(out), *SMALL, "--formats", "nifti"]).exit_code
        == 0
    )
    res = runner.invoke(app, ["phantom", "--out", str(out), *SMALL, "--seed", "7"])
    assert res.exit_code == 2 and "--out" in res.output and "seed" in res.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["phantom", "--out", str(foreign), *SMALL])
    assert res.exit_code == 2 and "no phantom cohort" in res.output


def test_phantom_yaml_config_and_override(tmp_path: Path) -> None:
    cfg = tmp_path / "phantom.yaml"
    cfg.write_text("cases: 1\nmatrix: 32\nslices: 12\nseed: 3\nformats: [nifti]\n")
    out = tmp_path / "c"
    res = runner.invoke(app, ["phantom", "--out", str(out), "--config", str(cfg), "--seed", "5"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "phantom.json").read_text())["config"]
    assert saved["seed"] == 5 and saved["matrix"] == 32  # flag wins over YAML
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases: 1\nmatirx: 32\n")
    res = runner.invoke(app, ["phantom", "--out", str(tmp_path / "d"), "--config", str(bad)])
    assert res.exit_code == 2 and str(bad) in res.output and "matirx" in res.output
    assert "matrix" in res.output  # the allowed keys are listed


def test_bench_rejects_bad_size() -> None:
    res = runner.invoke(app, ["bench", "phantom", "--size", "24x64"])
    assert res.exit_code == 2 and "CASESxMATRIXxSLICES" in res.output
