"""Tiny sweeps end to end on the phantom (CPU, 1 worker per trial, 32², 2 epochs).

Slow: each trial is a real Ray Train run. Proves: anchored SAMe every epoch, ASHA stopping a
trial and the next trial still running, a crashing trial retried from its checkpoint and then
recorded as failed while the sweep goes on, the population-SAMe ranking, a best config that
trains as is, resume after a killed `dcectl sweep` (in its own process with its own local Ray,
as a user runs it, beside the session's Ray), and that an unusable space fails before any trial.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcesynth import tracking
from dcesynth.cli.app import app
from dcesynth.config import ConfigError
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.evaluation.select import select_checkpoint
from dcesynth.tuning import sweep as sweep_module
from dcesynth.tuning.ranking import trial_scores
from dcesynth.tuning.space import load_space
from dcesynth.tuning.sweep import sweep

pytestmark = pytest.mark.slow

BASE = {"epochs": 2, "workers": 1}
EVAL = {"metrics": ["mae", "mse", "ssim"], "same_metrics": ["ssim", "mae", "mse"], "device": "cpu"}


@pytest.fixture(scope="module")
def dataset(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "ds"
    split = {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}
    ingest(
        phantom_source / "nifti" / "images",
        out,
        IngestConfig(image_size=32, phases=(1, 2, 3), split=split),
        progress=False,
    )
    return out


@pytest.fixture
def space_file(tmp_path: Path, dataset: Path, tiny_training: dict) -> Callable[..., Path]:
    """name, learning rates (a grid), **top-level keys → a search-space file in tmp_path."""
    return partial(_space_file, tmp_path, dataset, {**tiny_training, **BASE})


def _space_file(tmp: Path, dataset: Path, base: dict, name: str, lrs: list[float], **extra) -> Path:
    data = {
        "name": name,
        "storage_path": str(tmp / "sweeps"),
        "base": {**base, "dataset": str(dataset)},
        "parameters": {"lr": {"distribution": "grid", "values": lrs}},
        "searcher": {"type": "grid"},
        "num_samples": 1,
        "max_concurrent_trials": 1,
        "evaluation": EVAL,
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _metrics(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _dcectl(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """The CLI in its own process with its own local Ray, as a user runs it."""
    env = {**os.environ, "CI": "1", **(env or {})}
    cmd = [sys.executable, "-m", "dcesynth.cli.app", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500, **kw)


def test_sweep_asha_failure_ranking_and_best_config(
    space_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # `dcectl sweep` in this process, on the session's Ray, with a fault injected into the
    # library call behind it (a Python argument, not a user option). Grid order:
    # 2e-3 crashes whenever it starts epoch 2 (retried once from its epoch-1 checkpoint, then
    # recorded as failed); 1e-9, far too small, is stopped by ASHA after epoch 1; 1e-3 then
    # runs to the end.
    path = space_file(
        "asha",
        [2e-3, 1e-9, 1e-3],
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        max_failures=1,
    )
    fault = {"params": {"lr": 2e-3}, "train": {"always_crash": 2}}
    monkeypatch.setattr(sweep_module, "sweep", partial(sweep_module.sweep, fault=fault))
    # tracked (the suite runs untracked, tests/conftest.py): the sweep and its trials in MLflow
    monkeypatch.delenv(tracking.OFF_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    caplog.set_level("INFO", logger="dcesynth.sweep")
    caplog.set_level("INFO", logger="dcesynth.evaluation.select")
    out = CliRunner().invoke(app, ["sweep", str(path)])
    assert out.exit_code == 0, out.output
    sweep_dir = tmp_path / "sweeps" / "asha"
    assert f"results: {sweep_dir / 'sweep_results.csv'}" in out.output.replace("\n", "")
    rows = {r["lr"]: r for r in csv.DictReader((sweep_dir / "sweep_results.csv").open())}
    assert set(rows) == {"0.002", "1e-09", "0.001"}
    assert rows["0.002"]["status"] == "failed" and rows["0.002"]["epochs"] == "1"
    assert "injected persistent failure" in rows["0.002"]["error"]
    starts = (sweep_dir / "runs" / f"{rows['0.002']['trial']}.starts.jsonl").read_text()
    assert [json.loads(ln)["resume"] for ln in starts.splitlines()] == [False, True]
    assert rows["1e-09"]["status"] == "stopped early" and rows["1e-09"]["epochs"] == "1"
    assert rows["0.001"]["status"] == "completed" and rows["0.001"]["epochs"] == "2"
    # every reported epoch of every trial carries the objective and its baseline
    kept = 0
    for r in rows.values():
        ms = _metrics(sweep_dir / "runs" / r["trial"])
        assert ms and all(0 < m["anchored_same"] < 100 and "baseline_mae" in m for m in ms)
        assert (
            [m["epoch"] for m in ms]
            == list(range(1, len(ms) + 1))
            == [*range(1, int(r["epochs"]) + 1)]
        )
        kept += len(ms)
    # the population ranking covers every kept checkpoint; the best is the documented minimum
    sel = json.loads((sweep_dir / "selection.json").read_text())
    assert len(sel["same"]) == kept == 4
    # the log has one line per trial epoch that Tune heard, with the objective and the time
    lines = [r.getMessage() for r in caplog.records if r.name == "dcesynth.sweep"]
    assert len(lines) == kept, lines
    for r in rows.values():
        for e in range(1, int(r["epochs"]) + 1):
            (line,) = [ln for ln in lines if f"{r['trial']} epoch {e}/2: anchored_same " in ln]
            assert line.startswith("sweep asha: ") and line.endswith(" s")
    assert sel["best"] == min(sel["same"], key=sel["same"].get)
    assert (sweep_dir / "table1.md").read_text().count("\n| trial_") == min(kept, 5)
    assert (sweep_dir / "sweep_params.png").stat().st_size > 1000
    _tracked(tmp_path / "sweeps", rows, out.output)
    # selecting within the best trial reuses the ranking's scores, and equals scoring afresh
    best_run = sweep_dir / "runs" / sel["best"].split("/")[0]
    ecfg = load_space(sweep_dir / "space.yaml").evaluation
    reused = select_checkpoint(best_run, ecfg, scores=trial_scores(best_run))
    assert "reusing the sweep's scores of" in caplog.text
    fresh = select_checkpoint(best_run, ecfg)
    assert reused.selected_epoch == fresh.selected_epoch
    assert reused.same == pytest.approx(fresh.same, rel=1e-6)
    for a, b in zip(reused.rows, fresh.rows, strict=True):
        assert a.keys() == b.keys() and a["mae"]["mean"] == pytest.approx(b["mae"]["mean"])
    # the best config trains as is (its runs_dir is relative: train from a scratch folder);
    # in this process on the session's Ray (a subprocess's own Ray start cost ~15 s more)
    monkeypatch.chdir(tmp_path)
    trained = CliRunner().invoke(app, ["train", str(sweep_dir / "best_config.yaml")])
    assert trained.exit_code == 0, trained.output[-3000:]
    assert "2/2 epochs" in trained.output
    status = CliRunner().invoke(app, ["sweep", "status", str(sweep_dir)])
    assert status.exit_code == 0 and "finished" in status.output


def _tracked(root: Path, rows: dict, output: str) -> None:
    """The sweep in its default MLflow store (<storage_path>/mlflow.db): a parent run with its
    search space, Table 1 and files; each trial a nested run with its config as params, every
    reported epoch as a step, its population SAMe; no TensorBoard hint or files."""
    from mlflow.tracking import MlflowClient

    assert "TensorBoard" not in output
    assert not list(root.rglob("events.out.tfevents*"))
    c = MlflowClient(tracking.default_uri(root))
    exp = c.get_experiment_by_name("dcesynth")
    runs = c.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags["dcesynth.kind"] == "sweep"]
    trials = {r.data.params["lr"]: r for r in runs if r.data.tags["dcesynth.kind"] == "trial"}
    assert set(trials) == {"0.002", "1e-09", "0.001"}
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials.values())
    assert parent.data.params["base.epochs"] == "2" and parent.data.params["name"] == "asha"
    assert parent.data.tags["dataset_fingerprint"]
    assert "best_population_same" in parent.data.metrics
    assert any(k.startswith("table1.") for k in parent.data.metrics)
    arts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "sweep_results.csv", "best_config.yaml", "selection.json"} <= arts
    assert "tables/table1.csv" in {a.path for a in c.list_artifacts(parent.info.run_id, "tables")}
    done = trials["0.001"]  # ran both epochs
    assert done.data.params["model.ngf"] == "8" and done.data.params["epochs"] == "2"
    for key in ("loss_g", "val_mae", "anchored_same"):
        assert [m.step for m in c.get_metric_history(done.info.run_id, key)] == [1, 2], key
    stopped = trials["1e-09"]  # ASHA stopped it after epoch 1: its one epoch is there
    assert [m.step for m in c.get_metric_history(stopped.info.run_id, "anchored_same")] == [1]
    assert "population_same" in done.data.metrics and done.info.status == "FINISHED"
    assert {"config.yaml", "metrics.jsonl"} <= {a.path for a in c.list_artifacts(done.info.run_id)}
    assert rows["0.001"]["status"] == "completed"


def _terminated(sweep_dir: Path) -> set[str]:
    """Trial ids Tune's newest saved experiment state records as TERMINATED."""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text()) if states else {"trial_data": []}
    except ValueError:  # caught mid-write
        return set()
    trials = (json.loads(t[0]) for t in data["trial_data"])
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def test_killed_sweep_resumes_without_rerunning_finished_trials(space_file, tmp_path: Path) -> None:
    path = space_file("resume", [2e-3, 1e-3, 5e-4], scheduler={"type": "none"})
    sweep_dir = tmp_path / "sweeps" / "resume"
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1", "CI": "1"}
    log_file = (tmp_path / "first.log").open("w")  # the output as `nohup` would keep it
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcesynth.cli.app", "sweep", str(path)],
        env=env,
        start_new_session=True,  # its own process group: the kill takes its local Ray too
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:  # until the 2nd trial has reported an epoch
            runs = sweep_dir / "runs"
            done = [p for p in runs.glob("trial_*/metrics.jsonl") if len(_metrics(p.parent)) >= 2]
            started = [p for p in runs.glob("trial_*/metrics.jsonl") if _metrics(p.parent)]
            if done and len(started) >= 2:
                break
            time.sleep(1)
        else:
            pytest.fail("the sweep made no progress")
        # a trial is finished for Tune only once its saved state says so (its metrics file can
        # show both epochs seconds earlier on a loaded machine): kill after that, not before
        ids = {p.parent.name.removeprefix("trial_") for p in done}
        while time.monotonic() < deadline and not ids <= _terminated(sweep_dir):
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log_file.close()
    finished = {p.parent.name for p in done}
    first = (tmp_path / "first.log").read_text()
    for name in finished:  # a progress line per epoch of the finished trial, in the file
        for e in (1, 2):
            assert first.count(f"sweep resume: {name} epoch {e}/2: anchored_same ") == 1, first
    again = _dcectl("sweep", str(path))
    assert again.returncode == 2 and "exists: resume it" in again.stderr
    resumed = _dcectl("sweep", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = list(csv.DictReader((sweep_dir / "sweep_results.csv").open()))
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    for name in finished:  # not rerun: started once
        assert len((sweep_dir / "runs" / f"{name}.starts.jsonl").read_text().splitlines()) == 1
    for r in rows:
        assert [m["epoch"] for m in _metrics(sweep_dir / "runs" / r["trial"])] == [1, 2]


@pytest.mark.parametrize(
    ("base", "needle"),
    [
        ({"use_gpu": True, "workers": 2}, r"`base.workers`: a trial needs 2 GPUs"),
        ({"dataset": "/nonexistent/ds"}, r"search space `base`: `dataset`"),
        ({"phases": [4]}, r"`phases`: \[4\] not in the dataset"),
    ],
)
def test_unusable_space_fails_before_any_trial(
    space_file, tmp_path: Path, base: dict, needle: str
) -> None:
    path = space_file("bad", [1e-3])
    data = yaml.safe_load(path.read_text())
    data["base"].update(base)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=needle):
        sweep(load_space(path), verbose=0)
    assert not list((tmp_path / "sweeps").glob("bad/trial_*"))  # no trial ever started
