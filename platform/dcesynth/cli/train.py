"""`dcectl train CONFIG.yaml [key=value …]` and `dcectl train --resume RUN`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri


def train(
    config: Annotated[
        Path | None, typer.Argument(help="TrainConfig YAML (see jobs/configs/).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value, e.g. loss.lambda_fm=5")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Prepared dataset (from dcectl ingest).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers.")] = None,
    gpus: Annotated[bool, typer.Option("--gpus", help="One GPU per worker.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Resume this run directory.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto).")] = None,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Train pix2pixHD with Ray Train; writes config.yaml, checkpoints, metrics and plots."""
    from dcesynth.config import ConfigError, build_config, parse_overrides
    from dcesynth.tracking import fingerprints, track
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.run import TrainingError, load_run_config
    from dcesynth.training.run import train as run_train

    with user_errors():
        if resume is not None:
            if config is not None or overrides or dataset or workers or gpus:
                raise ConfigError(
                    "--resume takes the run's saved config.yaml; give no other settings"
                )
            cfg = load_run_config(resume)
        else:
            extra = parse_overrides(overrides or [])
            flags = {
                "dataset": str(dataset) if dataset else None,
                "workers": workers,
                "use_gpu": True if gpus else None,
            }
            # unset flags must not hide a key=value override of the same key
            cfg = build_config(
                TrainConfig, config, {**extra, **{k: v for k, v in flags.items() if v is not None}}
            )
        run_dir = Path(cfg.runs_dir) / cfg.name
        # MLflow: the store of the run folder's parent (sqlite:///<runs_dir>/mlflow.db)
        with track(
            "train",
            cfg.name,
            cfg,
            cfg.runs_dir,
            uri=tracking_uri,
            settings=cfg.tracking,
            off=no_tracking,
            tags=fingerprints(cfg.dataset),
        ) as t:
            try:
                res = run_train(cfg, resume=resume is not None, address=address, on_epoch=t.epoch)
            except TrainingError as e:
                t.train_run(run_dir)  # the epochs before the NaN, config, metrics
                raise ValueError(str(e)) from None
            t.train_run(run_dir)
    last = res.metrics[-1]
    typer.echo(
        f"{res.run_dir}: {res.epochs_done}/{cfg.epochs} epochs; last: "
        + ", ".join(
            f"{k} {last[k]:.4g}" for k in ("loss_g", "loss_d", "val_mae", "val_ssim") if k in last
        )
    )
    typer.echo(
        f"checkpoints: {res.run_dir / 'checkpoints'}; loss curve: {res.run_dir / 'loss_curve.png'}"
    )
