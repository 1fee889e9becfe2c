"""`dcectl trust RUN [key=value …]`: the trust dimensions of a run's checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri


def trust(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="TrustConfig key=value (e.g. members=4).")
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best, last or an epoch.")] = "best",
    split: Annotated[str, typer.Option(help="The held-out split.")] = "test",
    truth: Annotated[Path | None, typer.Option(help="The phantom's ground_truth/ folder.")] = None,
    clinical: Annotated[
        Path | None, typer.Option(help="Clinical CSV with `Patient ID` (strata).")
    ] = None,
    no_pretrained: Annotated[
        bool, typer.Option("--no-pretrained", help="Pixel space only (no weights needed).")
    ] = False,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Privacy, fairness, diversity, uncertainty and kinetic biomarkers; a report section."""
    from dcesynth.cli.evaluate import run_tracker
    from dcesynth.config import build_config, parse_overrides
    from dcesynth.trust.config import TrustConfig
    from dcesynth.trust.run import trust as run_trust

    with user_errors():
        flags = {
            "checkpoint": checkpoint,
            "split": split,
            "truth": str(truth) if truth else None,
            "clinical": str(clinical) if clinical else None,
            "features": "pixels" if no_pretrained else None,
        }
        cfg = build_config(
            TrustConfig,
            None,
            {**parse_overrides(overrides or []), **{k: v for k, v in flags.items() if v}},
        )
        with run_tracker("trust", run, cfg, tracking_uri, no_tracking, cfg.truth) as t:
            res = run_trust(run, cfg)
            log_trust(t, res)
    typer.echo(
        f"trust: {res.folder / 'trust.md'} (also a section of {run / 'report' / 'report.md'})"
    )


def log_trust(t, res) -> None:
    """The trust record's numbers as metrics (``trust.<dimension>.…``), its report, record and
    figures as artefacts."""
    t.metrics({k: v for k, v in res.record.items() if k != "config"}, prefix="trust")
    t.artifact(res.folder, "trust")
