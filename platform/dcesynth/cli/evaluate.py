"""`dcectl select RUN`, `dcectl synthesize RUN`, `dcectl evaluate RUN`: judging a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri

Config = Annotated[Path | None, typer.Option("--config", help="EvalConfig YAML.")]
Overrides = Annotated[
    list[str] | None, typer.Argument(help="key=value, e.g. metrics=[mae,mse,ssim]")
]
Pairs = Annotated[int | None, typer.Option(help="At most this many slice pairs.")]
Device = Annotated[str | None, typer.Option(help="auto, cpu or cuda.")]
WeightsDir = Annotated[Path | None, typer.Option(help="Where pretrained weights live.")]
Dataset = Annotated[Path | None, typer.Option(help="Prepared dataset, if it moved.")]
NoWeights = Annotated[
    bool,
    typer.Option(
        "--no-pretrained",
        help="Leave out LPIPS and both FIDs (no pretrained weights here); reports say so.",
    ),
]


def _config(config, overrides, pairs, device, weights_dir, no_pretrained):
    from dcesynth.config import build_config, parse_overrides
    from dcesynth.evaluation.config import NO_WEIGHTS, EvalConfig

    flags = {
        "pairs": pairs,
        "device": device,
        "weights_dir": str(weights_dir) if weights_dir else None,
    }
    base = dict(NO_WEIGHTS) if no_pretrained else {}
    extra = parse_overrides(overrides or [])
    return build_config(
        EvalConfig, config, {**base, **extra, **{k: v for k, v in flags.items() if v is not None}}
    )


def select(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    overrides: Overrides = None,
    every: Annotated[int | None, typer.Option(help="Only epochs divisible by this.")] = None,
    pairs: Pairs = None,
    config: Config = None,
    device: Device = None,
    weights_dir: WeightsDir = None,
    dataset: Dataset = None,
    no_pretrained: NoWeights = False,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Score a run's checkpoints on the validation split; pick the lowest SAMe (Table 1)."""
    from dcesynth.evaluation.select import select_checkpoint

    with user_errors():
        cfg = _config(config, overrides, pairs, device, weights_dir, no_pretrained)
        with run_tracker("select", run, cfg, tracking_uri, no_tracking) as t:
            res = select_checkpoint(run, cfg, every=every, dataset=dataset)
            log_selection(t, res, run)
    for e, s in res.same.items():
        typer.echo(f"epoch {e:4d}  SAMe {s:.4f}{'  ← selected' if e == res.selected_epoch else ''}")
    typer.echo(f"selected: {res.checkpoint}")
    typer.echo("wrote: " + ", ".join(str(p) for p in res.files))


def synthesize(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    checkpoint: Annotated[str, typer.Option(help="best, last or an epoch.")] = "best",
    split: Annotated[
        str, typer.Option(help="Which cases: a split, or several (train,val,test).")
    ] = "test",
    batch: Annotated[int, typer.Option(help="Slices per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dataset: Dataset = None,
    actors: Annotated[int, typer.Option(help="Generator actors (GPUs with cuda).")] = 1,
) -> None:
    """Translate every slice of every case of a split into NIfTI volumes (+ subtractions)."""
    from dcesynth.evaluation.config import EvalConfig
    from dcesynth.evaluation.synthesize import synthesize as run_synthesis

    with user_errors():
        dev = EvalConfig(device=device).torch_device()
        for one in [s.strip() for s in split.split(",") if s.strip()]:
            res = run_synthesis(run, checkpoint, one, dataset, dev, batch, actors=actors)
            typer.echo(
                f"{len(res.cases)} cases, {res.slices} slices (checkpoint epoch {res.epoch})"
                f" → {res.out}"
            )


def evaluate(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    overrides: Overrides = None,
    checkpoint: Annotated[str, typer.Option(help="best, last or an epoch.")] = "best",
    split: Annotated[str, typer.Option(help="Held-out split.")] = "test",
    pairs: Pairs = None,
    config: Config = None,
    device: Device = None,
    weights_dir: WeightsDir = None,
    dataset: Dataset = None,
    truth: Annotated[
        Path | None, typer.Option(help="Phantom ground_truth/ folder: curve-type truth.")
    ] = None,
    salt: Annotated[str, typer.Option(help="Pseudonym salt used by ingest.")] = "dcesynth",
    no_pretrained: NoWeights = False,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Tables 2/4, montages and kinetics of a checkpoint on a split; one Markdown report."""
    from dcesynth.evaluation.report import evaluate as run_evaluation

    with user_errors():
        cfg = _config(config, overrides, pairs, device, weights_dir, no_pretrained)
        with run_tracker("evaluate", run, cfg, tracking_uri, no_tracking, truth) as t:
            res = run_evaluation(run, cfg, checkpoint, split, dataset, truth, salt)
            log_evaluation(t, res)
    typer.echo(f"report: {res.report / 'report.md'}")


def run_tracker(kind, run, cfg, uri=None, off=False, truth=None, parent=None):
    """The MLflow run of a command on a training run: in the store of the run folder's parent
    (as `dcectl train` logs), with the run's own ``tracking`` settings.

    Args:
        kind: select, evaluate or trust.
        run: the training run's folder.
        cfg: the command's resolved config (logged as params).
        uri, off: ``--tracking-uri``, ``--no-tracking``.
        truth: the phantom's ground_truth/ folder (its fingerprint becomes a tag).
        parent: a run to nest under (dcectl study, demo).
    """
    from dcesynth.tracking import TrackingConfig, fingerprints, track
    from dcesynth.training.run import load_run_config

    run = Path(run).resolve()
    try:
        train_cfg = load_run_config(run)
        settings, dataset = train_cfg.tracking, train_cfg.dataset
    except ValueError:  # not a run: the command itself says so
        settings, dataset = TrackingConfig(), None
    tags = {**fingerprints(dataset, Path(truth).parent if truth else None), "run_dir": str(run)}
    return track(
        kind,
        run.name,
        cfg,
        run.parent,
        uri=uri,
        settings=settings,
        off=off,
        parent=parent,
        tags=tags,
    )


def log_selection(t, res, run: Path) -> None:
    """Table 1 into MLflow: SAMe per epoch (step = epoch), the selected epoch, the table's
    CSV and Markdown, the SAMe bars and selection.json."""
    for epoch, same in res.same.items():
        t.metrics({"same": same}, step=epoch)
    t.metrics({"selected_epoch": res.selected_epoch})
    t.table(Path(run) / "report" / "table1.csv", ["checkpoint"], "table1")
    t.artifacts(f for f in res.files if Path(f).suffix != ".csv")


def log_evaluation(t, res) -> None:
    """Table 2 (one phase) or Table 4 (joint phases) as metrics and CSV; the montages, the
    report and every other file of the evaluation as artefacts."""
    phases = {r.get("phase") for r in res.rows}
    table = "table2" if len(phases) <= 1 else "table4"
    t.table(res.report / "table2.csv", ["phase", "comparison"], table)
    t.artifacts(f for f in res.files if Path(f).suffix != ".csv")  # report.md among them
