"""Turn the library's input errors into a clean CLI message and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

err_console = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """ValueError (ConfigError, PhantomError, …) → message on stderr, exit 2, no traceback."""
    try:
        yield
    except ValueError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from None
