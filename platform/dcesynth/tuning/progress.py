"""A sweep's progress in its log (one line per trial epoch, whatever Tune's verbosity) and in
MLflow (each trial a nested run of the sweep's).

Tune's live table only helps a terminal, and at ``verbose=0`` (CI, ``nohup``, a Ray job) a
sweep printed nothing between its header and the end. These callbacks run on the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

log = logging.getLogger("dcesynth.sweep")


class EpochLog(Callback):
    """Logs ``sweep <name>: trial_x epoch e/E: anchored_same 0.23, 41 s`` per reported epoch."""

    def __init__(self, name: str, epochs: int, objective: str) -> None:
        self.name, self.epochs, self.objective = name, epochs, objective

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        score = result.get(self.objective)
        text = f"{score:.4g}" if isinstance(score, int | float) else "–"
        log.info(
            "sweep %s: %s epoch %s/%d: %s %s, %.0f s",
            self.name,
            trial.trial_id if not trial.custom_trial_name else trial.custom_trial_name,
            result.get("epoch", "?"),
            self.epochs,
            self.objective,
            text,
            result.get("time_total_s", 0.0),
        )


# Tune bookkeeping in every result: not the trial's metrics
TUNE_KEYS = frozenset(
    {
        "timestamp",
        "pid",
        "done",
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
    }
)


@dataclass
class SweepTracking:
    """A sweep's MLflow parent run, how a trial's training config is made, and the trials'
    nested runs (by trial name)."""

    parent: Any  # dcesynth.tracking.Tracker
    trial_config: Callable[[dict, str], Any]
    children: dict[str, Any] = field(default_factory=dict)


# sweep folder → its tracking while it runs. Tune pickles its callbacks with the experiment
# and a resumed sweep runs the unpickled ones: they find this process's tracking here.
ACTIVE: dict[str, SweepTracking] = {}


class TrialRuns(Callback):
    """Each trial as a nested MLflow run of the sweep's: its training config as params, every
    reported epoch (losses, validation metrics, anchored SAMe) as metrics with ``step`` =
    epoch, its run folder's files when it ends. Runs on the driver: the trials' workers never
    touch the tracking store (one writer for a SQLite file; nothing to reach from a GPU node).
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def __getstate__(self) -> dict:
        return {"key": self.key}

    def _child(self, trial) -> Any:
        st = ACTIVE.get(self.key)
        if st is None or not st.parent.on:
            return None
        name = trial.custom_trial_name or f"trial_{trial.trial_id}"
        if name not in st.children:  # a restarted trial keeps its run
            try:
                cfg = st.trial_config(trial.config, name)
            except Exception as e:  # never fail the sweep over its tracking
                log.debug("tracking: no config for %s: %s", name, e)
                cfg = dict(trial.config)
            st.children[name] = st.parent.child("trial", name, cfg, {"sweep": st.parent.what})
        return st.children[name]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._child(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        child = self._child(trial)
        if child is not None:
            row = {
                k: v for k, v in result.items() if k not in TUNE_KEYS and not isinstance(v, dict)
            }
            child.epoch(row)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "FAILED")

    def _end(self, trial, status: str) -> None:
        child = self._child(trial)
        if child is not None:
            # the sweep folder is the key: the trial's training run is runs/<trial>
            name = trial.custom_trial_name or f"trial_{trial.trial_id}"
            for f in ("config.yaml", "metrics.jsonl"):
                child.artifact(Path(self.key) / "runs" / name / f)
            child.close(status, wait=False)
