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


@pytest.mark.parametrize("existing", [False, True])
def test_run_tracked_resumes_an_existing_study_as_a_child_run(
    tmp_path: Path, monkeypatch, existing: bool
) -> None:
    """The demo's and the study's last stage: resume when the folder holds a study, announce
    it, run it as a child of the caller's MLflow run and log its Table 3 there."""
    import contextlib
    from types import SimpleNamespace

    import dcesynth.cli.segment as seg_cli
    import dcesynth.segmentation.run as seg_run

    cfg = SimpleNamespace(study_dir=tmp_path / "s", scenarios=(2,), folds=2, name="demo",
                          training_sets=lambda: ("A", "C"))  # fmt: skip
    if existing:
        cfg.study_dir.mkdir()
        (cfg.study_dir / "study.json").write_text("{}")
    calls, lines, children = [], [], []
    monkeypatch.setattr(seg_run, "run_study", lambda c, resume: calls.append((c, resume)) or "R")
    monkeypatch.setattr(seg_cli, "log_segmentation", lambda t, res: calls.append((t, res)))

    class Tracker:
        @contextlib.contextmanager
        def child(self, kind, name, config):
            children.append((kind, name, config))
            yield "child-run"

    res = seg_cli.run_tracked(cfg, lines.append, Tracker(), " → here")
    assert res == "R"
    assert calls == [(cfg, existing), ("child-run", "R")]
    assert children == [("segment", "demo", cfg)]
    assert lines == [
        "segment: scenarios [2], sets AC, 2 folds → here" + (" (resuming)" if existing else "")
    ]
