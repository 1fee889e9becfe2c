"""`dcectl cluster check FILE…`: cluster.yaml and KubeRay manifests, checked offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import err_console, user_errors

app = typer.Typer(
    help="Cluster files: check them before `ray up` or `kubectl apply`.", no_args_is_help=True
)


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="cluster.yaml and/or KubeRay manifests.")],
) -> None:
    """Ray's own schema and config preparation, plus what it does not check (docs/cluster.md)."""
    from dcesynth.deploy.check import check_file

    failed = False
    with user_errors():
        results = [check_file(f) for f in files]
    for r in results:
        if r.ok:
            typer.echo(f"{r.path}: ok ({r.kind})")
        else:
            failed = True
            err_console.print(
                f"[bold red]{r.path}: {len(r.errors)} problem(s)[/] ({r.kind})", highlight=False
            )
            for e in r.errors:
                err_console.print(f"  {e}", highlight=False, markup=False, soft_wrap=True)
        for p in r.placeholders:
            typer.echo(f"  to fill in: {p}")
    if failed:
        raise typer.Exit(code=2)
