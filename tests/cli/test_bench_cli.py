"""`dcectl bench`: the commands exist and refuse bad input before doing any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app


def test_bench_lists_its_benchmarks() -> None:
    out = CliRunner().invoke(app, ["bench", "--help"])
    assert out.exit_code == 0
    for name in ("phantom", "ingest", "metrics", "sweep", "sample"):
        assert name in out.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--steps", "0,4"], "must be ≥ 1"), (["--steps", "four"], "comma-separated integers")],
)
def test_bench_sample_refuses_bad_steps(args: list[str], needle: str) -> None:
    out = CliRunner().invoke(app, ["bench", "sample", *args])
    assert out.exit_code != 0 and needle in out.output


@pytest.mark.parametrize(("flag", "value"), [("--trials", "0"), ("--epochs", "0")])
def test_bench_sweep_refuses_empty_work(tmp_path: Path, flag: str, value: str) -> None:
    out = CliRunner().invoke(app, ["bench", "sweep", flag, value, "--out", str(tmp_path / "b")])
    assert out.exit_code != 0
    assert "--trials and --epochs must be ≥ 1" in out.output
    assert not (tmp_path / "b").exists()  # nothing started
