"""`dcectl study`: the shipped preset validates section by section; a bad key names its section."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.cli.study import StudyPreset, _configs
from dcesynth.config import build_config

PRESET = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "study_phantom.yaml"


def test_shipped_preset_validates_every_stage() -> None:
    cfg = _configs(build_config(StudyPreset, PRESET))
    assert cfg["phase1"].phases == (1,) and cfg["joint"].phases == (1, 2, 3)
    assert cfg["joint"].epochs == cfg["phase1"].epochs  # the YAML anchor carried the rest
    assert (
        cfg["segmentation"].cells()[0] == (1, "A", "pre") and len(cfg["segmentation"].cells()) == 14
    )
    assert cfg["segmentation"].synthetic == cfg["phase1"].runs_dir / "phase1"


def test_bad_key_names_its_section(tmp_path: Path) -> None:
    data = yaml.safe_load(PRESET.read_text())
    data["joint"] = {**data["phase1"], "epoks": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["study", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "section `joint`" in res.output and "epoks" in res.output and "epochs" in res.output
    assert not (tmp_path / "out").exists()  # nothing ran
