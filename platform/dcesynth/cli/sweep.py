"""`dcectl sweep FILE [--resume] [--address …]` and `dcectl sweep status DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.ui import NoTracking, TrackingUri


def sweep(
    target: Annotated[str, typer.Argument(help="Search-space YAML, or `status`.")],
    directory: Annotated[
        Path | None, typer.Argument(help="With `status`: the sweep folder.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted sweep.")] = False,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, ray://host:10001 (default: local).")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="key=value into the file, e.g. base.epochs=2, "
            "parameters.model.samples.values=[1,2] (repeatable).",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Search loss weights, phases, lr, ngf with Ray Tune + Optuna; rank checkpoints by SAMe."""
    if target == "status":
        with user_errors():
            if directory is None:
                raise ValueError("usage: dcectl sweep status SWEEP_DIR")
            _print_status(directory)
        return
    from dcesynth.tracking import fingerprints, track
    from dcesynth.tuning.space import load_space
    from dcesynth.tuning.sweep import sweep as run_sweep

    with user_errors():
        if directory is not None:
            raise ValueError(f"unexpected argument {directory}; did you mean `sweep status`?")
        space = load_space(Path(target), sets=sets or [])
        # MLflow: the sweep's storage_path holds the store; each trial a nested run
        with track(
            "sweep",
            space.name,
            space,
            space.storage_path,
            uri=tracking_uri,
            settings=space.base.tracking,
            off=no_tracking,
            tags=fingerprints(space.base.dataset),
        ) as t:
            res = run_sweep(space, resume=resume, address=address, tracker=t)
    _print_status(res.path)
    typer.echo(
        f"results: {res.path / 'sweep_results.csv'}; best config: "
        f"{res.path / 'best_config.yaml'}; table: {res.path / 'table1.md'}"
    )


def _print_status(directory: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from dcesynth.tuning.status import sweep_status

    st = sweep_status(directory)
    rows = st["trials"]
    title = f"sweep {st['name']}: " + ("finished" if st["finished"] else "not finished")
    if st["best"]:
        title += f"; best {st['best']}"
    table = Table(title=title)
    cols = list(rows[0]) if rows else ["trial"]
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in cols))
    Console(width=200).print(table)


def _cell(v) -> str:
    try:
        return f"{float(v):.4g}" if v not in (None, "") and not str(v).isdigit() else str(v or "")
    except (TypeError, ValueError):
        return str(v)
