"""`dcectl study`: the study's whole set of results on a larger phantom cohort, in one report.

phantom → ingest → a single-phase run (phase 1) and a joint run (phases 1–3) with Ray Train →
for each: checkpoint selection by SAMe over epochs (Table 1), synthesis, evaluation (Table 2 for
phase 1, Table 4 for the joint phases; kinetics against the phantom's truth, Figures 7/8;
the trust dimensions, `dcectl trust`) → the segmentation study on the phase-1 run's synthetic
volumes (Table 3) → ``report.md``.

Each stage reuses what a previous invocation finished (runs resume, the segmentation study
resumes), so an interrupted study continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import Field

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri
from dcesynth.config import StrictModel
from dcesynth.tracking import TrackingConfig


class StudyPreset(StrictModel):
    """The preset's stages; each section is that stage's own config (its keys, its checks)."""

    out: Path = Path("study_out")
    phantom: dict[str, Any] = Field(default_factory=dict, description="PhantomConfig keys")
    ingest: dict[str, Any] = Field(default_factory=dict, description="IngestConfig keys")
    phase1: dict[str, Any] = Field(default_factory=dict, description="TrainConfig keys")
    joint: dict[str, Any] = Field(default_factory=dict, description="TrainConfig keys")
    flow: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainConfig keys of a second generator family's phase-1 run (e.g. "
        "model.family rectified_flow), reported beside phase1 in Table 2; empty: skipped",
    )
    evaluation: dict[str, Any] = Field(default_factory=dict, description="EvalConfig keys")
    segmentation: dict[str, Any] = Field(default_factory=dict, description="SegmentConfig keys")
    trust: dict[str, Any] = Field(default_factory=dict, description="TrustConfig keys")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="MLflow: one run for the study, each stage nested (docs/tracking.md)",
    )


def _configs(p: StudyPreset) -> dict:
    """Every section validated by its own model before any work (errors name the section)."""
    from dcesynth.config import ConfigError, format_validation_error
    from dcesynth.data.ingest import IngestConfig
    from dcesynth.data.phantom import PhantomConfig
    from dcesynth.evaluation.config import EvalConfig
    from dcesynth.segmentation.config import SegmentConfig
    from dcesynth.training.config import TrainConfig
    from dcesynth.trust.config import TrustConfig

    out = p.out.resolve()
    fixed = {
        "phantom": (PhantomConfig, {}),
        "ingest": (IngestConfig, {}),
        "phase1": (
            TrainConfig,
            {"dataset": out / "dataset", "runs_dir": out / "runs", "name": "phase1"},
        ),
        "joint": (
            TrainConfig,
            {"dataset": out / "dataset", "runs_dir": out / "runs", "name": "joint"},
        ),
        "flow": (
            TrainConfig,
            {"dataset": out / "dataset", "runs_dir": out / "runs", "name": "flow"},
        ),
        "evaluation": (EvalConfig, {}),
        "segmentation": (
            SegmentConfig,
            {
                "dataset": out / "dataset",
                "out": out,
                "synthetic": out / "runs" / "phase1",
                "name": "segmentation",
            },
        ),
        "trust": (
            TrustConfig,
            {
                "truth": out / "phantom" / "ground_truth",
                "clinical": out / "phantom" / "clinical.csv",
            },
        ),
    }
    models = {}
    if not p.flow:
        del fixed["flow"]
    for key, (cls, extra) in fixed.items():
        try:
            models[key] = cls.model_validate({**getattr(p, key), **extra})
        except Exception as e:
            msg = format_validation_error(e, cls, None) if hasattr(e, "errors") else str(e)
            raise ConfigError(f"study preset section `{key}`:\n{msg}") from None
    return models


def _train(cfg, step, tracker=None) -> Path:
    from dcesynth.tracking import Tracker
    from dcesynth.training.run import checkpoint_dirs, train

    run = Path(cfg.runs_dir) / cfg.name
    done = [d for d in checkpoint_dirs(run) if d.name == f"epoch_{cfg.epochs:03d}"]
    t = (tracker or Tracker(None)).child("train", cfg.name, cfg)
    if done:
        step(f"train {cfg.name}: complete; reusing it")
        t.train_run(run)
        t.close()
        return run
    # an earlier invocation's run folder, even one stopped before its first checkpoint (then
    # training starts from scratch in it): a fresh train() would refuse the existing folder
    resume = run.is_dir() and any(run.iterdir())
    step(
        f"train {cfg.name}: phases {list(cfg.phases)}, {cfg.epochs} epochs"
        + (" (resuming)" if checkpoint_dirs(run) else "")
    )
    with t:
        train(cfg, resume=resume, on_epoch=t.epoch)
        t.train_run(run)
    return run


def _cohort(pcfg, icfg, root: Path, step) -> None:
    """The phantom cohort and its ingested dataset under ``root`` (both resume)."""
    from dcesynth.data.ingest import ingest
    from dcesynth.data.phantom import generate_cohort

    step(f"phantom: {pcfg.cases} cases → {root / 'phantom'}")
    generate_cohort(pcfg, root / "phantom", workers=2)
    ingest(root / "phantom" / "dicom", root / "dataset", icfg, workers=2)
    step(f"ingest: {root / 'dataset'}")


def _judge(run: Path, ecfg, truth: Path, splits: tuple[str, ...], step, tracker=None):
    from dcesynth.cli.evaluate import log_evaluation, log_selection, run_tracker
    from dcesynth.evaluation.report import evaluate
    from dcesynth.evaluation.select import select_checkpoint
    from dcesynth.evaluation.synthesize import synthesize

    with run_tracker("select", run, ecfg, parent=tracker, off=tracker is None) as t:
        sel = select_checkpoint(run, ecfg)
        log_selection(t, sel, run)
    step(f"select {run.name}: epoch {sel.selected_epoch} by SAMe (Table 1)")
    for split in splits:
        synthesize(run, "best", split, device=ecfg.torch_device())
    with run_tracker("evaluate", run, ecfg, truth=truth, parent=tracker, off=tracker is None) as t:
        ev = evaluate(run, ecfg, "best", "test", truth=truth)
        log_evaluation(t, ev)
    step(f"evaluate {run.name}: {ev.report / 'report.md'}")
    return ev


def study(
    config: Annotated[Path, typer.Argument(help="Study preset YAML.")] = Path(
        "jobs/configs/study_phantom.yaml"
    ),
    out: Annotated[Path | None, typer.Option(help="Output folder (overrides the file).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (e.g. auto).")] = None,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """The study's Tables 1–4 and Figures 7/8 on a phantom cohort in one report (2 cores: ~3 h)."""
    import os
    import time

    from dcesynth.cli.demo import stepped_console
    from dcesynth.cli.segment import run_tracked
    from dcesynth.cli.trust import log_trust
    from dcesynth.cluster import init_ray
    from dcesynth.config import build_config
    from dcesynth.tracking import fingerprints, track
    from dcesynth.trust.run import trust as run_trust

    console, step, t0 = stepped_console()
    with user_errors():
        preset = build_config(StudyPreset, config, {"out": str(out) if out else None})
        cfg = _configs(preset)
        root = preset.out.resolve()
        # logical CPUs for the Train worker and Ray Data's tasks beside it (see training.run)
        init_ray(address, num_cpus=(os.cpu_count() or 1) + 2, log_to_driver=False)
        # MLflow: one run for the study in <out>/mlflow.db, each stage a nested run
        with track(
            "study",
            root.name,
            preset,
            root,
            uri=tracking_uri,
            settings=preset.tracking,
            off=no_tracking,
        ) as mt:
            _cohort(cfg["phantom"], cfg["ingest"], root, step)
            mt.tags(fingerprints(root / "dataset", root / "phantom"))
            truth = root / "phantom" / "ground_truth"
            timings = {}
            runs = [("phase1", ("train", "val", "test")), ("joint", ("test",))]
            runs += [("flow", ("test",))] if "flow" in cfg else []
            for key, splits in runs:
                t = time.perf_counter()
                run = _train(cfg[key], step, mt)
                _judge(run, cfg["evaluation"], truth, splits, step, mt)
                with mt.child("trust", run.name, cfg["trust"]) as tt:
                    log_trust(tt, run_trust(run, cfg["trust"]))
                step(f"trust {run.name}: {run / 'report' / 'trust' / 'trust.md'}")
                timings[key] = time.perf_counter() - t
            # a readable report before the longest stage: Tables 1, 2 and 4 (Table 3 pending)
            _report(root, None, timings, time.perf_counter() - t0)
            step(f"report (Table 3 pending): {root / 'report.md'}")
            seg = cfg["segmentation"]
            t = time.perf_counter()
            res = run_tracked(seg, step, mt)
            timings["segmentation"] = time.perf_counter() - t
            report = _report(root, res, timings, time.perf_counter() - t0)
            mt.metrics({f"minutes.{k}": v / 60 for k, v in timings.items()})
            mt.artifact(report)
    console.print(f"study finished in {time.perf_counter() - t0:.0f} s; report: {report}")


def _report(root: Path, seg, timings: dict, total: float) -> Path:
    """One page: the runs' evaluation reports, Table 3 (``seg`` None: not run yet) and the wall
    times."""
    import re

    from dcesynth.config import atomic_write_text

    parts = [
        "# The study on the digital phantom\n",
        f"Wall time {total / 60:.1f} min on this machine: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
        + ".\n",
    ]
    sections = [
        ("phase1", "Single phase (Tables 1 and 2)"),
        ("joint", "Joint phases 1–3 (Tables 1 and 4)"),
    ]
    if (root / "runs" / "flow" / "report" / "report.md").is_file():
        sections.append(("flow", "Second generator family, phase 1 (Tables 1 and 2)"))
        parts += ["\n# Generator families side by side (Table 2, phase 1, test split)\n",
                  families_table(root / "runs", ["phase1", "flow"])]  # fmt: skip
    for name, title in sections:
        md = (root / "runs" / name / "report" / "report.md").read_text()
        md = re.sub(
            r"<!-- section:segmentation -->.*?<!-- /section:segmentation -->", "", md, flags=re.S
        )  # Table 3 comes once, below
        md = md.replace("](", f"](runs/{name}/report/").replace("# Evaluation", "## Evaluation")
        parts += [f"\n# {title}\n", md]
    if seg is None:
        parts += ["\n# Segmentation (Table 3)\n", "Not run yet: the study is still running or "
                  "stopped before it; `dcectl study` again resumes it.\n"]  # fmt: skip
    else:
        parts += [
            "\n# Segmentation (Table 3)\n",
            (seg.path / "results" / "table3.md").read_text(),
            "\n![Table 3](segmentation/results/table3.png)\n",
        ]
    atomic_write_text(root / "report.md", "\n".join(parts))
    return root / "report.md"


# Table 2's columns for the families' comparison: (evaluation row, metric) of phase 1
SYN = "synthetic vs real"
BOX = "tumour box: synthetic vs real"
BASE, BASE_BOX = "baseline: real pre vs real post", "tumour box: baseline pre vs post"
CELLS = (("mae", False), ("ssim", False), ("psnr", False), ("mae", True), ("ssim", True))


def _cells(rows: dict, whole: str, box: str) -> str:
    out = []
    for metric, in_box in CELLS:
        v = rows.get(box if in_box else whole, {}).get(metric)
        out.append(f"{v['mean']:.4g}" if isinstance(v, dict) else "–")
    return " | ".join(out)


def families_table(runs: Path, names: list[str]) -> str:
    """Markdown: each run's phase-1 synthetic-vs-real row, whole slice and tumour box, with
    its family and sampling cost (synthesis of the test split), and the copy-pre baseline."""
    import json

    lines = [
        "| run | family | NFE / slice | s / slice | MAE ↓ | SSIM ↑ | PSNR ↑ | box MAE ↓ "
        "| box SSIM ↑ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict = {}
    for name in names:
        ev = json.loads((runs / name / "report" / "evaluation.json").read_text())
        rows = {r["comparison"]: r for r in ev["rows"] if r.get("phase") == 1}
        syn = json.loads((runs / name / "synthetic" / "test" / "synthesis.json").read_text())
        cost = syn.get("sampling", {})
        s_slice = f"{cost['s_per_slice']:.3f}" if "s_per_slice" in cost else "–"
        lines.append(
            f"| {name} | {_family(runs / name)} | {cost.get('nfe_per_slice', '–')} | {s_slice} "
            f"| {_cells(rows, SYN, BOX)} |"
        )
        base = base or rows
    lines.append(f"| copy pre-contrast (baseline) | – | 0 | – | {_cells(base, BASE, BASE_BOX)} |")
    return "\n".join(lines) + (
        "\n\nNFE: network evaluations per slice; s / slice: wall time of the test split's "
        "synthesis on this machine, pipeline start-up included.\n"
    )


def _family(run: Path) -> str:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return (cfg.get("model") or {}).get("family", "pix2pixhd")
