"""SAMe (dcesynth.evaluation.same): population scaling against hand-computed answers, its edge
cases, anchored SAMe, and EvalConfig's checks of the metrics SAMe averages."""

from __future__ import annotations

import math

import pytest

from dcesynth.evaluation import same as S
from dcesynth.evaluation.config import NO_WEIGHTS, EvalConfig

METRICS = ("mae", "mse", "ssim")
TABLE = {
    "ep10": {"mae": 10.0, "mse": 200.0, "ssim": 0.70},
    "ep20": {"mae": 6.0, "mse": 120.0, "ssim": 0.80},
    "ep30": {"mae": 8.0, "mse": 100.0, "ssim": 0.85},
}
# mae:  min 6,   max 10,   span 4    → ep10 (10−6)/4 = 1,     ep20 0,             ep30 (8−6)/4 = 0.5
# mse:  min 100, max 200,  span 100  → ep10 1,                ep20 20/100 = 0.2,  ep30 0
# ssim: min .70, max .85,  span .15  → raw ep10 0, ep20 .10/.15 = 2/3, ep30 1;
#       higher is better, flipped 1 − raw → ep10 1,           ep20 1/3,           ep30 0
EXPECTED_SCALED = {
    "ep10": {"mae": 1.0, "mse": 1.0, "ssim": 1.0},
    "ep20": {"mae": 0.0, "mse": 0.2, "ssim": 1 / 3},
    "ep30": {"mae": 0.5, "mse": 0.0, "ssim": 0.0},
}
# SAMe = mean: ep10 3/3 = 1; ep20 (0 + 0.2 + 1/3)/3 = 0.5333…/3 = 0.17778; ep30 0.5/3 = 0.16667
EXPECTED_SAME = {"ep10": 1.0, "ep20": (0.2 + 1 / 3) / 3, "ep30": 0.5 / 3}


def assert_nested_close(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for k, row in expected.items():
        assert list(got[k]) == list(row)
        for m, v in row.items():
            assert got[k][m] == pytest.approx(v, abs=1e-12), (k, m)


# --- population SAMe ----------------------------------------------------------------------


def test_scaled_hand_computed() -> None:
    assert_nested_close(S.scaled(TABLE, METRICS), EXPECTED_SCALED)


def test_population_same_hand_computed_and_select_picks_minimum() -> None:
    same = S.population_same(TABLE, METRICS)
    assert list(same) == list(TABLE)
    for k, v in EXPECTED_SAME.items():
        assert same[k] == pytest.approx(v, abs=1e-12)
    assert S.select(same) == "ep30"  # 0.1667 < 0.1778 < 1


def test_metric_order_does_not_matter() -> None:
    a = S.population_same(TABLE, ("ssim", "mae", "mse"))
    b = S.population_same(TABLE, METRICS)
    assert a == pytest.approx(b)


@pytest.mark.parametrize("metric", ["ssim", "ms_ssim", "psnr"])
def test_higher_is_better_is_flipped(metric: str) -> None:
    table = {"a": {metric: 0.2}, "b": {metric: 0.9}, "c": {metric: 0.55}}
    sc = S.scaled(table, (metric,))
    # best (0.9) → 0, worst (0.2) → 1, midway → 0.5
    assert [sc[k][metric] for k in "abc"] == pytest.approx([1.0, 0.0, 0.5])
    assert S.select(S.population_same(table, (metric,))) == "b"


@pytest.mark.parametrize("metric", ["mae", "mse", "fid_img", "fid_rad", "lpips"])
def test_lower_is_better_is_not_flipped(metric: str) -> None:
    table = {"a": {metric: 0.2}, "b": {metric: 0.9}, "c": {metric: 0.55}}
    sc = S.scaled(table, (metric,))
    assert [sc[k][metric] for k in "abc"] == pytest.approx([0.0, 1.0, 0.5])
    assert S.select(S.population_same(table, (metric,))) == "a"


def test_checkpoint_best_in_ssim_gets_zero() -> None:
    sc = S.scaled(TABLE, METRICS)
    best = max(TABLE, key=lambda k: TABLE[k]["ssim"])
    assert best == "ep30" and sc[best]["ssim"] == 0.0


def test_one_checkpoint_has_same_zero() -> None:
    table = {"only": {"mae": 7.0, "mse": 50.0, "ssim": 0.4}}
    assert S.scaled(table, METRICS) == {"only": {"mae": 0.0, "mse": 0.0, "ssim": 0.0}}
    assert S.population_same(table, METRICS) == {"only": 0.0}
    assert S.select(S.population_same(table, METRICS)) == "only"


@pytest.mark.parametrize("metric", ["mae", "ssim"])
def test_constant_metric_scales_to_zero_for_all(metric: str) -> None:
    table = {k: {**row, metric: 0.5} for k, row in TABLE.items()}
    sc = S.scaled(table, METRICS)
    assert all(sc[k][metric] == 0.0 for k in table)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None], ids=str)
def test_non_finite_or_missing_metric(bad: float | None) -> None:
    table = {k: dict(row) for k, row in TABLE.items()}
    if bad is None:
        del table["ep30"]["mae"]  # missing
    else:
        table["ep30"]["mae"] = bad
    sc = S.scaled(table, METRICS)
    same = S.population_same(table, METRICS)
    assert math.isnan(sc["ep30"]["mae"]) and math.isnan(same["ep30"])
    # mae of the others scaled by their own min (6) and max (10): ep10 1, ep20 0
    assert sc["ep10"]["mae"] == 1.0 and sc["ep20"]["mae"] == 0.0
    # the other metrics still span all three
    assert sc["ep30"]["mse"] == 0.0 and sc["ep30"]["ssim"] == 0.0
    # ep20: (0 + 0.2 + 1/3) / 3 — ep30 (otherwise the best) is never selected
    assert same["ep20"] == pytest.approx((0.2 + 1 / 3) / 3)
    assert S.select(same) == "ep20"


def test_nan_does_not_widen_the_range() -> None:
    """Only finite values set min and max: with one finite mae left, mae is constant (0)."""
    table = {"a": {"mae": math.nan}, "b": {"mae": 3.0}, "c": {"mae": math.inf}}
    sc = S.scaled(table, ("mae",))
    assert sc["b"]["mae"] == 0.0
    assert math.isnan(sc["a"]["mae"]) and math.isnan(sc["c"]["mae"])
    assert S.select(S.population_same(table, ("mae",))) == "b"


@pytest.mark.parametrize(
    "same",
    [{}, {"a": math.nan}, {"a": math.nan, "b": math.inf, "c": -math.inf}],
    ids=["empty", "one-nan", "all-non-finite"],
)
def test_select_without_finite_same_raises(same: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="no checkpoint has a finite SAMe"):
        S.select(same)


def test_population_same_all_nan_then_select_raises() -> None:
    table = {"a": {"mae": math.nan}, "b": {"mae": math.nan}}
    same = S.population_same(table, ("mae",))
    assert all(math.isnan(v) for v in same.values())
    with pytest.raises(ValueError, match="finite"):
        S.select(same)


@pytest.mark.parametrize(
    ("same", "expected"),
    [
        ({"z": 0.1, "a": 0.1}, "z"),  # insertion order, not name order
        ({"ep5": 0.3, "ep1": 0.1, "ep9": 0.1, "ep2": 0.1}, "ep1"),
        ({"x": math.nan, "y": 0.0, "w": 0.0}, "y"),
    ],
)
def test_select_ties_go_to_the_earlier_checkpoint(same: dict[str, float], expected: str) -> None:
    assert S.select(same) == expected


def test_identical_checkpoints_tie_to_the_first() -> None:
    table = {"late": dict(TABLE["ep30"]), "early": dict(TABLE["ep30"]), "bad": TABLE["ep10"]}
    same = S.population_same(table, METRICS)
    assert same["late"] == same["early"] == 0.0
    assert S.select(same) == "late"


@pytest.mark.parametrize("fn", [S.scaled, S.population_same])
@pytest.mark.parametrize("metrics", [("mae", "dice"), ("SSIM",), ("fid",)])
def test_unknown_metric_lists_valid_ones(fn, metrics: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="unknown SAMe metrics") as e:
        fn(TABLE, metrics)
    assert all(repr(m) in str(e.value) for m in sorted(S.KNOWN))


@pytest.mark.parametrize("fn", [S.scaled, S.population_same])
@pytest.mark.parametrize("metrics", [(), []])
def test_empty_metric_list_raises(fn, metrics) -> None:
    with pytest.raises(ValueError, match="at least one metric"):
        fn(TABLE, metrics)


# --- anchored SAMe ------------------------------------------------------------------------

BASELINE = {"mae": 20.0, "mse": 100.0, "ssim": 0.6, "ms_ssim": 0.5, "fid_img": 40.0}


@pytest.mark.parametrize(
    "metrics", [("mae",), ("ssim",), ("ms_ssim",), ("fid_img",), ("ssim", "mae", "mse")]
)
def test_anchored_value_equal_to_baseline_is_one(metrics: tuple[str, ...]) -> None:
    assert S.anchored_same(BASELINE, BASELINE, metrics) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "metrics", [("mae",), ("ssim",), ("ms_ssim",), ("fid_img",), ("ssim", "mae", "mse")]
)
def test_anchored_ideal_values_give_zero(metrics: tuple[str, ...]) -> None:
    ideal = {m: S.IDEAL[m] for m in metrics}
    assert S.anchored_same(ideal, BASELINE, metrics) == 0.0


def test_anchored_hand_computed_mix() -> None:
    values = {"mae": 5.0, "ssim": 0.9, "mse": 50.0}
    # mae (5 − 0)/(20 − 0) = 0.25; ssim (0.9 − 1)/(0.6 − 1) = 0.25; mse 50/100 = 0.5
    assert S.anchored_same(values, BASELINE, ("mae",)) == pytest.approx(0.25)
    assert S.anchored_same(values, BASELINE, ("ssim",)) == pytest.approx(0.25)
    assert S.anchored_same(values, BASELINE) == pytest.approx((0.25 + 0.25 + 0.5) / 3)


def test_anchored_is_not_clipped() -> None:
    # worse than the baseline: mae 30 vs 20 → 1.5; ssim 0.2 vs 0.6 → (−0.8)/(−0.4) = 2
    values = {"mae": 30.0, "ssim": 0.2}
    assert S.anchored_same(values, BASELINE, ("mae", "ssim")) == pytest.approx(1.75)


def test_anchored_psnr_has_no_ideal() -> None:
    v = {"psnr": 30.0, "mae": 5.0}
    with pytest.raises(ValueError, match="no finite ideal"):
        S.anchored_same(v, {"psnr": 20.0, "mae": 20.0}, ("mae", "psnr"))


@pytest.mark.parametrize(
    ("values", "baseline"),
    [({"mae": 5.0}, BASELINE), (BASELINE, {"mae": 20.0}), ({"mae": 5.0}, {"mae": 20.0})],
    ids=["values", "baseline", "both"],
)
def test_anchored_missing_metric(values: dict, baseline: dict) -> None:
    with pytest.raises(ValueError, match="'ssim' missing"):
        S.anchored_same(values, baseline, ("mae", "ssim"))


@pytest.mark.parametrize(("metric", "ideal"), [("mae", 0.0), ("ssim", 1.0), ("ms_ssim", 1.0)])
def test_anchored_baseline_equal_to_ideal(metric: str, ideal: float) -> None:
    with pytest.raises(ValueError, match="equals its ideal"):
        S.anchored_same({metric: 0.5}, {metric: ideal}, (metric,))


@pytest.mark.parametrize(("metrics", "match"), [((), "at least one"), (("dice",), "valid")])
def test_anchored_bad_metric_lists(metrics: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S.anchored_same(BASELINE, BASELINE, metrics)


# --- EvalConfig ---------------------------------------------------------------------------


def test_eval_config_defaults_and_no_weights_are_valid() -> None:
    assert EvalConfig().same_metrics == S.DEFAULT_METRICS
    assert EvalConfig().left_out == []
    cfg = EvalConfig(**NO_WEIGHTS)
    assert cfg.left_out == ["lpips", "fid_img", "fid_rad"]


@pytest.mark.parametrize(
    ("metrics", "same", "missing"),
    [
        (("mae", "ssim"), ("mae", "ssim", "mse"), "'mse'"),
        (("mae", "mse", "ssim", "psnr"), S.DEFAULT_METRICS, "'fid_img', 'fid_rad'"),
        (("mae",), ("ms_ssim",), "'ms_ssim'"),
    ],
)
def test_eval_config_same_metrics_must_be_computed(
    metrics: tuple[str, ...], same: tuple[str, ...], missing: str
) -> None:
    with pytest.raises(ValueError, match="are not computed") as e:
        EvalConfig(metrics=metrics, same_metrics=same)
    assert f"[{missing}]" in str(e.value)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"metrics": ("mae", "dice")}, r"unknown metrics \['dice'\]"),
        ({"metrics": ()}, "at least one metric"),
        ({"same_metrics": ("mae", "dice")}, r"same_metrics: unknown \['dice'\]"),
    ],
)
def test_eval_config_unknown_metric(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kw)


def test_eval_config_rejects_empty_same_metrics() -> None:
    """SAMe of no metrics raises in population_same — only after every checkpoint is scored
    (evaluation/select.py promises errors "before any checkpoint is scored"), so the config
    should refuse it up front."""
    with pytest.raises(ValueError):
        S.population_same(TABLE, ())  # what selection would hit later
    with pytest.raises(ValueError, match="same_metrics"):
        EvalConfig(same_metrics=())
