"""`dcectl calibrate` and `dcectl conspicuity` refuse bad input before any work, naming it."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from dcesynth.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "jobs" / "configs" / "study_phantom.yaml"


def test_calibrate_refuses_a_bad_candidate(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["calibrate", str(PRESET), "--pd", "1.0", "--pd", "0", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "--pd" in res.output and "(0, 3]" in res.output and "[0.0]" in res.output
    assert not (tmp_path / "o").exists()


def test_calibrate_refuses_a_bad_epoch_budget(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["calibrate", str(PRESET), "--epochs", "0", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "--epochs: must be ≥ 1, got 0" in res.output
    assert not (tmp_path / "o").exists()


def test_calibrate_needs_nifti(tmp_path: Path) -> None:
    data = yaml.safe_load(PRESET.read_text())
    data["phantom"]["formats"] = ["dicom"]
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["calibrate", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "formats must include nifti" in res.output


def test_conspicuity_names_a_bad_level_key(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "jobs" / "configs" / "conspicuity.yaml").read_text())
    data["levels"][0]["phantom"] = {"tumour_pdd": 1.2}
    bad = tmp_path / "levels.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["conspicuity", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "tumour_pdd" in res.output
    assert not (tmp_path / "o").exists()
