"""A sweep's progress in its log: one line per trial epoch, whatever Tune's verbosity.

Tune's live table only helps a terminal, and at ``verbose=0`` (CI, ``nohup``, a Ray job) a
sweep printed nothing between its header and the end. This callback runs on the driver.
"""

from __future__ import annotations

import logging

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
