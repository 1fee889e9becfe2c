"""The conspicuity experiment's gains, table, figure and config checks (known answers)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from dcesynth.segmentation import conspicuity as K


def test_box_gains_from_table2_rows() -> None:
    def row(phase: int, comparison: str, ssim: float, mae: float) -> dict:
        """A Table 2 row as the evaluation writes it: {metric: {mean, std, n}}."""
        return {
            "phase": phase,
            "comparison": comparison,
            "ssim": {"mean": ssim, "std": 0.1},
            "mae": {"mean": mae, "std": 1.0},
        }

    rows = [
        row(1, "tumour box: synthetic vs real", 0.70, 20.0),
        row(1, "tumour box: baseline pre vs post", 0.60, 35.0),
        row(2, "tumour box: synthetic vs real", 0.1, 99.0),
    ]
    g = K.box_gains(rows)
    assert g == {"box_ssim_gain": pytest.approx(0.10), "box_mae_gain": pytest.approx(15.0)}
    assert all(math.isnan(v) for v in K.box_gains(rows[:1]).values())  # no baseline row


def test_dice_gains_are_set_minus_its_scenarios_baseline() -> None:
    cells = [
        {"scenario": 2, "set": "A", "mean": 0.40},
        {"scenario": 2, "set": "B", "mean": 0.55},
        {"scenario": 2, "set": "C", "mean": 0.35},
        {"scenario": 4, "set": "D", "mean": 0.10},
        {"scenario": 4, "set": "E", "mean": 0.30},
        {"scenario": 4, "set": "C", "mean": None},  # a failed cell
    ]
    g = K.dice_gains(cells)
    assert g["s2_B_minus_A"] == pytest.approx(0.15)
    assert g["s2_C_minus_A"] == pytest.approx(-0.05)
    assert g["s4_E_minus_D"] == pytest.approx(0.20)
    assert math.isnan(g["s4_C_minus_D"])


def _row(level: str, cnr: float, calibrated: bool = False) -> dict:
    return {
        "level": level,
        "calibrated": calibrated,
        "cnr_pre_median": cnr,
        "cnr_post1_median": 50.0,
        "box_ssim_gain": 0.01 * cnr,
        "box_mae_gain": cnr,
        "lesion_kept_synthetic": 0.4,
        "lesion_kept_pre": math.nan,
        "s2_B_minus_A": 0.1,
        "s2_C_minus_A": -0.1,
        "s4_E_minus_D": 0.2,
        "s4_C_minus_D": math.nan,
    }


def test_write_table_json_and_figure(tmp_path) -> None:
    """Rows come sorted by measured CNR; the calibrated level is named; the PNG exists."""
    results = [_row("visible", 12.0), _row("invisible", 0.5), _row("calibrated", 4.0, True)]
    md = K.write(tmp_path, results, 600.0).read_text()
    order = [md.index(n) for n in ("| invisible", "| **calibrated** |", "| visible")]
    assert order == sorted(order)
    other = [_row("real-world", 4.0, True)]  # a calibrated level by another name says so
    assert "| **real-world** (calibrated) |" in K.markdown(other, 1.0)
    assert "+0.100" in md and "–" in md  # a NaN gain shows as a dash
    assert "| 0.40 | – | +0.100 |" in md  # lesion kept: synthetic, pre (NaN), then S2 B−A
    assert json.loads((tmp_path / "conspicuity.json").read_text())[0]["level"] == "visible"
    png = tmp_path / "conspicuity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "levels",
    [
        [{"name": "a"}],  # one level: nothing to compare
        [{"name": "a"}, {"name": "a"}],  # repeated name
        [{"name": "a b"}, {"name": "c"}],  # not a folder name
        [{"name": "a", "phantom": {}, "colour": 1}, {"name": "b"}],  # unknown key
    ],
)
def test_bad_levels_are_refused(levels: list) -> None:
    with pytest.raises(ValidationError):
        K.ConspicuityConfig.model_validate({"levels": levels})


def test_the_shipped_levels_file_is_valid() -> None:
    """jobs/configs/conspicuity.yaml: three levels, one calibrated, each a valid phantom."""
    from pathlib import Path

    import yaml

    from dcesynth.data.phantom import PhantomConfig

    root = Path(__file__).resolve().parents[2]
    cfg = K.ConspicuityConfig.model_validate(
        yaml.safe_load((root / "jobs/configs/conspicuity.yaml").read_text())
    )
    assert len(cfg.levels) >= 3 and sum(lv.calibrated for lv in cfg.levels) == 1
    for lv in cfg.levels:
        PhantomConfig.model_validate(lv.phantom)


def test_a_level_from_a_finished_study(tmp_path) -> None:
    """A finished study's phase-1 rows and Table 3 cells are read back; a missing file is named."""
    ev = tmp_path / "runs" / "phase1" / "report"
    ev.mkdir(parents=True)
    (ev / "evaluation.json").write_text(json.dumps({"rows": [{"phase": 1}]}))
    assert not K.finished(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"table3\.json"):
        K.from_study(tmp_path)
    res = tmp_path / "segmentation" / "results"
    res.mkdir(parents=True)
    (res / "table3.json").write_text(json.dumps([{"scenario": 2, "set": "A", "mean": 0.4}]))
    assert K.finished(tmp_path)  # a level run earlier is read back, not run again
    evaluation, cells = K.from_study(tmp_path)
    assert evaluation["rows"] == [{"phase": 1}] and cells[0]["mean"] == 0.4


def test_lesion_kept_from_an_evaluation() -> None:
    """The phase's kept shares as the evaluation writes them; NaN where it has none."""
    ev = {"lesion_contrast": {"1": {"synthetic_kept": 0.40, "pre_kept": 0.70, "slices": 52}}}
    assert K.lesion_kept(ev) == {"lesion_kept_synthetic": 0.40, "lesion_kept_pre": 0.70}
    for missing in ({}, {"lesion_contrast": {}}, {"lesion_contrast": {"2": {}}}):
        assert all(math.isnan(v) for v in K.lesion_kept(missing).values())
