"""Progress of long work: a rich bar in a terminal, periodic one-line log records elsewhere.

A CI log, ``nohup`` output or a Ray job's log has no terminal: a bar would be invisible there
(or garbage), so the same progress goes to the ``dcesynth.progress`` logger as lines like
``ingest cases: 12/40 (30 %), 41 s, about 95 s left`` — at most one every ``interval`` seconds,
and always the last one.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

log = logging.getLogger("dcesynth.progress")
LOG_INTERVAL_S = 10.0


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class LineProgress:
    """``advance(n)``: logs a line when ``interval`` s passed since the last one, and at the end."""

    def __init__(self, total: int, description: str, interval: float = LOG_INTERVAL_S) -> None:
        self.total, self.description, self.interval = total, description, interval
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.description}: {self.done}/{self.total} ({pct:.0f} %), {elapsed:.0f} s"
        if 0 < self.done < self.total:
            text += f", about {elapsed * (self.total - self.done) / self.done:.0f} s left"
        return text

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line())


@contextmanager
def progress_bar(total: int, description: str, enabled: bool | None = None) -> Iterator:
    """Yields ``advance(n=1)``: a rich bar when ``enabled`` (default: in a terminal), else
    periodic log lines (:class:`LineProgress`)."""
    show = interactive() if enabled is None else enabled
    if not show:
        yield LineProgress(total, description)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
