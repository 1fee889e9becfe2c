"""`dcectl segment`: bad input is refused before Ray starts, naming the key or file; `status`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "segment_demo.yaml"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["folds=1"], ["--folds", "greater than or equal to 2"]),
        (["scenarios=[7]"], ["unknown scenario(s) [7]"]),
        (["crop=left"], ["--crop", "tumour_side"]),
        (["n4.shrnk=2"], ["n4.shrnk", "shrink"]),
        (["dataset=/nonexistent/ds"], ["/nonexistent/ds: not a prepared dataset"]),
        (["folds"], ["key=value"]),
    ],
)
def test_segment_rejects_bad_input(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    res = runner.invoke(app, ["segment", str(CONFIG), f"out={tmp_path}", *args])
    assert res.exit_code == 2, res.output
    for text in expected:
        assert text in res.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_resume_and_status_need_a_study(tmp_path: Path) -> None:
    res = runner.invoke(app, ["segment", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "config file not found" in res.output
    res = runner.invoke(app, ["segment", "--resume", str(tmp_path), "folds=3"])
    assert res.exit_code == 2 and "give no other settings" in res.output
    res = runner.invoke(app, ["segment", "status", str(tmp_path)])
    assert res.exit_code == 2 and "not a segmentation study" in res.output
    res = runner.invoke(app, ["segment"])
    assert res.exit_code == 2 and "usage" in res.output
