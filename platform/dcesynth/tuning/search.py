"""What a sweep's trials are scored by and how they are chosen and stopped: the anchored-SAMe
objective each trial reports, the search algorithm (Optuna TPE, define-by-run for conditional
spaces; Tune's random/grid otherwise) and the scheduler (ASHA over epochs)."""

from __future__ import annotations

import math

from dcesynth.tuning.conditional import DefineByRun
from dcesynth.tuning.space import SearchSpace

OBJECTIVE = "anchored_same"


class AnchoredSameHook:
    """The trial objective, computed on rank 0 after each epoch's validation.

    The baseline (real pre vs real post) is taken once from the same validation slices the
    metrics use, with the evaluation suite's definitions; a stopped (NaN) epoch scores +inf so
    that the scheduler, which needs the metric in every report, ranks it last.
    """

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.metrics = tuple(metrics)
        self.baseline: dict[str, float] | None = None

    def __call__(self, reported: dict, val: dict) -> dict:
        import numpy as np

        from dcesynth.evaluation.metrics import paired_metrics
        from dcesynth.evaluation.same import anchored_same
        from dcesynth.evaluation.scoring import pool_phases

        if self.baseline is None:
            post = val["post"]  # (n, P, S, S): the run's phases, pooled as in val_* metrics
            real = pool_phases(post)
            pre = np.concatenate([val["pre"]] * post.shape[1])
            base = paired_metrics(real, pre, names=self.metrics)
            self.baseline = {k: float(v.mean()) for k, v in base.items()}
        values = {k: reported.get(f"val_{k}", math.nan) for k in self.metrics}
        ok = all(math.isfinite(v) for v in values.values())
        score = anchored_same(values, self.baseline, self.metrics) if ok else math.inf
        return {OBJECTIVE: score, **{f"baseline_{k}": v for k, v in self.baseline.items()}}


def searcher(space: SearchSpace):
    """Tune's search algorithm for ``space`` (None: Tune's random and grid generator)."""
    if space.searcher.type != "optuna":
        return None  # Tune's BasicVariantGenerator: random samples and grid points
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=space.searcher.seed)
    if space.conditional:
        # define-by-run: a trial is asked only for the parameters its conditions give it
        by_run = DefineByRun({k: p.model_dump() for k, p in space.parameters.items()})
        return OptunaSearch(space=by_run, sampler=sampler, metric=OBJECTIVE, mode="min")
    return OptunaSearch(sampler=sampler, metric=OBJECTIVE, mode="min")


def scheduler(space: SearchSpace):
    """ASHA over reported epochs, or None when the space stops no trial early."""
    if space.scheduler.type == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    # time in epochs (reported), not Tune iterations: a resumed trial continues its epochs
    return ASHAScheduler(
        time_attr="epoch",
        max_t=space.base.epochs,
        grace_period=min(space.scheduler.grace_period, space.base.epochs),
        reduction_factor=space.scheduler.reduction_factor,
    )
