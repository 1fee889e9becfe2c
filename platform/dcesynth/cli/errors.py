"""Turn the library's input errors into a clean CLI message and exit code 2, and errors of the
machine (a full disk, an I/O error, a refused permission) into one line and exit code 1.

The traceback of an error of the machine is shown with ``dcectl --verbose …`` (or
``DCESYNTH_VERBOSE=1``); an input error never needs one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

err_console = Console(stderr=True)

VERBOSE = {"on": os.environ.get("DCESYNTH_VERBOSE", "") not in ("", "0")}  # `dcectl --verbose`


def os_error_line(e: OSError) -> str:
    """One line for an error of the machine: the command's own when it wrote one (a
    ``MachineError``), else what failed, the path and, for a full disk, the free space."""
    from dcesynth.durable import MachineError, describe_os_error, os_error_of

    if isinstance(e, MachineError):
        return str(e)
    inner = os_error_of(e)
    if isinstance(inner, MachineError):
        return str(inner)
    return describe_os_error(inner or e)


@contextmanager
def user_errors() -> Iterator[None]:
    """ValueError (ConfigError, PhantomError, FolderLocked, …) → message on stderr, exit 2, no
    traceback; OSError → one line naming the path, exit 1 (traceback with --verbose)."""
    try:
        yield
    except ValueError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except OSError as e:
        if VERBOSE["on"]:
            err_console.print_exception()
        hint = "" if VERBOSE["on"] else " (dcectl --verbose shows the traceback)"
        err_console.print(
            f"[bold red]error:[/] {os_error_line(e)}{hint}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        raise typer.Exit(code=1) from None
