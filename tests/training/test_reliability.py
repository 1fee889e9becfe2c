"""Issue 23, training end to end: a full disk mid-run leaves no checkpoint that does not load
and ``--resume`` continues from the last good one; a truncated checkpoint in a copied run is
skipped and the copy (not the original) is resumed; a second training in one run folder is
refused naming the first."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.config import build_config
from dcesynth.durable import MachineError
from dcesynth.locks import FolderLocked
from dcesynth.training.checkpoints import load_state
from dcesynth.training.config import TrainConfig
from dcesynth.training.resume import RAY_SNAPSHOT, checkpoint_dirs
from dcesynth.training.run import load_run_config, train


def _cfg(prepared: Path, tiny_training: dict, runs: Path, epochs: int) -> TrainConfig:
    over = {"dataset": str(prepared), "runs_dir": str(runs), "name": "run", "phases": (1,)}
    over |= {"epochs": epochs, "workers": 1}
    return build_config(TrainConfig, None, {**tiny_training, **over})


def _epochs(run: Path) -> list[int]:
    return [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _all_load(run: Path) -> list[str]:
    dirs = checkpoint_dirs(run)
    for d in dirs:
        load_state(d / "state.pt")  # raises for one that does not load
    return [d.name for d in dirs]


def test_a_second_training_in_one_run_folder_is_refused(
    ray_session, prepared: Path, tiny_training: dict, tmp_path: Path, held_by_other
) -> None:
    cfg = _cfg(prepared, tiny_training, tmp_path, 1)
    holder = held_by_other(tmp_path / "run", "train")
    with pytest.raises(FolderLocked, match=rf"another train process \(PID {holder.pid} "):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_full_disk_mid_run_then_resume_continues(
    ray_session, prepared: Path, tiny_training: dict, small_disk
) -> None:
    """A real ENOSPC: once epoch 1's checkpoint is recorded, the disk is filled to half a
    checkpoint, so epoch 2's copy into the run folder fails part-way."""
    cfg = _cfg(prepared, tiny_training, small_disk.root, 3)
    run = small_disk.root / "run"
    stop = threading.Event()

    def fill_after_epoch_1() -> None:
        snap = run / RAY_SNAPSHOT
        while not stop.is_set():
            try:
                if "epoch_001" in snap.read_text():
                    size = (run / "checkpoints" / "epoch_001" / "state.pt").stat().st_size
                    small_disk.fill(leave=size // 2)
                    return
            except OSError:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=fill_after_epoch_1, daemon=True)
    watcher.start()
    try:
        with pytest.raises(MachineError) as e:
            train(cfg)
    finally:
        stop.set()
        watcher.join()
    msg = str(e.value)
    assert "No space left on device" in msg and "\n" not in msg, msg
    assert "last good checkpoint" in msg and "epoch_001" in msg and "--resume" in msg
    assert _all_load(run) == ["epoch_001"]  # nothing that does not load looks like one
    small_disk.free()
    res = train(load_run_config(run), resume=True)
    assert res.epochs_done == 3 and _epochs(run) == [1, 2, 3]
    assert _all_load(run) == ["epoch_001", "epoch_002", "epoch_003"]


@pytest.mark.slow
def test_resume_of_a_copy_skips_its_truncated_checkpoint(
    ray_session, prepared: Path, tiny_training: dict, tmp_path: Path
) -> None:
    """``dcectl train --resume COPY``: COPY's newest checkpoint is truncated (as a full disk
    leaves it); the run continues from the one before, in COPY, and the original is
    untouched."""
    train(_cfg(prepared, tiny_training, tmp_path / "original", 2))
    original = tmp_path / "original" / "run"
    copy = tmp_path / "elsewhere" / "run-copy"
    shutil.copytree(original, copy)
    before = {p: p.stat().st_mtime_ns for p in original.rglob("*")}
    state = copy / "checkpoints" / "epoch_002" / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    res = CliRunner().invoke(app, ["train", "--resume", str(copy)])
    assert res.exit_code == 0, res.output
    assert str(copy) in res.output and "2/2 epochs" in res.output
    assert _all_load(copy) == ["epoch_001", "epoch_002"]
    assert (copy / "checkpoints" / "broken-epoch_002").is_dir()
    assert _epochs(copy) == [1, 2]
    assert {p: p.stat().st_mtime_ns for p in original.rglob("*")} == before
