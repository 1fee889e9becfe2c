"""Sweep pieces that need no Ray: when a resumed trial has nothing left to train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcesynth.tuning.sweep import _finished_report


def _run(tmp: Path, rows: list[dict], ckpts: list[int]) -> Path:
    run = tmp / "trial_x"
    for e in ckpts:
        d = run / "checkpoints" / f"epoch_{e:03d}"
        d.mkdir(parents=True)
        (d / "state.pt").write_bytes(b"x")
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.mark.parametrize(
    ("rows", "ckpts", "expected"),
    [
        # training ended, Tune never heard the last epoch: report it from the run
        ([{"epoch": 1, "a": 3.0}, {"epoch": 2, "a": 2.0}], [1, 2], {"epoch": 2, "a": 2.0}),
        # killed between the metrics line and the final checkpoint: train epoch 2 again
        ([{"epoch": 1, "a": 3.0}, {"epoch": 2, "a": 2.0}], [1], None),
        # not finished yet
        ([{"epoch": 1, "a": 3.0}], [1], None),
        # stopped on a NaN loss: not a finished run
        ([{"epoch": 1, "a": 3.0}, {"epoch": 2, "stopped": "nan"}], [1], None),
        # nothing at all
        ([], [], None),
    ],
)
def test_finished_report(tmp_path: Path, rows: list[dict], ckpts: list[int], expected) -> None:
    assert _finished_report(_run(tmp_path, rows, ckpts), epochs=2) == expected
