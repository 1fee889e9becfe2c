"""Conditional parameters: both generator families in one search space, each family's
parameters sampled and applied only to its own trials; bad conditions fail at load."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.config import ConfigError
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.models.flow.config import RectifiedFlowConfig
from dcesynth.models.pix2pixhd.config import LossConfig, Pix2PixHDConfig
from dcesynth.tuning.conditional import DefineByRun
from dcesynth.tuning.space import apply_sets, load_space
from dcesynth.tuning.sweep import _decode, _param_space

ROOT = Path(__file__).resolve().parents[2]
GENERATORS = ROOT / "search_spaces" / "generators.yaml"
P2P = "pix2pixhd"
FLOW = "rectified_flow"

SPACE = {
    "name": "t",
    "base": {"dataset": "/data/prepared", "epochs": 2},
    "families": {
        P2P: {"model": {"ngf": 16}, "loss": {"perceptual_network": "vgg19_random"}},
        FLOW: {"model": {"channels": [16, 32], "norm_num_groups": 8}},
    },
    "parameters": {
        "model.family": {"distribution": "choice", "values": [P2P, FLOW]},
        "lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-3},
        "loss.lambda_fm": {
            "distribution": "uniform", "low": 0.0, "high": 20.0, "when": {"model.family": P2P}
        },
        "model.ngf": {"distribution": "choice", "values": [8, 16], "when": {"model.family": P2P}},
        "model.sampling_steps": {
            "distribution": "choice", "values": [1, 4], "when": {"model.family": FLOW}
        },
        "model.target": {
            "distribution": "choice", "values": ["post", "subtraction"],
            "when": {"model.family": FLOW},
        },
    },
    "num_samples": 4,
}  # fmt: skip
ALL = {
    "model.family": P2P,
    "lr": 5e-4,
    "loss.lambda_fm": 3.0,
    "model.ngf": 8,
    "model.sampling_steps": 4,
    "model.target": "post",
}


def _load(tmp_path: Path, data: dict, sets: list[str] | None = None):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_space(path, sets=sets)


def _recipe() -> list[str]:
    """The CPU recipe's --set values, as the file's header comment gives them."""
    lines = GENERATORS.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("#   dcectl sweep"))
    cmd = []
    for ln in lines[start:]:
        if not ln.startswith("#   "):  # the recipe's lines are indented in the comment
            break
        cmd.append(ln[1:].strip().rstrip("\\"))
    words = shlex.split(" ".join(cmd))
    return [words[i + 1] for i, w in enumerate(words) if w == "--set"]


def test_shipped_generators_space(tmp_path: Path) -> None:
    space = load_space(GENERATORS)
    assert space.conditional and space.searcher.type == "optuna"
    assert space.parameters["model.family"].values == [P2P, FLOW]
    for key in ("loss.lambda_adv", "loss.lambda_fm", "loss.lambda_per", "model.ngf"):
        assert space.parameters[key].when == {"model.family": P2P}
    for key in ("model.sampling_steps", "model.samples", "model.target", "model.start"):
        assert space.parameters[key].when == {"model.family": FLOW}
    # the CPU recipe in the file's header loads: small, CPU, both families still searched
    small = load_space(GENERATORS, sets=_recipe())
    assert not small.base.use_gpu and small.base.workers == 1 and small.base.epochs == 2
    assert "loss.lambda_per" not in small.parameters
    assert small.parameters["model.family"].values == [P2P, FLOW]
    flow = small.trial_config({"model.family": FLOW}, "f", tmp_path)
    assert flow.model.channels == (16, 32, 64) and flow.beta1 == 0.9  # the file's beta1 kept
    # before any trial, each family's trials are checked against the dataset and the weights
    bases = small.trial_bases()
    assert {c.model.family for c in bases.values()} == {P2P, FLOW}
    gan = next(c for c in bases.values() if c.model.family == P2P)
    assert gan.loss.perceptual_network == "vgg19_random" and small.base.loss == LossConfig()


def test_trial_configs_hold_their_own_family_only(tmp_path: Path) -> None:
    space = _load(tmp_path, SPACE)
    flow = space.trial_config({**ALL, "model.family": FLOW}, "f", tmp_path)
    assert isinstance(flow.model, RectifiedFlowConfig)
    assert flow.model.sampling_steps == 4 and flow.model.target == "post"
    assert flow.model.channels == (16, 32) and flow.model.norm_num_groups == 8
    assert flow.loss == LossConfig()  # pix2pixHD's loss untouched: neither sampled nor its base
    assert not set(Pix2PixHDConfig.model_fields) - {"family"} & set(flow.model.model_dump())
    assert flow.lr == 5e-4  # shared parameters apply to both

    gan = space.trial_config(ALL, "g", tmp_path)
    assert isinstance(gan.model, Pix2PixHDConfig)
    assert gan.model.ngf == 8 and gan.loss.lambda_fm == 3.0
    assert gan.loss.perceptual_network == "vgg19_random"  # families.pix2pixhd merged in
    assert not {"sampling_steps", "target", "channels"} & set(gan.model.model_dump())


def test_decode_keeps_the_active_parameters_only(tmp_path: Path) -> None:
    space = _load(tmp_path, SPACE)
    # Tune's random searcher samples everything: the inactive ones are dropped
    flow = _decode(space, {**ALL, "model.family": FLOW})
    assert set(flow) == {"model.family", "lr", "model.sampling_steps", "model.target"}
    # Optuna's define-by-run never asked for them: missing keys are fine
    gan = _decode(space, {k: ALL[k] for k in ("model.family", "lr", "loss.lambda_fm", "model.ngf")})
    assert set(gan) == {"model.family", "lr", "loss.lambda_fm", "model.ngf"}
    # Optuna holds the conditional space itself; Tune's random searcher samples it flat
    assert _param_space(space) == {}
    rand = _load(tmp_path, {**SPACE, "searcher": {"type": "random"}})
    assert set(_param_space(rand)) == set(SPACE["parameters"])


def test_optuna_asks_each_trial_for_its_family_only(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    space = _load(tmp_path, SPACE)
    ask = DefineByRun({k: p.model_dump() for k, p in space.parameters.items()})
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        ask(trial)
        family = trial.params["model.family"]
        seen.add(family)
        own = (
            {"model.ngf", "loss.lambda_fm"}
            if family == P2P
            else {"model.sampling_steps", "model.target"}
        )
        assert set(trial.params) == {"model.family", "lr"} | own
        space.trial_config(_decode(space, trial.params), "x", tmp_path)  # a valid config
        study.tell(trial, 1.0)
    assert seen == {P2P, FLOW}


def test_flat_spaces_are_unchanged(tmp_path: Path) -> None:
    for name in ("demo.yaml", "gan.yaml"):
        space = load_space(ROOT / "search_spaces" / name)
        assert not space.conditional and not space.families
        assert set(_param_space(space)) == set(space.parameters)


def _with(key: str, **change) -> dict:
    data = yaml.safe_load(yaml.safe_dump(SPACE))
    if change.get("drop"):
        data["parameters"][key].pop("when")
    elif "param" in change:
        data["parameters"][key] = change["param"]
    for k, v in change.get("top", {}).items():
        data[k] = v
    return data


@pytest.mark.parametrize(("data", "needles"), [
    (_with("model.ngf", param={"distribution": "choice", "values": [8],
                               "when": {"model.famly": P2P}}),
     ["parameters.model.ngf", "`model.famly`", "valid keys: ['model.family']"]),
    (_with("model.ngf", param={"distribution": "choice", "values": [8],
                               "when": {"model.family": "gan"}}),
     ["parameters.model.ngf", "'gan'", "valid values: ['pix2pixhd', 'rectified_flow']"]),
    (_with("model.ngf", param={"distribution": "choice", "values": [8],
                               "when": {"lr": 1e-4}}),
     ["`lr`", "(it is `loguniform`)"]),
    (_with("model.ngf", param={"distribution": "choice", "values": [8],
                               "when": {"model.target": "post"}}),
     ["`model.target`", "must not have a `when` itself"]),
    (_with("model.ngf", top={"searcher": {"type": "grid"}}), ["grid"]),
    # a key of one family, unconditioned: the other family's trials cannot take it
    (_with("model.ngf", drop=True),
     ["model.family=rectified_flow", "parameters.model.ngf", "not a key of rectified_flow"]),
    # pix2pixHD's loss on a flow trial
    (_with("loss.lambda_fm", drop=True), ["model.family=rectified_flow", "loss.lambda_fm"]),
    # a uniform range over an integer setting samples fractions
    (_with("model.sampling_steps", param={"distribution": "uniform", "low": 1, "high": 8,
                                          "when": {"model.family": FLOW}}),
     ["model.sampling_steps", "integer"]),
    (_with("lr", top={"families": {"gan": {}}}),
     ["families.gan", "valid: pix2pixhd, rectified_flow"]),
    (_with("lr", top={"families": {FLOW: {"model": {"family": P2P}}}}),
     ["families.rectified_flow.model.family"]),
    (_with("lr", top={"families": {FLOW: {"epochs": 3}}}),
     ["families.rectified_flow.epochs", "shared by every trial"]),
])  # fmt: skip
def test_bad_conditions_name_the_key_and_what_is_valid(
    tmp_path: Path, data: dict, needles: list[str]
) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, data)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_a_family_no_trial_has_is_refused(tmp_path: Path) -> None:
    data = {**SPACE, "parameters": {"lr": SPACE["parameters"]["lr"]}}
    with pytest.raises(ConfigError, match=r"families\.rectified_flow: no trial is of this family"):
        _load(tmp_path, data)


def test_sets_dot_into_the_file() -> None:
    data = yaml.safe_load(yaml.safe_dump(SPACE))
    apply_sets(data, [
        "base={epochs: 1, workers: 1}",                      # merges: dataset kept
        "parameters.model.sampling_steps.values=[2]",        # a dotted parameter's field
        "parameters.model.ngf=null",                         # not searched any more
        "parameters.model.target.when.model.family=pix2pixhd",
        "parameters.batch_size={distribution: choice, values: [2, 4]}",
    ])  # fmt: skip
    assert data["base"] == {"dataset": "/data/prepared", "epochs": 1, "workers": 1}
    assert data["parameters"]["model.sampling_steps"]["values"] == [2]
    assert "model.ngf" not in data["parameters"]
    assert data["parameters"]["model.target"]["when"] == {"model.family": P2P}
    assert data["parameters"]["batch_size"]["values"] == [2, 4]
    with pytest.raises(ConfigError, match="key=value"):
        apply_sets(data, ["base.epochs"])


@pytest.mark.slow
def test_generators_space_sweeps_both_families(
    ray_session, phantom_source: Path, tmp_path: Path
) -> None:
    """`dcectl sweep search_spaces/generators.yaml` with the file's CPU recipe (plus a 32²
    phantom and one epoch): Optuna samples both families, each trial trains with its own
    family's settings only, and the ranking shows both with their sampling cost."""
    dataset = tmp_path / "ds"
    split = {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}
    ingest(
        phantom_source / "nifti" / "images",
        dataset,
        IngestConfig(image_size=32, phases=(1, 2, 3), split=split),
        progress=False,
    )
    extra = [
        f"storage_path={tmp_path / 'sweeps'}",
        f"base.dataset={dataset}",
        "base={epochs: 1, crop_size: null}",  # 32² slices: whole, not 64² crops
        "num_samples=2",  # Optuna's seed 0 draws a flow trial, then a pix2pixHD one
    ]
    args = ["sweep", str(GENERATORS)]
    for s in [*_recipe(), *extra]:
        args += ["--set", s]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    sweep_dir = tmp_path / "sweeps" / "generators_cpu"
    rows = list(csv.DictReader((sweep_dir / "sweep_results.csv").open()))
    assert {r["family"] for r in rows} == {"pix2pixhd", "rectified_flow"}
    for r in rows:
        assert r["status"] == "completed", r
        assert float(r["s_per_slice"]) > 0 and int(r["nfe_per_slice"]) >= 1
        run = yaml.safe_load((sweep_dir / "runs" / r["trial"] / "config.yaml").read_text())
        started = (sweep_dir / "runs" / f"{r['trial']}.starts.jsonl").read_text().splitlines()
        params = json.loads(started[0])["params"]
        if r["family"] == "rectified_flow":
            # the flow's keys sampled, pix2pixHD's left out (blank in the ranking)
            assert {"model.sampling_steps", "model.samples"} <= set(params)
            assert r["model.ngf"] == "" and r["loss.lambda_adv"] == ""
            assert run["model"]["sampling_steps"] == params["model.sampling_steps"]
            assert (
                int(r["nfe_per_slice"]) == params["model.sampling_steps"] * params["model.samples"]
            )
            assert "ngf" not in run["model"]
        else:
            assert "model.sampling_steps" not in params and r["model.sampling_steps"] == ""
            assert run["model"]["ngf"] == params["model.ngf"] and r["nfe_per_slice"] == "1"
            assert run["loss"]["lambda_adv"] == params["loss.lambda_adv"]
    table = (sweep_dir / "table1.md").read_text()
    assert "pix2pixhd" in table and "rectified_flow" in table
