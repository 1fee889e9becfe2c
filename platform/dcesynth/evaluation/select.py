"""Checkpoint selection with SAMe: evaluate a run's checkpoints on the validation split.

Writes into ``<run>/report/``: ``table1.csv`` / ``table1.md`` (the study's Table 1: raw metrics
per checkpoint, the real-pre-vs-real-post baseline row, SAMe), ``same_bars.png`` (Figure 4a)
and ``selection.json`` (the selected epoch — what ``--checkpoint best`` means afterwards).

A run generating several phases is scored on the pairs of all its phases pooled (N slices ×
P phases); the evaluation report breaks the numbers down per phase.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation import same as S
from dcesynth.evaluation.config import EvalConfig
from dcesynth.evaluation.frd import FRD_METRICS
from dcesynth.evaluation.runs import SELECTION, Run, generate
from dcesynth.evaluation.scoring import Pairs, Scorer, flat, pool_phases, read_pairs
from dcesynth.evaluation.tables import same_bar_chart, write_table
from dcesynth.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class Selection:
    selected_epoch: int
    checkpoint: Path
    same: dict[int, float]
    rows: list[dict]
    files: list[Path]


def score_checkpoints(
    run: Run,
    ckpts: dict[int, Path],
    scorer: Scorer,
    pairs: Pairs,
    phases: list[int],
    real: np.ndarray,
    progress: bool | None = False,
    box: np.ndarray | None = None,
    skip: tuple[str, ...] = (),
) -> dict[int, dict]:
    """{epoch: metric summary} of each checkpoint's ``phases``, pooled, against ``real``.

    Args:
        box: the pooled tumour boxes (``frd_box``), see :func:`same_only`.
        skip: configured metrics not to compute (see :func:`same_only`).
    """
    batch = scorer.cfg.batch_size
    out = {}
    with progress_bar(len(ckpts), f"checkpoints of {run.path.name}", progress) as advance:
        for epoch, path in ckpts.items():
            G = run.generator(path, scorer.device)
            gen = generate(G, pairs.pre, run.cfg, scorer.device, batch)
            fake = pool_phases(gen[:, [run.cfg.phases.index(p) for p in phases]])
            out[epoch] = scorer.score(real, fake, real_key=("val",), box=box, skip=skip)
            advance()
    return out


def _reusable(scores: dict | None, phases: list[int], cfg: EvalConfig, ckpts: dict) -> bool:
    """Whether a sweep's scores stand for scoring ``ckpts`` here (see ``select_checkpoint``)."""
    if not scores:
        return False
    same_setup = scores.get("phases") == phases and scores.get("eval") == cfg.model_dump(
        mode="json"
    )
    covered = {str(e) for e in ckpts} <= set(scores.get("checkpoints", {}))
    if not (same_setup and covered):
        log.info("the sweep's scores are for other phases, settings or checkpoints: rescoring")
    return same_setup and covered


def same_only(cfg: EvalConfig) -> tuple[str, ...]:
    """The metrics a selection computes only where SAMe asks for them: FRD and FRD in the box,
    whose feature extraction costs ~0.3 s of CPU per fake slice and checkpoint."""
    return tuple(m for m in FRD_METRICS if m not in cfg.same_metrics)


def pooled_boxes(pairs: Pairs, phases: list[int], cfg: EvalConfig) -> np.ndarray | None:
    """The tumour boxes of :meth:`Pairs.pooled`'s pairs (None unless SAMe uses ``frd_box``)."""
    if "frd_box" not in cfg.same_metrics:
        return None
    return np.concatenate([pairs.box_region(cfg.box_min_px)] * len(phases))


def select_checkpoint(
    run_dir: Path,
    cfg: EvalConfig,
    every: int | None = None,
    dataset: Path | None = None,
    progress: bool | None = None,
    scores: dict | None = None,
) -> Selection:
    """Score every kept checkpoint (or every ``every``-th epoch and the last) and pick by SAMe.

    Args:
        run_dir: a training run.
        cfg: metrics, networks and the number of validation pairs.
        every: only epochs divisible by this (the last checkpoint is always included).
        dataset: the prepared dataset, when it moved since training (default: the run's).
        progress: show a progress bar (default: in a terminal).
        scores: this run's checkpoints already scored by a sweep's ranking
            (``{"phases", "eval", "baseline", "checkpoints": {epoch: summary}}``, see
            :mod:`dcesynth.tuning.ranking`); used only when they were scored on this run's
            phases, with this evaluation config, for every checkpoint to select from —
            otherwise the checkpoints are scored here.

    Raises:
        ConfigError / WeightsError / ValueError: before any checkpoint is scored.
    """
    run = Run.open(run_dir)
    ckpts = run.checkpoints()
    if not ckpts:
        raise ValueError(f"{run_dir}: the run has no checkpoints to select from")
    if every is not None:
        if every < 1:
            raise ValueError(f"--every must be ≥ 1, got {every}")
        last = max(ckpts)
        ckpts = {e: p for e, p in ckpts.items() if e % every == 0 or e == last}
    scorer = Scorer(cfg)  # fails here, before any work, when weights are missing
    pairs = read_pairs(dataset or run.cfg.dataset, "val", cfg.n_selection_pairs, cfg.seed)
    phases = list(run.cfg.phases)
    real, pre, cases = pairs.pooled(phases)
    box, skip = pooled_boxes(pairs, phases, cfg), same_only(cfg)
    if _reusable(scores, phases, cfg, ckpts):
        log.info("reusing the sweep's scores of %d checkpoints", len(ckpts))
        baseline = scores["baseline"]
        scored = {e: scores["checkpoints"][str(e)] for e in ckpts}
    else:
        log.info("scoring %d checkpoints on %d validation pairs", len(ckpts), len(real))
        baseline = scorer.score(real, pre, real_key=("val",), case_ids=cases, box=box, skip=skip)
        scored = score_checkpoints(run, ckpts, scorer, pairs, phases, real, progress, box, skip)
    table = {str(e): flat(s) for e, s in scored.items()}
    same = S.population_same(table, cfg.same_metrics)
    scaled = S.scaled(table, cfg.same_metrics)
    chosen = int(S.select(same))
    metrics = [m for m in cfg.metrics if m in baseline] + [
        k for k in ("fid_img_split", "fid_rad_split") if k in baseline
    ]
    rows = [{"checkpoint": "real pre vs real post", "epoch": "", **baseline, "same": None}]
    for e, s in scored.items():
        rows.append(
            {
                "checkpoint": f"epoch {e}" + (" (selected)" if e == chosen else ""),
                "epoch": e,
                **s,
                "same": same[str(e)],
            }
        )
    report = Path(run_dir) / "report"
    left = cfg.left_out
    title = (
        f"Table 1 — validation split, {len(real)} pairs; SAMe over {', '.join(cfg.same_metrics)}"
        + (f"; not computed: {', '.join(left)}" if left else "")
    )
    files = list(write_table(rows, ["checkpoint"], [*metrics, "same"], report / "table1", title))
    files.append(
        same_bar_chart(
            {f"{k}": v for k, v in scaled.items()},
            same,
            str(chosen),
            report / "same_bars.png",
        )
    )
    record = {
        "selected_epoch": chosen,
        "checkpoint": str(ckpts[chosen]),
        "same": {str(k): v for k, v in same.items()},
        "same_metrics": list(cfg.same_metrics),
        "not_computed": left,
        "pairs": len(real),
        "baseline": flat(baseline),
        "metrics": table,
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_text(Path(run_dir) / SELECTION, json.dumps(record, indent=1, default=str))
    files.append(Path(run_dir) / SELECTION)
    return Selection(chosen, ckpts[chosen], {int(k): v for k, v in same.items()}, rows, files)
