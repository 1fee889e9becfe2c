"""Progress off a terminal: periodic one-line log records, always the last one."""

from __future__ import annotations

import logging

import pytest

from dcesynth.progress import LineProgress, progress_bar


def test_every_step_logged_when_the_interval_is_zero(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dcesynth.progress")
    p = LineProgress(4, "ingest cases", interval=0.0)
    for _ in range(4):
        p()
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 4
    assert msgs[0].startswith("ingest cases: 1/4 (25 %), ") and "s left" in msgs[0]
    assert msgs[-1].startswith("ingest cases: 4/4 (100 %), ") and "left" not in msgs[-1]


def test_a_long_interval_logs_only_the_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dcesynth.progress")
    with progress_bar(10, "phantom cases", enabled=False) as advance:
        for _ in range(10):
            advance()
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and msgs[0].startswith("phantom cases: 10/10 (100 %)")
