"""`dcectl study`: the shipped preset validates section by section; a bad key names its section."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    assert cfg["flow"].model.family == "rectified_flow" and cfg["flow"].name == "flow"


def test_a_preset_without_a_flow_section_skips_it(tmp_path: Path) -> None:
    data = yaml.safe_load(PRESET.read_text())
    del data["flow"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    assert "flow" not in _configs(build_config(StudyPreset, path))


def _run(root: Path, name: str, family: str | None, rows: list[dict], cost: dict | None) -> None:
    import json

    d = root / name
    (d / "report").mkdir(parents=True)
    (d / "synthetic" / "test").mkdir(parents=True)
    model = {"family": family} if family else {"ngf": 8}  # old runs: no family key
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    (d / "report" / "evaluation.json").write_text(json.dumps({"rows": rows}))
    (d / "synthetic" / "test" / "synthesis.json").write_text(
        json.dumps({"sampling": cost} if cost else {})
    )


def test_families_table_lists_each_run_its_cost_and_the_baseline(tmp_path: Path) -> None:
    from dcesynth.cli.study import families_table

    def row(comparison: str, phase: int, mae: float, ssim: float, psnr: float | None = None):
        r = {"comparison": comparison, "phase": phase, "mae": {"mean": mae},
             "ssim": {"mean": ssim}}  # fmt: skip
        return r | ({"psnr": {"mean": psnr}} if psnr is not None else {})

    gan = [row("synthetic vs real", 1, 9.5, 0.71, 20.5), row("synthetic vs real", 2, 1, 1, 1),
           row("tumour box: synthetic vs real", 1, 21.0, 0.62),
           row("baseline: real pre vs real post", 1, 15.8, 0.58, 17.9),
           row("tumour box: baseline pre vs post", 1, 47.0, 0.63)]  # fmt: skip
    flow = [row("synthetic vs real", 1, 8.25, 0.75, 22.0)]
    _run(tmp_path, "phase1", None, gan, {"nfe_per_slice": 1, "s_per_slice": 0.0123})
    _run(tmp_path, "flow", "rectified_flow", flow, None)
    lines = families_table(tmp_path, ["phase1", "flow"]).splitlines()
    assert lines[2] == "| phase1 | pix2pixhd | 1 | 0.012 | 9.5 | 0.71 | 20.5 | 21 | 0.62 |"
    assert lines[3] == "| flow | rectified_flow | – | – | 8.25 | 0.75 | 22 | – | – |"
    base = "| copy pre-contrast (baseline) | – | 0 | – | 15.8 | 0.58 | 17.9 | 47 | 0.63 |"
    assert lines[4] == base


def test_bad_key_names_its_section(tmp_path: Path) -> None:
    data = yaml.safe_load(PRESET.read_text())
    data["joint"] = {**data["phase1"], "epoks": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["study", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "section `joint`" in res.output and "epoks" in res.output and "epochs" in res.output
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_run_stopped_before_its_first_checkpoint_is_continued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier invocation that died before its first checkpoint left the run folder (its
    config.yaml): the study must resume into it, not stop with "exists" as a fresh run would."""
    from dcesynth.cli import study
    from dcesynth.training import run as run_module

    cfg = _configs(build_config(StudyPreset, PRESET))["phase1"].model_copy(
        update={"runs_dir": tmp_path}
    )
    calls: list[bool] = []
    monkeypatch.setattr(run_module, "train", lambda c, resume=False, **kw: calls.append(resume))
    study._train(cfg, lambda msg: None)  # a fresh study: no folder yet
    (tmp_path / cfg.name).mkdir()
    study._train(cfg, lambda msg: None)  # an empty folder (created, nothing written): fresh
    (tmp_path / cfg.name / "config.yaml").write_text("epochs: 20\n")
    study._train(cfg, lambda msg: None)  # died before epoch 1's checkpoint: resumed
    assert calls == [False, False, True]


def test_report_before_segmentation_says_table3_is_pending(tmp_path: Path) -> None:
    """The report written before the segmentation stage: every run's section, Table 3 pending;
    the final one holds Table 3 and no pending line."""
    from types import SimpleNamespace

    from dcesynth.cli.study import _report

    for name in ("phase1", "joint"):
        (tmp_path / "runs" / name / "report").mkdir(parents=True)
        (tmp_path / "runs" / name / "report" / "report.md").write_text(
            f"# Evaluation\n![m](montage_{name}.png)\n"
        )
    md = _report(tmp_path, None, {"phase1": 60.0}, 90.0).read_text()
    assert "Not run yet" in md and "Wall time 1.5 min" in md and "phase1 1.0 min" in md
    assert "](runs/joint/report/montage_joint.png)" in md and "Second generator" not in md
    (tmp_path / "segmentation" / "results").mkdir(parents=True)
    (tmp_path / "segmentation" / "results" / "table3.md").write_text("| cell | Dice |\n")
    md = _report(tmp_path, SimpleNamespace(path=tmp_path / "segmentation"), {}, 90.0).read_text()
    assert "| cell | Dice |" in md and "Not run yet" not in md
