"""Issue 23, training without Ray: a checkpoint that does not load is never resumed from (it is
set aside, saying so, and the previous one is used), metrics.jsonl is cut back to it, and a
copied run resumes into the copy."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from dcesynth.training import checkpoints
from dcesynth.training.checkpoints import BrokenCheckpointError, load_state, save_state
from dcesynth.training.config import TrainConfig
from dcesynth.training.resume import RAY_SNAPSHOT, checkpoint_dirs, prepare_resume
from dcesynth.training.run import load_run_config


def _state(epoch: int) -> dict:
    torch.manual_seed(epoch)
    return {"G": {"w": torch.rand(64, 64)}, "epoch": epoch}


def _run(tmp_path: Path, epochs: int = 2) -> Path:
    run = tmp_path / "run"
    for e in range(1, epochs + 1):
        save_state(_state(e), run / "checkpoints" / f"epoch_{e:03d}" / "state.pt")
    lines = [json.dumps({"epoch": e, "loss_g": 1.0 / e}) for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 3, "lo')  # cut short
    (run / RAY_SNAPSHOT).write_text('{"checkpoint_results": []}')
    return run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # what a full disk left at the final path


@pytest.mark.parametrize("damage", ["truncated", "no state file", "zero bytes"])
def test_resume_skips_a_checkpoint_that_does_not_load(tmp_path: Path, caplog, damage) -> None:
    run = _run(tmp_path)
    bad = run / "checkpoints" / "epoch_002"
    if damage == "truncated":
        _truncate(bad / "state.pt")
    elif damage == "no state file":
        (bad / "state.pt").unlink()
    else:
        (bad / "state.pt").write_bytes(b"")
    caplog.set_level("WARNING", logger="dcesynth.training.resume")
    good = prepare_resume(run)
    assert good == run / "checkpoints" / "epoch_001"
    assert [p.name for p in checkpoint_dirs(run)] == ["epoch_001"]
    assert (run / "checkpoints" / "broken-epoch_002").is_dir()  # kept for inspection
    assert "epoch_002 does not load" in caplog.text and "set aside" in caplog.text
    assert load_state(good / "state.pt")["epoch"] == 1
    assert [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [
        1
    ]
    assert not (run / RAY_SNAPSHOT).exists()  # Ray would hand the broken one back


def test_an_intact_run_is_left_as_it_is(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert prepare_resume(run) == run / "checkpoints" / "epoch_002"
    assert (run / RAY_SNAPSHOT).is_file()
    assert (run / "metrics.jsonl").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


def test_no_checkpoint_loads_starts_again(tmp_path: Path, caplog) -> None:
    run = _run(tmp_path, epochs=1)
    _truncate(run / "checkpoints" / "epoch_001" / "state.pt")
    caplog.set_level("WARNING", logger="dcesynth.training.resume")
    assert prepare_resume(run) is None
    assert "starts again from epoch 1" in caplog.text
    assert (run / "metrics.jsonl").read_text() == ""


def test_a_truncated_checkpoint_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_state(_state(1), path)
    _truncate(path)
    with pytest.raises(BrokenCheckpointError, match=rf"{path}: does not load .*truncated"):
        load_state(path)


def test_save_state_on_a_full_disk_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "epoch_001" / "state.pt"
    save_state(_state(1), path)

    def full(state, f):
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoints.torch, "save", full)
    with pytest.raises(OSError, match="No space"):
        save_state(_state(2), path)
    monkeypatch.undo()
    assert load_state(path)["epoch"] == 1  # the previous checkpoint, whole
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]


def test_resume_of_a_copied_run_writes_into_the_copy(tmp_path: Path) -> None:
    """The saved config names the original folder; resuming the copy must not write there."""
    cfg = TrainConfig(runs_dir=tmp_path / "original", name="exp")
    copy = tmp_path / "elsewhere" / "exp-copy"
    copy.mkdir(parents=True)
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    got = load_run_config(copy)
    assert Path(got.runs_dir) / got.name == copy.resolve()
    assert got.model_dump(exclude={"runs_dir", "name"}) == cfg.model_dump(
        exclude={"runs_dir", "name"}
    )
