"""Search-space files: the shipped ones parse; bad ones fail before any trial, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcesynth.config import ConfigError
from dcesynth.tuning.space import Parameter, SearchSpace, load_space
from dcesynth.tuning.sweep import _decode, _param_space

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
base:
  dataset: /data/prepared
  epochs: 2
parameters:
  loss.lambda_fm: {distribution: uniform, low: 0.0, high: 20.0}
  phases: {distribution: choice, values: [[1], [1, 2, 3]]}
num_samples: 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


# the demo fixes lambda_per at 0: without ImageNet weights the perceptual network is an
# untrained VGG19, whose features are noise (and cost time)
@pytest.mark.parametrize(("name", "losses"), [
    ("demo.yaml", {"loss.lambda_adv", "loss.lambda_fm"}),
    ("gan.yaml", {"loss.lambda_adv", "loss.lambda_fm", "loss.lambda_per"}),
])  # fmt: skip
def test_shipped_spaces_parse(name: str, losses: set[str]) -> None:
    space = load_space(ROOT / "search_spaces" / name)
    searched = set(space.parameters)
    # the minimum: loss weights, phase count, learning rate, ngf
    assert losses | {"phases", "lr"} <= searched
    assert "model.ngf" in searched
    assert space.parameters["phases"].values == [[1], [1, 2, 3]]
    assert space.searcher.type == "optuna" and space.scheduler.type == "asha"


def test_trial_config_applies_dotted_parameters(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, GOOD))
    cfg = space.trial_config({"loss.lambda_fm": 3.5, "phases": [1, 2, 3]}, "trial_x", tmp_path)
    assert cfg.loss.lambda_fm == 3.5 and cfg.phases == (1, 2, 3)
    assert cfg.name == "trial_x" and cfg.runs_dir == tmp_path and cfg.epochs == 2
    assert cfg.loss.lambda_adv == 1.0  # the rest stays the base's (the study's defaults)


def test_choices_hold_their_values_where_tune_shows_them(tmp_path: Path) -> None:
    """Tune's live table prints the sampled config: values, not indices (16, not 1). Optuna's
    categorical takes scalars only, so a list such as phases travels as its JSON text."""
    text = GOOD.replace("num_samples: 2\n", "")
    text += "  model.ngf: {distribution: choice, values: [8, 16]}\nnum_samples: 2\n"
    space = load_space(_write(tmp_path, text))
    ps = _param_space(space)
    assert ps["phases"].categories == ["[1]", "[1, 2, 3]"]
    assert ps["model.ngf"].categories == [8, 16]
    assert _decode(space, {"loss.lambda_fm": 1.0, "phases": "[1, 2, 3]", "model.ngf": 16}) == {
        "loss.lambda_fm": 1.0,
        "phases": [1, 2, 3],
        "model.ngf": 16,
    }
    for _ in range(5):  # whatever Tune samples decodes to a listed value
        sample = {k: d.sample() for k, d in ps.items()}
        got = _decode(space, sample)
        assert got["phases"] in ([1], [1, 2, 3]) and got["model.ngf"] in (8, 16)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        # (replace this, with that), what the message must name, incl. the line
        (("num_samples: 2", "num_samples: 0"), r"space.yaml:8: `num_samples`"),
        (("  epochs: 2", "  epochs: 2\n  epoch: 3"), r"space.yaml:5: `base.epoch`: unknown key"),
        (("distribution: uniform", "distribution: normal"), r":6: `parameters.loss.lambda_fm"),
        (("low: 0.0, high: 20.0", "low: 5.0, high: 1.0"), r":6: .*low < high"),
        (
            ("distribution: uniform, low: 0.0", "distribution: loguniform, low: 0.0"),
            r"loguniform needs low > 0",
        ),
        (
            ("loss.lambda_fm:", "loss.lambda_xx:"),
            r":6: .*parameters.loss.lambda_xx.*not a training",
        ),
        (("  dataset: /data/prepared\n", ""), r"base.dataset: required"),
        (("name: t", "name: t\nsurprise: 1"), r":2: `surprise`: unknown key"),
        (("phases: {distribution: choice", "phases: {distribution: grid"), r"grid.*optuna"),
        (
            (
                "phases: {distribution: choice, values: [[1], [1, 2, 3]]}",
                "phases: {distribution: choice, values: []}",
            ),
            r"non-empty",
        ),
        (("loss.lambda_fm:", "name:"), r"not searchable"),
    ],
)
def test_bad_files_name_key_and_line(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(ConfigError, match=needle):
        load_space(_write(tmp_path, text))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(_write(tmp_path, "name: [unclosed\n"))


def test_grid_searcher_needs_grid_parameters() -> None:
    data = yaml.safe_load(GOOD) | {"searcher": {"type": "grid"}}
    with pytest.raises(ValueError, match="needs every parameter as `grid`"):
        SearchSpace.model_validate(data)


@pytest.mark.parametrize(
    "kw",
    [
        {"distribution": "uniform", "low": 1.0},
        {"distribution": "choice", "low": 1.0, "high": 2.0},
        {"distribution": "uniform", "low": 0.0, "high": 1.0, "values": [1]},
    ],
)
def test_parameter_shapes(kw: dict) -> None:
    with pytest.raises(ValueError):
        Parameter(**kw)


@pytest.mark.parametrize("space_file", ["demo.yaml", "gan.yaml"])
def test_bench_space_of_a_shipped_space_validates(space_file: str, tmp_path) -> None:
    """`dcectl bench sweep` re-validates its space in every trial: with FRD in the demo's SAMe
    and only the cheap metrics computed, every trial failed (seen)."""
    from dcesynth.tuning.bench import bench_space
    from dcesynth.tuning.space import load_space

    root = Path(__file__).resolve().parents[2] / "search_spaces"
    sp = bench_space(load_space(root / space_file), tmp_path / "ds", tmp_path, trials=2, epochs=1)
    assert set(sp.evaluation.same_metrics) <= set(sp.evaluation.metrics) == {"mae", "mse", "ssim"}
    assert list(sp.parameters) == ["lr"] and sp.base.epochs == 1


def test_bench_space_refuses_a_family_search_before_any_trial(tmp_path) -> None:
    from dcesynth.tuning.bench import bench_space
    from dcesynth.tuning.space import load_space

    space = load_space(Path(__file__).resolve().parents[2] / "search_spaces" / "generators.yaml")
    with pytest.raises(ValueError, match="no trial is of this family"):
        bench_space(space, tmp_path / "ds", tmp_path, trials=2, epochs=1)
