"""`dcectl dataset …`: look into prepared datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors

app = typer.Typer(help="Inspect prepared datasets.", no_args_is_help=True)


@app.command("describe")
def describe(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Counts per split, slices per case, phases, image size, and the manifest."""
    from rich.console import Console
    from rich.table import Table

    from dcesynth.data.dataset import describe as run

    with user_errors():
        try:
            info = run(dataset)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    console = Console()
    t = Table(title=f"{dataset}: {info['image_size']}² slices, phases {info['phases']} (0 = pre)")
    for col in ("split", "cases", "slices", "tumour slices"):
        t.add_column(col, justify="right")
    for name, s in sorted(info["splits"].items()):
        t.add_row(name, str(s["cases"]), str(s["slices"]), str(s["tumour_slices"]))
    console.print(t)
    spc = info["slices_per_case"]
    console.print(
        f"slices per case: min {spc['min']}, median {spc['median']:g}, max {spc['max']}; "
        f"skipped cases: {info['skipped']}"
    )
    console.print_json(json.dumps(info["manifest"]))
