"""After the search: score every kept checkpoint of every trial on the validation split and rank
them by the study's population SAMe (the set is now known).

Trials that generate different phases are compared on the phases they all generate (phase 1
when single- and joint-phase trials are mixed), so that one table ranks like with like.

Writes into the sweep folder: ``sweep_results.csv`` (a row per trial: status, parameters,
last anchored SAMe, its best checkpoint and that checkpoint's population SAMe, its generator
family and sampling cost — network evaluations and seconds per slice — and error),
``table1.{csv,md}`` (the top checkpoints, Table 1 style, with family and sampling cost, and the
real-pre-vs-real-post baseline), ``best_config.yaml`` (the best trial's training config, ready
for ``dcectl train``), ``sweep_params.png`` (each parameter vs population SAMe) and
``selection.json``, ``scores.json`` (every checkpoint's metrics and the baseline: what
``select_checkpoint(..., scores=)`` reuses).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

from dcesynth.cluster import error_line
from dcesynth.config import atomic_write_text, to_yaml
from dcesynth.tuning.space import SearchSpace

log = logging.getLogger(__name__)

SCORES = "scores.json"  # the ranking's metrics of every checkpoint, per trial


def _status(trial: dict, epochs: int) -> str:
    if trial["error"]:
        return "failed"
    return "completed" if trial["epochs"] >= epochs else "stopped early"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, list) else str(v)


def sampling_cost(run_dir: Path) -> dict:
    """A run's generator family and sampling cost as its validation measured it: network
    evaluations per slice and the median seconds per slice over its epochs (the median: the
    first epoch also pays one-off start-up). Empty values when the run recorded none."""
    import statistics

    path = Path(run_dir) / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    rows = [json.loads(ln) for ln in lines if ln.strip()]
    secs = [r["sample_s_per_slice"] for r in rows if "sample_s_per_slice" in r]
    nfe = next((r["nfe_per_slice"] for r in reversed(rows) if "nfe_per_slice" in r), None)
    return {
        "s_per_slice": f"{statistics.median(secs):.3g}" if secs else "",
        "nfe_per_slice": "" if nfe is None else str(nfe),
    }


def rank(space: SearchSpace, sweep_dir: Path, trials: list[dict]) -> dict:
    """Score, rank and write the sweep's results (see the module docstring)."""
    from dcesynth.evaluation import same as S
    from dcesynth.evaluation.runs import Run
    from dcesynth.evaluation.scoring import Scorer, flat, read_pairs
    from dcesynth.evaluation.select import pooled_boxes, same_only, score_checkpoints
    from dcesynth.evaluation.tables import write_table

    cfg = space.evaluation
    runs = {}
    for t in trials:
        rd = sweep_dir / "runs" / t["trial"]
        if (rd / "config.yaml").is_file():
            run = Run.open(rd)
            if run.checkpoints():
                runs[t["trial"]] = run
    table: dict[str, dict] = {}
    raw: dict[str, dict] = {}
    baseline: dict = {}
    phases: list[int] = []
    if runs:
        phases = sorted(set.intersection(*(set(r.cfg.phases) for r in runs.values())))
        if not phases:
            raise ValueError("the trials share no generated phase; nothing to rank them on")
        scorer = Scorer(cfg)
        pairs = read_pairs(space.base.dataset, "val", cfg.n_selection_pairs, cfg.seed)
        real, pre, cases = pairs.pooled(phases)
        box, skip = pooled_boxes(pairs, phases, cfg), same_only(cfg)
        baseline = scorer.score(real, pre, real_key=("val",), case_ids=cases, box=box, skip=skip)
        for name, run in runs.items():
            scores = score_checkpoints(
                run, run.checkpoints(), scorer, pairs, phases, real, box=box, skip=skip
            )
            for epoch, summary in scores.items():
                raw[f"{name}/epoch {epoch}"] = summary
                table[f"{name}/epoch {epoch}"] = flat(summary)
        # every checkpoint's metrics as scored here, so that selecting within the best trial
        # (`dcectl select`, the demo) need not score its checkpoints a second time
        by_trial: dict[str, dict] = {}
        for key, summary in raw.items():
            trial, ep = key.split("/epoch ")
            by_trial.setdefault(trial, {})[ep] = summary
        atomic_write_text(
            sweep_dir / SCORES,
            json.dumps(
                {
                    "phases": phases,
                    "eval": cfg.model_dump(mode="json"),
                    "baseline": baseline,
                    "checkpoints": by_trial,
                },
                indent=1,
                default=float,
            ),
        )
    same = S.population_same(table, cfg.same_metrics) if table else {}
    best = S.select(same) if same else None
    rows, costs = [], {}
    for t in trials:
        mine = {k: v for k, v in same.items() if k.startswith(f"{t['trial']}/")}
        own = S.select(mine) if mine and any(math.isfinite(v) for v in mine.values()) else None
        run = runs.get(t["trial"])
        costs[t["trial"]] = {
            "family": run.cfg.family if run else "",
            **sampling_cost(sweep_dir / "runs" / t["trial"]),
        }
        rows.append(
            {
                "trial": t["trial"],
                "status": _status(t, space.base.epochs),
                "epochs": t["epochs"],
                # every parameter a column; blank where its `when` left it out of this trial
                **{k: _short(t["params"][k]) if k in t["params"] else "" for k in space.parameters},
                "anchored_same_last": t["anchored_same"],
                "best_checkpoint": own.split("/")[1] if own else "",
                "population_same": mine.get(own, math.nan) if own else math.nan,
                # the sampling cost beside the quality: families are compared at their cost
                **costs[t["trial"]],
                "error": error_line(t["error"]),
            }
        )
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(sweep_dir / "sweep_results.csv", buf.getvalue())
    files = [sweep_dir / "sweep_results.csv"]
    if best is not None:
        top = sorted(same, key=lambda k: (not math.isfinite(same[k]), same[k]))[: space.top_k]
        metrics = [m for m in cfg.metrics if m in baseline]
        t_rows = [{"checkpoint": "real pre vs real post", **baseline, "same": None}]
        t_rows += [
            {"checkpoint": k, **costs[k.split("/")[0]], **raw[k], "same": same[k]} for k in top
        ]
        title = (
            f"Top {len(top)} of {len(same)} checkpoints of {len(runs)} trials, validation split, "
            f"phases {phases}; SAMe over {', '.join(cfg.same_metrics)}"
            + (f"; not computed: {', '.join(cfg.left_out)}" if cfg.left_out else "")
        )
        keys = ["checkpoint", "family", "nfe_per_slice", "s_per_slice"]
        files += write_table(t_rows, keys, [*metrics, "same"], sweep_dir / "table1", title)
        trial, ep = best.split("/")
        best_cfg = runs[trial].cfg.model_copy(
            update={"name": f"{space.name}_best", "runs_dir": space.base.runs_dir}
        )
        atomic_write_text(
            sweep_dir / "best_config.yaml",
            f"# best of sweep {space.name}: {trial} ({ep}), population SAMe {same[best]:.4f}\n"
            + to_yaml(best_cfg),
        )
        files.append(sweep_dir / "best_config.yaml")
        files.append(_plot(space, rows, sweep_dir / "sweep_params.png"))
    record = {
        "best": best,
        "checkpoint": str(_checkpoint(runs, best)) if best else None,
        "phases": phases,
        "same": same,
        "baseline": flat(baseline) if baseline else {},
        "not_computed": cfg.left_out,
        "trials": rows,
    }
    atomic_write_text(sweep_dir / "selection.json", json.dumps(record, indent=1, default=str))
    return record


def trial_scores(run_dir: Path) -> dict | None:
    """The ranking's scores of one trial's checkpoints (``<sweep>/runs/<trial>``), in the form
    ``select_checkpoint(..., scores=)`` takes; None when the run is not a ranked sweep trial."""
    path = Path(run_dir).parent.parent / SCORES
    if Path(run_dir).parent.name != "runs" or not path.is_file():
        return None
    record = json.loads(path.read_text())
    own = record["checkpoints"].get(Path(run_dir).name)
    return None if own is None else {**record, "checkpoints": own}


def _checkpoint(runs: dict, key: str) -> Path:
    """'trial_003/epoch 2' → that trial's checkpoint directory."""
    trial, ep = key.split("/")
    return runs[trial].checkpoints()[int(ep.split()[1])]


def _plot(space: SearchSpace, rows: list[dict], path: Path) -> Path:
    """Each searched parameter vs the trial's best population SAMe (no checkpoint: left out)."""
    from dcesynth.evaluation.tables import plt, save_figure

    keys = list(space.parameters)
    fig, axes = plt.subplots(
        1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False, constrained_layout=True
    )
    ok = [r for r in rows if math.isfinite(r["population_same"])]
    for ax, k in zip(axes[0], keys, strict=True):
        p = space.parameters[k]
        mine = [r for r in ok if r.get(k, "") != ""]  # trials this (conditional) one applied to
        ys = [r["population_same"] for r in mine]
        if p.distribution in ("choice", "grid"):
            labels = [_short(v) for v in p.values]
            xs = [labels.index(r[k]) for r in mine]
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        else:
            xs = [float(r[k]) for r in mine]
            if p.distribution == "loguniform":
                ax.set_xscale("log")
        colour = {"stopped early": "tab:orange", "failed": "tab:red"}
        colors = [colour.get(r["status"], "tab:blue") for r in mine]
        ax.scatter(xs, ys, c=colors)
        ax.set_xlabel(k)
    axes[0][0].set_ylabel("population SAMe (lower is better)")
    fig.suptitle(
        f"{space.name}: blue completed, orange stopped early by ASHA, red failed", fontsize=9
    )
    return save_figure(fig, path)
