"""`dcectl segment CONFIG.yaml [key=value …]`, `--resume DIR` and `dcectl segment status DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri


def segment(
    target: Annotated[
        str | None,
        typer.Argument(help="SegmentConfig YAML (jobs/configs/segment_*.yaml), or `status`."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="key=value (e.g. folds=2 sets=[A,B]); with `status`: the study folder."
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this study folder; finished folds are kept.")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, host:6379 (default: local).")
    ] = None,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """The segmentation study (Table 3): nnU-Net folds per training set as Ray tasks."""
    from dcesynth.config import ConfigError, build_config, parse_overrides
    from dcesynth.segmentation.config import SegmentConfig

    if target == "status":
        with user_errors():
            if len(overrides or []) != 1:
                raise ConfigError("usage: dcectl segment status STUDY_DIR")
            _print_status(Path(overrides[0]))
        return
    from dcesynth.segmentation.run import run_study
    from dcesynth.tracking import fingerprints, track

    with user_errors():
        if resume is not None:
            if target is not None or overrides:
                raise ConfigError(
                    "--resume takes the study's saved config.yaml; give no other settings"
                )
            cfg = build_config(SegmentConfig, resume / "config.yaml")
            if cfg.study_dir.resolve() != resume.resolve():
                raise ConfigError(
                    f"{resume}/config.yaml describes the study {cfg.study_dir}, not {resume}"
                )
        elif target is None:
            raise ConfigError(
                "usage: dcectl segment CONFIG.yaml [key=value …] | --resume DIR | status DIR"
            )
        else:
            cfg = build_config(SegmentConfig, target, parse_overrides(overrides or []))
        # MLflow: the store of the study folder's parent (the config's `out`)
        with track(
            "segment",
            cfg.name,
            cfg,
            cfg.out,
            uri=tracking_uri,
            settings=cfg.tracking,
            off=no_tracking,
            tags=fingerprints(cfg.dataset),
        ) as t:
            res = run_study(cfg, resume=resume is not None, address=address)
            log_segmentation(t, res)
    _print_status(res.path)
    out = res.path / "results"
    typer.echo(f"table: {out / 'table3.md'}; figure: {out / 'table3.png'}")
    if res.failures:
        raise typer.Exit(code=1)


def _print_status(folder: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from dcesynth.segmentation.status import study_status

    st = study_status(folder)
    con = Console(width=160)
    con.print(
        f"[bold]study {st['name']}[/]: {st['prepared']}/{st['cases']} cases prepared; "
        f"{st['folds_done']}/{st['folds_total']} folds trained; "
        f"{st['predictions_done']}/{st['predictions_total']} predictions; "
        + ("results written" if st["results"] else "no results yet")
    )
    table = Table(title="training sets")
    for col in ("set", "plan", "folds", "predictions"):
        table.add_column(col)
    for s in st["sets"]:
        table.add_row(s["set"], s["plan"], s["folds"], s["predictions"])
    con.print(table)
    if st["table3"]:
        con.print(st["table3"])


def run_tracked(cfg, step, tracker, where: str = ""):
    """Run the segmentation study ``cfg`` (resumed when its folder holds one) as a child run
    of ``tracker``, announcing it with ``step``: the demo's and the study's last stage.

    Args:
        cfg: the resolved SegmentConfig.
        step: prints a timed progress line.
        tracker: the parent MLflow run (``dcesynth.tracking``).
        where: appended to the progress line (e.g. `` of nnU-Net → <folder>``).
    """
    from dcesynth.segmentation.run import run_study

    resume = (cfg.study_dir / "study.json").is_file()
    step(
        f"segment: scenarios {list(cfg.scenarios)}, sets {''.join(cfg.training_sets())}, "
        f"{cfg.folds} folds{where}" + (" (resuming)" if resume else "")
    )
    with tracker.child("segment", cfg.name, cfg) as t:
        res = run_study(cfg, resume=resume)
        log_segmentation(t, res)
    return res


def log_segmentation(t, res) -> None:
    """Table 3 as metrics (``table3.<scenario>.<set>.<test>.mean``…) and CSV; its Markdown,
    figure and per-case Dice as artefacts."""
    out = res.path / "results"
    t.table(out / "table3.csv", ["scenario", "set", "test"], "table3")
    t.artifacts(out / f for f in ("table3.md", "table3.png", "dice_per_case.csv", "tasks.json"))
    t.metrics({"failed_tasks": len(res.failures)})
