"""`dcectl weights status|add|fetch`: the pretrained files the platform can use, installing one
by hand, and downloading those with an official URL and a published checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import err_console, user_errors

app = typer.Typer(help="Pretrained weights: what is present, installing or downloading a file.")

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


@app.command("fetch")
def fetch(
    name: Annotated[
        str | None, typer.Argument(help="Registry name (`dcectl weights status` lists them).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every entry; reports each one's outcome.")
    ] = False,
    weights_dir: WeightsDir = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            help="Download <MIRROR>/<file name> instead of each file's official URL "
            "(an http(s) copy of the releases, e.g. behind a firewall).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the connection and each read.")
    ] = 60.0,
) -> None:
    """Download NAME (or --all) from its official source, verify its checksum, install it.

    Nothing is installed unless its sha256 matches; a verified file is not downloaded again.

    RadImageNet files cannot be fetched: get them by hand, then `dcectl weights add`.

    Exit code 1 when a download failed or NAME cannot be fetched, 2 on bad input.
    """
    from rich.markup import escape

    from dcesynth import weights as W
    from dcesynth import weights_fetch as F

    with user_errors():
        if (name is None) == (not all_):
            raise ValueError("give one registry NAME or --all (not both)")
        if mirror is not None:
            F.check_mirror(mirror)
        if name is not None:
            W.spec(name)  # an unknown name is bad input (exit 2), not a failed download
    opts = {"base_url": mirror, "timeout": timeout}
    if name is not None:
        try:
            outcome = F.fetch(name, weights_dir, **opts)
        except W.WeightsError as e:  # NotFetchable included
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=1) from None
        typer.echo(f"{outcome.name}: {outcome.message}")
        return

    outcomes = F.fetch_all(weights_dir, **opts)
    labels = {
        "installed": "installed",
        "present": "already present",
        "manual": "install by hand",
        "failed": "FAILED",
    }
    for o in outcomes:
        typer.echo(f"{o.name}: {labels[o.state]}: {o.message}")
    counts = {label: sum(o.state == s for o in outcomes) for s, label in labels.items()}
    typer.echo("; ".join(f"{n} {label.lower()}" for label, n in counts.items()))
    failed = [o.name for o in outcomes if o.state == "failed"]
    if failed:
        err_console.print(
            f"[bold red]error:[/] {len(failed)} download(s) failed: {', '.join(failed)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
