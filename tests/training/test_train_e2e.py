"""Tiny end-to-end training on a phantom dataset with 2 Ray Train workers on CPU.

Slow (Ray Train start-up dominates): the few runs here are the proof that the distributed loop,
checkpoints, resume and the NaN stop work.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dcesynth.config import ConfigError, build_config
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.training.checkpoints import load_state
from dcesynth.training.config import TrainConfig
from dcesynth.training.loop import build_generator
from dcesynth.training.run import TrainingError, check, train, val_subset
from dcesynth.training.validation import validation_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "ds"
    cfg = IngestConfig(image_size=32, phases=(1, 2), split={"ratios": {"train": 0.5, "val": 0.5}})
    ingest(phantom_source / "nifti" / "images", out, cfg, progress=False)
    return out


@pytest.fixture
def tiny(dataset: Path, tmp_path: Path, tiny_training: dict) -> Callable[..., TrainConfig]:
    """name, **overrides → a 3-epoch, 2-worker phase-1 run in tmp_path."""

    def make(name: str, **over) -> TrainConfig:
        base = {**tiny_training, "dataset": str(dataset), "runs_dir": str(tmp_path)}
        base |= {"name": name, "phases": (1,), "epochs": 3, "workers": 2}
        return build_config(TrainConfig, None, {**base, **over})

    return make


def _epochs(run: Path) -> list[int]:
    return [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_trains_checkpoints_and_reloads(tiny, tmp_path: Path, caplog) -> None:
    cfg = tiny("run")
    caplog.set_level("INFO", logger="dcesynth.training.run")
    before = signal.getsignal(signal.SIGINT)
    res = train(cfg)
    # Ray Train's fit() leaves its own Ctrl-C handler behind; train() puts the caller's back
    assert signal.getsignal(signal.SIGINT) is before
    # one progress line per epoch for logs without a terminal
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train run:")]
    assert [ln.split(":")[1].strip() for ln in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_ssim" in ln for ln in lines)
    l1 = [m["train_l1"] for m in res.metrics]
    assert res.epochs_done == 3 and len(l1) == 3
    assert l1[-1] < l1[0]  # the reported L1 to the target falls
    assert all(m["perceptual_network"] == "vgg19_random" for m in res.metrics)  # recorded
    assert [p.name for p in res.checkpoints] == ["epoch_001", "epoch_002", "epoch_003"]
    assert (res.run_dir / "config.yaml").is_file() and (res.run_dir / "loss_curve.png").is_file()
    assert (res.run_dir / "samples" / "epoch_003.png").is_file()
    # the checkpoint reloads to the same outputs: its generator reproduces the validation
    # metrics the run recorded at that epoch, on the same fixed validation subset
    state = load_state(res.checkpoints[-1] / "state.pt")
    g = build_generator(cfg)
    g.load_state_dict(state["G"])
    val = val_subset(cfg, check(cfg))
    again = validation_metrics(g, val, cfg, torch.device("cpu"))
    for k in ("val_mae", "val_mse", "val_ssim"):
        assert again[k] == pytest.approx(res.metrics[-1][k], rel=1e-4, abs=1e-4), k
    assert state["epoch"] == 3 and state["config"]["phases"] == [1]
    with pytest.raises(ConfigError, match="exists"):  # a second run under the same name
        train(cfg)


def test_rectified_flow_trains_with_ddp_and_resumes(
    dataset: Path, tmp_path: Path, tiny_flow_training: dict
) -> None:
    """The second family through the same loop: 2 DDP workers, a worker crash retried from the
    last checkpoint (its network and optimiser), the sampling cost recorded every epoch, and
    the checkpoint reproducing the recorded validation (fixed slices, fixed seeds).

    The retry is the loop's, not the family's: this is its test for both families (a separate
    pix2pixHD crash test cost 45 s for the same path; pix2pixHD's own resume, with its
    discriminators, is the killed-run test below)."""
    cfg = build_config(
        TrainConfig,
        None,
        {
            **tiny_flow_training,
            "dataset": str(dataset),
            "runs_dir": str(tmp_path),
            "name": "flow",
            "phases": (1, 2),
            "epochs": 3,
            "workers": 2,
            "max_failures": 1,
        },
    )
    res = train(cfg, fault={"crash_at_epoch": 2, "marker": str(tmp_path / "crashed")})
    assert (tmp_path / "crashed").exists() and _epochs(res.run_dir) == [1, 2, 3]
    m = res.metrics[-1]
    assert {"loss_g", "train_l1", "val_mae", "val_ssim"} <= set(m)
    assert m["nfe_per_slice"] == 4 and m["sample_s_per_slice"] > 0
    assert "loss_d" not in m and "perceptual_network" not in m
    state = load_state(res.checkpoints[-1] / "state.pt")
    assert set(state) == {"G", "opt_g", "epoch", "config"}
    g = build_generator(cfg)
    g.load_state_dict(state["G"])
    again = validation_metrics(g, val_subset(cfg, check(cfg)), cfg, torch.device("cpu"))
    for k in ("val_mae", "val_mse", "val_ssim"):
        assert again[k] == pytest.approx(m[k], rel=1e-4, abs=1e-4), k


def test_killed_run_resumes_to_the_same_epoch_count(tiny, tmp_path: Path) -> None:
    cfg = tiny("killed", max_failures=0)
    with pytest.raises(Exception):  # noqa: B017 - Ray's error type for a failed run
        train(cfg, fault={"crash_at_epoch": 2, "marker": str(tmp_path / "killed.marker")})
    run = tmp_path / "killed"
    assert (tmp_path / "killed.marker").exists()  # the fault did fire
    assert _epochs(run) == [1, 2]
    res = train(cfg, resume=True)
    assert res.epochs_done == 3 and _epochs(run) == [1, 2, 3]


def test_nan_loss_stops_with_epoch_step_and_last_checkpoint(tiny, tmp_path: Path) -> None:
    cfg = tiny("nan")
    with pytest.raises(
        TrainingError, match=r"NaN loss at epoch 2, step 1; last good checkpoint: .*epoch_001"
    ):
        train(cfg, fault={"nan_at": [1, 1]})


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"phases": (4,)}, "not in the dataset"),
        ({"model": {"n_downsample": 6}}, "not divisible"),
        ({"dataset": "/nonexistent"}, "not a prepared dataset"),
        (
            {"loss": {"perceptual_network": "vgg19_imagenet", "weights_dir": "/nonexistent"}},
            "vgg19-dcbb9e9d.pth",
        ),
    ],
)
def test_bad_inputs_fail_before_ray(tiny, tmp_path: Path, over: dict, needle: str) -> None:
    cfg = tiny("bad", **over)
    with pytest.raises(ConfigError, match=needle):
        train(cfg)
    assert not (tmp_path / "bad").exists()
