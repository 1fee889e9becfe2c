"""`dcectl train`: inputs are refused before Ray starts, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "train_demo.yaml"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["loss.lambda_fm=-1"], ["loss.lambda_fm", "greater than or equal to 0"]),
        (["model.n_blockz=2"], ["n_blockz", "n_blocks"]),
        (["epochs"], ["key=value"]),
        (["dataset=/nonexistent"], ["dataset", "not a prepared dataset"]),
    ],
)
def test_train_rejects_bad_input(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    res = runner.invoke(app, ["train", str(CONFIG), f"runs_dir={tmp_path}", *args])
    assert res.exit_code == 2, res.output
    for text in expected:
        assert text in res.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_resume_takes_no_other_settings(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--resume", str(tmp_path), "--workers", "2"])
    assert res.exit_code == 2 and "saved config.yaml" in res.output
    res = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in res.output
