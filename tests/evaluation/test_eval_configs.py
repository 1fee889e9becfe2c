"""The shipped evaluation configs parse, and say what they leave out."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcesynth.config import ConfigError, build_config
from dcesynth.evaluation.config import ALL_METRICS, EvalConfig
from dcesynth.evaluation.same import DEFAULT_METRICS

CONFIGS = Path(__file__).resolve().parents[2] / "jobs" / "configs"


def test_study_config_is_the_study() -> None:
    cfg = build_config(EvalConfig, CONFIGS / "eval_study.yaml", {})
    assert cfg.metrics == ALL_METRICS and cfg.same_metrics == DEFAULT_METRICS
    assert cfg.left_out == [] and cfg == EvalConfig()  # the YAML is the defaults, spelled out


def test_no_weights_config_states_what_is_left_out() -> None:
    cfg = build_config(EvalConfig, CONFIGS / "eval_no_weights.yaml", {})
    assert cfg.left_out == ["lpips", "fid_img", "fid_rad"]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"metrics": ["mae", "fid"]}, "fid_img"),  # unknown metric: lists the valid ones
        ({"metrics": ["mae"], "same_metrics": ["mae", "ssim"]}, "ssim"),  # SAMe of uncomputed
        ({"pairs": 1}, "pairs"),
        ({"selection_pairs": 1}, "selection.pairs"),
        ({"device": "tpu"}, "device"),
        ({"lpips_net": "resnet"}, "lpips.net.*squeeze"),
    ],
)
def test_bad_values_name_the_key(override: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_config(EvalConfig, None, override)
