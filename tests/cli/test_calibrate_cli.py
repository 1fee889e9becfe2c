"""`dcectl calibrate` and `dcectl conspicuity`: bad input refused before any work, naming it;
finished conspicuity levels read back, not run again."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_conspicuity_reads_finished_levels_back(ray_session, tmp_path: Path) -> None:
    """A level whose folder holds its evaluation and Table 3 is read, not run again (so an
    interrupted experiment resumes level by level): the CNR is measured on its phantom, the
    gains and lesion contrast come from its files, and the table and figure are written."""
    import json

    from dcesynth.data.phantom import PhantomConfig, generate_cohort

    cohort = tmp_path / "cohort"
    pcfg = PhantomConfig(cases=2, matrix=48, slices=6, seed=3, formats=("nifti",))
    generate_cohort(pcfg, cohort, workers=1, progress=False)

    def finished_level(folder: Path, box_ssim: float, kept: float, d_e: float) -> None:
        (folder / "phantom").symlink_to(cohort, target_is_directory=True)
        rep = folder / "runs" / "phase1" / "report"
        rep.mkdir(parents=True)
        row = lambda c, ssim, mae: {"phase": 1, "comparison": c, "ssim": ssim, "mae": mae}  # noqa: E731
        ev = {
            "rows": [
                row("tumour box: synthetic vs real", box_ssim, 20.0),
                row("tumour box: baseline pre vs post", 0.60, 35.0),
            ],
            "lesion_contrast": {"1": {"synthetic_kept": kept, "pre_kept": 0.7}},
        }
        (rep / "evaluation.json").write_text(json.dumps(ev))
        res = folder / "segmentation" / "results"
        res.mkdir(parents=True)
        cells = [{"scenario": 2, "set": s, "mean": 0.3} for s in "ABC"]
        cells += [
            {"scenario": 4, "set": "D", "mean": 0.4},
            {"scenario": 4, "set": "E", "mean": d_e},
        ]
        (res / "table3.json").write_text(json.dumps(cells))

    out, study = tmp_path / "out", tmp_path / "study"
    (out / "low").mkdir(parents=True)
    study.mkdir()
    finished_level(out / "low", 0.65, 0.05, 0.1)
    finished_level(study, 0.70, 0.40, 0.6)
    levels = {
        "preset": str(PRESET),
        "out": str(out),
        "levels": [
            {"name": "low", "phantom": {"tumour_pd": 1.0}},
            {"name": "cal", "calibrated": True, "study": str(study)},
        ],
    }
    cfg = tmp_path / "levels.yaml"
    cfg.write_text(yaml.safe_dump(levels))
    res = CliRunner().invoke(app, ["conspicuity", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "low: finished earlier, read from" in res.output
    rows = {r["level"]: r for r in json.loads((out / "conspicuity.json").read_text())}
    assert rows["low"]["box_ssim_gain"] == pytest.approx(0.05)
    assert rows["cal"]["box_ssim_gain"] == pytest.approx(0.10)
    assert rows["low"]["lesion_kept_synthetic"] == 0.05 and rows["cal"]["lesion_kept_pre"] == 0.7
    assert rows["cal"]["s4_E_minus_D"] == pytest.approx(0.2)
    assert (
        rows["low"]["lesions"] >= 2
        and rows["low"]["cnr_pre_median"] == rows["cal"]["cnr_pre_median"]
    )
    assert (out / "conspicuity.png").stat().st_size > 10_000
    assert not (out / "low" / "dataset").exists()  # nothing was run again
