"""`dcectl weights status|add`: the pretrained files the platform can use, and installing one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors

app = typer.Typer(help="Pretrained weights: what is present, and installing a file.")

WeightsDir = Annotated[
    Path | None, typer.Option(help="Where to look (default ~/.cache/dcesynth/weights).")
]


@app.command("status")
def status(weights_dir: WeightsDir = None) -> None:
    """List every registered weights file, where it is looked for and whether it is usable."""
    from rich.console import Console
    from rich.table import Table

    from dcesynth import weights as W

    table = Table(title=f"weights in {weights_dir or W.DEFAULT_WEIGHTS_DIR}")
    for col in ("name", "state", "used by", "file", "source"):
        table.add_column(col, overflow="fold")
    with user_errors():
        rows = W.status(weights_dir)
    for r in rows:
        color = "green" if r["state"].startswith("ok") else "red"
        table.add_row(r["name"], f"[{color}]{r['state']}[/]", r["used_by"], r["file"], r["source"])
    Console(width=200).print(table)


@app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="The downloaded weights file.")],
    name: Annotated[
        str | None, typer.Option(help="Registry name (default: recognised by its checksum).")
    ] = None,
    weights_dir: WeightsDir = None,
) -> None:
    """Verify FILE's checksum and install it where the platform looks."""
    from dcesynth import weights as W

    with user_errors():
        entry, dest = W.add(file, name, weights_dir)
    typer.echo(f"{entry}: installed {dest}")
