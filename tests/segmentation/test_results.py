"""Dice, the paired test and Table 3's 14 cells from known per-case Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcesynth.segmentation.config import SegmentConfig
from dcesynth.segmentation.results import (
    claims,
    claims_markdown,
    confusion,
    dice,
    markdown,
    table3,
    wilcoxon_p,
)


def test_confusion_and_dice_known_answers() -> None:
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[0, :2, :2] = 1  # 4 voxels
    pred = np.zeros_like(ref)
    pred[0, :2, 1:3] = 1  # 2 overlap, 2 outside
    assert confusion(pred, ref) == (2, 2, 2)
    assert dice(2, 2, 2) == pytest.approx(0.5)
    assert dice(*confusion(ref, ref)) == 1.0
    assert dice(*confusion(np.zeros_like(ref), ref)) == 0.0  # empty prediction: 0
    assert math.isnan(dice(0, 0, 0))  # both empty: undefined
    with pytest.raises(ValueError, match="shape"):
        confusion(pred[:2], ref)


@pytest.mark.parametrize(
    ("x", "y", "p"),
    [
        ([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], 2 / 32),  # all 5 differences positive: exact 2 × 1/32
        ([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], 1.0),  # no difference
        ([0.3], [0.1], None),  # one pair: no test
        ([1, -2, 3, -4, 5, 6], [0] * 6, 0.4375),  # W+ = 15 of 21: exact two-sided p = 28/64
    ],
)
def test_wilcoxon_known_answers(x, y, p) -> None:
    got = wilcoxon_p(x, y)
    assert got == p if p is None else got == pytest.approx(p)


def _per_case(cfg: SegmentConfig, base: dict[str, float]) -> dict:
    """Per-case Dice of 4 test cases for every prediction: case i scores base + 0.1·i, and
    the counts are built so that each case's Dice is exact."""
    out = {}
    for name, domain in cfg.predictions():
        rows = []
        for i in range(4):
            d = base[name] + (0.1 if domain == "post" else 0.0) + 0.1 * i
            tp = round(d * 1000)  # dice = 2tp / (2tp + fp + fn) with fp + fn = 2000 - 2tp
            fp = fn = 1000 - tp
            rows.append(
                {"case_id": f"c{i}", "dice": dice(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
            )
        out[(name, domain)] = rows
    return out


def test_table3_assembles_the_14_cells() -> None:
    cfg = SegmentConfig()
    base = {"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4, "E": 0.2, "F": 0.1, "G": 0.5}
    per_case = _per_case(cfg, base)
    cells = table3(cfg, per_case, {})
    assert [(c["scenario"], c["set"], c["test"]) for c in cells] == [
        (s, t, f"real {d}") for s, t, d in cfg.cells()
    ]
    by = {(c["scenario"], c["set"]): c for c in cells}
    c = by[(2, "B")]  # set B on real post: Dice 0.3, 0.4, 0.5, 0.6
    assert c["n"] == 4 and c["mean"] == pytest.approx(0.45) and c["median"] == pytest.approx(0.45)
    assert c["sd"] == pytest.approx(np.std([0.3, 0.4, 0.5, 0.6]))
    # global Dice: Σtp = 1800, Σ(fp + fn) = 2 × (4000 − 1800)
    assert c["global_dice"] == pytest.approx(2 * 1800 / (2 * 1800 + 2 * 2200))
    assert c["baseline"] == "A" and c["study_mean"] == 0.663
    # B − A = +0.1 for every case: 4 positive differences, exact two-sided p = 2/16
    assert c["p_vs_baseline"] == pytest.approx(2 / 16)
    assert by[(1, "A")]["p_vs_baseline"] is None  # the baseline itself
    assert by[(3, "D")]["baseline"] == "D" and by[(4, "C")]["baseline"] == "D"
    assert by[(4, "E")]["mean"] == pytest.approx(0.35)
    assert by[(3, "G")]["p_vs_baseline"] == pytest.approx(2 / 16)  # G − D = +0.1 each
    # found = tp / (tp + fn) = each case's Dice here; predicted volume tp + fp = tp + fn
    assert c["found_median"] == pytest.approx(0.45) and c["volume_ratio_median"] == 1.0
    md = markdown(cells, "T")
    assert md.count("\n| ") == 15 and "| 2 | B | real post | 0.450 ± 0.112 |" in md
    assert "| 0.1250 | 0.45 | 1.00 | 0.663 |" in md


def test_table3_says_whether_a_set_misses_or_over_calls() -> None:
    """Found share and volume ratio, known answers: a set that misses half of each lesion, one
    that finds all of it and calls 4× its volume, and a patient without lesion left out."""
    cfg = SegmentConfig(scenarios=(2,), sets=("A", "B", "C"))
    rows = lambda tp, fp, fn: [  # noqa: E731
        {"case_id": f"c{i}", "dice": dice(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
        for i in range(3)
    ]
    per_case = {
        ("A", "post"): rows(50, 0, 50),  # finds half, calls nothing else
        ("B", "post"): [  # all of it and 3× its volume outside; c9 has no lesion: left out
            *rows(100, 300, 0),
            {"case_id": "c9", "dice": 0.0, "tp": 0, "fp": 5, "fn": 0},
        ],
        ("C", "post"): [{"case_id": "c0", "dice": 0.0, "tp": 0, "fp": 0, "fn": 0}],
    }
    by = {c["set"]: c for c in table3(cfg, per_case, {})}
    assert by["A"]["found_median"] == 0.5 and by["A"]["volume_ratio_median"] == 0.5
    assert by["B"]["found_median"] == 1.0 and by["B"]["volume_ratio_median"] == 4.0
    assert math.isnan(by["C"]["found_median"]) and math.isnan(by["C"]["volume_ratio_median"])
    assert "| – | – |" in markdown(list(by.values()), "T")


def test_failed_prediction_makes_its_cells_failed_and_keeps_the_rest() -> None:
    cfg = SegmentConfig(scenarios=(1, 4))
    base = {k: 0.2 for k in "ABCDEFG"}
    per_case = _per_case(cfg, base)
    del per_case[("C", "pre")]
    cells = table3(cfg, per_case, {"C_pre": "RuntimeError: fold 3 ran out of memory"})
    failed = [c for c in cells if "error" in c]
    assert [(c["scenario"], c["set"]) for c in failed] == [(1, "C"), (4, "C")]
    assert all("out of memory" in c["error"] for c in failed)
    assert all("mean" in c for c in cells if "error" not in c) and len(cells) == 6
    assert "failed: RuntimeError: fold 3 ran out of memory" in markdown(cells, "T")


def test_claims_on_the_14_cells_known_answers() -> None:
    """Every non-baseline cell gets the study's direction and this study's: see the fixture's
    means (scenario 2: A 0.35, B 0.45, C 0.55 on post; scenario 4: D 0.55, E 0.35 on pre)."""
    cfg = SegmentConfig()
    base = {"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4, "E": 0.2, "F": 0.1, "G": 0.5}
    rows = {(r["scenario"], r["set"]): r for r in claims(table3(cfg, _per_case(cfg, base), {}))}
    assert len(rows) == 10  # 14 cells less the 4 baselines
    b2 = rows[(2, "B")]  # study 0.663 − 0.484: higher; here +0.1 on each of 4 cases, p 2/16
    assert b2["study_delta"] == pytest.approx(0.179) and b2["claim"] == "higher"
    assert b2["delta"] == pytest.approx(0.1) and b2["found"] == "higher"
    assert b2["verdict"] == "same direction, p ≥ 0.05"
    assert rows[(1, "B")]["claim"] == "similar" and rows[(1, "B")]["verdict"] == "not reproduced"
    assert rows[(3, "E")]["claim"] == "similar" and rows[(3, "E")]["found"] == "lower"
    assert rows[(4, "E")]["claim"] == "higher" and rows[(4, "E")]["delta"] == pytest.approx(-0.2)
    assert rows[(4, "E")]["verdict"] == "not reproduced"


def _cell(scenario: int, name: str, base: str, mean: float | None, p: float | None) -> dict:
    from dcesynth.segmentation.config import STUDY_DICE

    c = {"scenario": scenario, "set": name, "baseline": base}
    c["study_mean"] = STUDY_DICE[(scenario, name)]
    return c | ({} if mean is None else {"mean": mean, "p_vs_baseline": p})


def test_claim_verdicts_reproduced_no_signal_and_not_run() -> None:
    cells = [
        _cell(2, "A", "A", 0.30, None),
        _cell(2, "B", "A", 0.50, 0.01),  # higher, as the study, and the test confirms it
        _cell(2, "C", "A", 0.32, 0.60),  # the study: higher; here within 0.05: similar
        _cell(1, "A", "A", 0.0, None),
        _cell(1, "B", "A", 0.0, 1.0),  # both Dice 0 everywhere: nothing learnt
        _cell(3, "D", "D", 0.7, None),
        _cell(3, "E", "D", None, None),  # failed cell
    ]
    got = {(r["scenario"], r["set"]): r["verdict"] for r in claims(cells)}
    assert got == {
        (2, "B"): "reproduced",
        (2, "C"): "not reproduced",
        (1, "B"): "no signal",
        (3, "E"): "not run",
    }
    md = claims_markdown(claims(cells))
    assert "| 2 | B vs A | +0.179, higher | +0.200, higher | 0.0100 | reproduced |" in md
    assert "| 3 | E vs D | +0.007, similar | – | – | not run |" in md
