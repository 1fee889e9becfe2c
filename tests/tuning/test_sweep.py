"""Sweep pieces that need no Ray: when a resumed trial has nothing left to train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcesynth.cluster import error_line
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


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, ""),
        ("ValueError: bad lr", "ValueError: bad lr"),
        # Ray's wrapping: the actor on the first line, the worker's exception at the end
        (
            "RayTaskError(WorkerGroupError): \x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
            '  File "loop.py", line 195, in train_loop_per_worker\n'
            "ray.train.WorkerGroupError: Training failed due to worker errors:\n"
            "[Rank 0 Error Snippet]:\n"
            "RuntimeError: injected persistent failure in epoch 2\n",
            "RuntimeError: injected persistent failure in epoch 2",
        ),
        ("\x1b[31msomething odd\x1b[0m\nno exception line", "something odd"),
    ],
)
def test_error_line(error: str | None, expected: str) -> None:
    assert error_line(error) == expected
