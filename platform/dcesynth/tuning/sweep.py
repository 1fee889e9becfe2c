"""Run a sweep: Ray Tune (Optuna TPE / random / grid, ASHA) over trials that each train with a
``TorchTrainer`` — the Ray Train V2 pattern, where Tune drives a function that builds and fits
a trainer.

Sweep folder ``<storage_path>/<name>/``: ``space.yaml`` (the resolved search space), Tune's
experiment state and per-trial folders (``trial_000``…), ``runs/<trial>/`` (each trial's
training run: config, checkpoints, metrics.jsonl), and after the search the ranking written by
:mod:`dcesynth.tuning.ranking`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcesynth.config import ConfigError, atomic_write_text, to_yaml
from dcesynth.durable import append_line
from dcesynth.locks import folder_lock
from dcesynth.progress import interactive
from dcesynth.tuning.conditional import active
from dcesynth.tuning.conditional import tune_value as _tune_value
from dcesynth.tuning.search import OBJECTIVE, AnchoredSameHook, scheduler, searcher
from dcesynth.tuning.space import SearchSpace

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    path: Path
    trials: list[dict]
    seconds: dict[str, float]  # wall time of the trials (Tune) and of the final ranking


def _decode(space: SearchSpace, config: dict) -> dict[str, Any]:
    """Tune's sample → the trial's parameter values (choices come back from their Tune form;
    a conditional parameter whose ``when`` fails is left out)."""
    out = {}
    for key, p in space.parameters.items():
        if key not in config:  # conditional: Optuna did not ask for it
            continue
        v = config[key]
        if p.distribution in ("choice", "grid"):
            v = next(x for x in p.values if _tune_value(x) == v)
        out[key] = v
    return active(space.parameters, out)


def _param_space(space: SearchSpace) -> dict:
    from ray import tune

    if space.conditional and space.searcher.type == "optuna":
        return {}  # Optuna's define-by-run space holds it (see search.searcher)
    out = {}
    for key, p in space.parameters.items():
        if p.distribution == "uniform":
            out[key] = tune.uniform(p.low, p.high)
        elif p.distribution == "loguniform":
            out[key] = tune.loguniform(p.low, p.high)
        elif p.distribution == "choice":
            out[key] = tune.choice([_tune_value(v) for v in p.values])
        else:
            out[key] = tune.grid_search([_tune_value(v) for v in p.values])
    return out


def run_trial(config: dict, space_json: dict, sweep_dir: str, fault: dict | None = None) -> None:
    """One trial (runs in a Tune actor): the base config + this trial's values → ``train``.

    A retried or resumed trial continues from its own latest checkpoint.
    """
    from ray import tune

    from dcesynth.training.run import checkpoint_dirs, train

    space = SearchSpace.model_validate(space_json)
    name = tune.get_context().get_trial_name()
    params = _decode(space, config)
    runs = Path(sweep_dir) / "runs"
    cfg = space.trial_config(params, name, runs)
    run_dir = runs / name
    resume = bool(checkpoint_dirs(run_dir))
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # died before its first checkpoint: start clean
    runs.mkdir(parents=True, exist_ok=True)
    # every (re)start of the trial, one fsynced line each
    append_line(runs / f"{name}.starts.jsonl", json.dumps({"params": params, "resume": resume}))
    finished = _finished_report(run_dir, cfg.epochs) if resume else None
    if finished is not None:
        # the driver died after training ended but before Tune heard the last epoch: report
        # it from the run instead of training again (which would report nothing)
        tune.report(finished)
        return
    hit = fault and all(params.get(k) == v for k, v in fault["params"].items())
    trial_fault = fault["train"] if hit else None
    train(
        cfg,
        resume=resume,
        fault=trial_fault,
        metrics_hook=AnchoredSameHook(space.objective.metrics),
        report_to_tune=True,
    )


def _finished_report(run_dir: Path, epochs: int) -> dict | None:
    """The last epoch's metrics of a run whose training already ended, else None."""
    from dcesynth.training.run import checkpoint_dirs

    path = run_dir / "metrics.jsonl"
    ckpts = checkpoint_dirs(run_dir)
    if not ckpts or not path.is_file():
        return None
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    last = rows[-1] if rows else {}
    ended = last.get("epoch", 0) >= epochs and not last.get("stopped")
    # the final epoch always checkpoints; its metrics line is written just before
    return last if ended and ckpts[-1].name == f"epoch_{last['epoch']:03d}" else None


def _trial_name(trial) -> str:
    """Tune's trial id, unique and kept across restores: runs resume under the same name."""
    return f"trial_{trial.trial_id}"


def trial_cpus(space: SearchSpace) -> int:
    """Logical CPUs the concurrent trials hold: a driver and the workers of each."""
    return space.max_concurrent_trials * (space.base.workers + 1)


def ensure_ray(space: SearchSpace, address: str | None = None) -> None:
    """Join ``address``, or start a local Ray sized for the sweep (call it before other work
    starts a smaller one)."""
    from dcesynth.cluster import init_ray

    # workers' logs (and Ray Data's per-trial progress bars) stay in the session's log folder
    # and the dashboard; the driver shows Tune's trial table. +2: CPUs for Ray Data's tasks.
    # The dashboard stays on: Train's placement-group cleaner asks its State API.
    cpus = max(os.cpu_count() or 1, trial_cpus(space)) + 2
    init_ray(address, num_cpus=cpus, log_to_driver=False)


def check_cluster(space: SearchSpace, address: str | None = None) -> None:
    """What only the cluster can say: enough GPUs for a trial, CPUs beside it for the data
    (on a cluster we joined an autoscaler may still add them: a warning then)."""
    import ray

    from dcesynth.cluster import short_of_resources

    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < trial_cpus(space) + 1:
        # Ray Data needs CPUs of its own beside the trials, or the training input never starts
        short_of_resources(
            f"`max_concurrent_trials` × (`base.workers` + 1) = {trial_cpus(space)} CPUs for the "
            f"trials, but the Ray cluster has {cpus}: leave at least one for the data pipeline "
            "(fewer concurrent trials or workers, or start Ray with more logical CPUs)",
            address,
            log,
        )
    if space.base.use_gpu:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus < space.base.workers:
            short_of_resources(
                f"`base.workers`: a trial needs {space.base.workers} GPUs (use_gpu: true), "
                f"the cluster has {gpus}",
                address,
                log,
            )


def sweep(
    space: SearchSpace,
    resume: bool = False,
    address: str | None = None,
    fault: dict | None = None,
    verbose: int | None = None,
    tracker=None,
) -> SweepResult:
    """Run (or resume) the sweep, then rank every kept checkpoint by population SAMe.

    Args:
        space: the validated search space.
        resume: continue the sweep in ``storage_path/name`` (finished trials are kept).
        address: a Ray cluster (default: the running or a new local instance).
        fault: tests only: ``{"params": {key: value}, "train": train's fault dict}`` — the
            fault goes to the trials whose parameters match.
        verbose: Tune's live progress table (0 silent, 1 table; default: in a terminal).
        tracker: the sweep's MLflow run (:func:`dcesynth.tracking.track`): each trial a nested
            run, the ranking's tables and files in this one (default: none).

    Raises:
        ConfigError: before any trial starts, for an unusable space, dataset or cluster.
        FolderLocked: another process runs this sweep.
    """
    from dcesynth.training.run import check

    # Tune runs each trial in its own working directory: make every path absolute first
    space = space.model_copy(
        update={
            "base": space.base.model_copy(update={"dataset": Path(space.base.dataset).resolve()}),
            "storage_path": Path(space.storage_path).resolve(),
        }
    )
    for where, cfg in space.trial_bases().items():  # the base, or each family's trials
        try:
            check(cfg)  # the dataset, phases, weights: named errors before Ray starts
        except ConfigError as e:
            raise ConfigError(f"search space {where}: {e}") from None
    sweep_dir = (Path(space.storage_path) / space.name).resolve()
    with folder_lock(sweep_dir, "sweep"):  # a second sweep here is refused, naming this one
        return _sweep(space, sweep_dir, resume, address, fault, verbose, tracker)


def _sweep(
    space: SearchSpace,
    sweep_dir: Path,
    resume: bool,
    address: str | None,
    fault: dict | None,
    verbose: int | None,
    tracker=None,
) -> SweepResult:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from dcesynth.tracking import Tracker
    from dcesynth.tuning.progress import ACTIVE, EpochLog, SweepTracking, TrialRuns
    from dcesynth.tuning.ranking import rank

    state = sweep_dir / "tuner.pkl"
    if resume and not state.is_file():
        raise ConfigError(f"--resume: no sweep to resume at {sweep_dir}")
    if not resume and sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"sweep {sweep_dir} exists: resume it with --resume or change `name`")
    ensure_ray(space, address)
    check_cluster(space, address)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / "space.yaml", to_yaml(space))
    trainable = tune.with_parameters(
        run_trial,
        space_json=space.model_dump(mode="json"),
        sweep_dir=str(sweep_dir),
        fault=fault,
    )
    # the trial's own actor only drives the TorchTrainer; its workers hold the real resources
    trainable = tune.with_resources(trainable, {"cpu": 1})
    if resume:
        tuner = tune.Tuner.restore(str(sweep_dir), trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=_param_space(space),
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode="min",
                search_alg=searcher(space),
                scheduler=scheduler(space),
                num_samples=space.num_samples,
                max_concurrent_trials=space.max_concurrent_trials,
                # a stopped trial's actor must die with its TorchTrainer (a reused actor would
                # keep the old fit() thread and its workers' resources: the next trial hangs)
                reuse_actors=False,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=space.name,
                storage_path=str(space.storage_path),
                failure_config=tune.FailureConfig(max_failures=space.max_failures),
                verbose=(1 if interactive() else 0) if verbose is None else verbose,
                # Tune's CSV and JSON files as before, but no TensorBoard logger: its hint
                # pointed into Ray's staging folder; the metrics are in MLflow (`dcectl ui`)
                callbacks=[
                    EpochLog(space.name, space.base.epochs, OBJECTIVE),
                    TrialRuns(str(sweep_dir)),
                    CSVLoggerCallback(),
                    JsonLoggerCallback(),
                ],
            ),
        )
    tracker = tracker or Tracker(None)
    runs = sweep_dir / "runs"
    ACTIVE[str(sweep_dir)] = SweepTracking(
        tracker, lambda config, name: space.trial_config(_decode(space, config), name, runs)
    )
    t0 = time.perf_counter()
    try:
        with _no_auto_loggers():
            grid = tuner.fit()
    finally:
        st = ACTIVE.pop(str(sweep_dir))
    t1 = time.perf_counter()
    trials = []
    for r in grid:
        name = Path(r.path).name
        metrics = r.metrics or {}
        trials.append(
            {
                "trial": name,
                "params": _decode(space, r.config),
                "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}",
                "epochs": metrics.get("epoch", 0),
                OBJECTIVE: metrics.get(OBJECTIVE, math.nan),
            }
        )
    trials.sort(key=lambda t: t["trial"])
    record = rank(space, sweep_dir, trials)
    _log_ranking(tracker, st.children, sweep_dir, record)
    seconds = {"trials": t1 - t0, "ranking": time.perf_counter() - t1}
    return SweepResult(sweep_dir, trials, seconds)


@contextlib.contextmanager
def _no_auto_loggers():
    """Tune adds its CSV, JSON and TensorBoard loggers unless this variable is 1 (Ray 2.60,
    ray/tune/utils/callback.py); with it, Tune neither writes TensorBoard files nor prints
    "To visualize your results with TensorBoard" (a hint into Ray's staging folder). The
    sweep passes the CSV and JSON loggers itself."""
    old = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"]
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = old


def _log_ranking(tracker, children: dict, sweep_dir: Path, record: dict) -> None:
    """The ranking into MLflow: each trial's best population SAMe into its nested run (then
    closed, if Tune did not), Table 1 and the sweep's files into the sweep's run."""
    for row in record.get("trials", []):
        child = children.get(row["trial"])
        if child is None:
            continue
        best = str(row.get("best_checkpoint") or "")
        values = {"population_same": row.get("population_same")}
        if best.startswith("epoch "):
            values["best_epoch"] = int(best.split()[1])
        child.metrics(values)
        child.close(wait=False)  # a second close of a run Tune ended changes nothing
    if record.get("best"):
        same = record["same"][record["best"]]
        tracker.metrics({"best_population_same": same})
        tracker.tags({"best": record["best"]})
    tracker.table(sweep_dir / "table1.csv", ["checkpoint"], "table1")
    names = ("space.yaml", "sweep_results.csv", "table1.md", "best_config.yaml", "selection.json")
    tracker.artifacts(sweep_dir / n for n in (*names, "sweep_params.png"))
