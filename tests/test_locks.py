"""One writer per output folder: a second process is refused naming the holder; a dead
holder's lock is taken over, saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcesynth.locks import FolderLocked, folder_lock, lock_path


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path, held_by_other) -> None:
    out = tmp_path / "ds"
    p = held_by_other(out, "ingest")
    with pytest.raises(FolderLocked) as e, folder_lock(out, "ingest"):
        pass
    msg = str(e.value)
    assert f"PID {p.pid}" in msg and "started 20" in msg and str(out) in msg and "ingest" in msg
    assert lock_path(out).is_file()  # the holder's lock is untouched


def test_released_lock_leaves_nothing_and_is_reentrant(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with folder_lock(out, "train") as path:
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["what"] == "train"
        with folder_lock(out, "train"):  # dcectl study: stages in one process
            pass
        assert path.is_file()
    assert not lock_path(out).exists() and not out.exists()


def test_a_dead_holders_lock_is_taken_over_saying_so(tmp_path: Path, caplog) -> None:
    out = tmp_path / "ds"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    stale = {"pid": pid, "host": os.uname().nodename, "started": "2020-01-01T00:00:00"}
    lock_path(out).write_text(json.dumps(stale))  # what a SIGKILLed ingest leaves
    caplog.set_level("WARNING", logger="dcesynth.locks")
    with folder_lock(out, "ingest") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"PID {pid}" in caplog.text and "no longer running" in caplog.text


def test_killed_holder_frees_the_folder(tmp_path: Path, held_by_other) -> None:
    out = tmp_path / "ds"
    p = held_by_other(out)
    p.kill()
    p.wait(timeout=30)
    with folder_lock(out, "ingest"):  # the kernel released it with the process
        pass


def test_a_second_sweep_is_refused(
    prepared: Path, tiny_training: dict, tmp_path: Path, held_by_other
) -> None:
    from dcesynth.tuning.space import SearchSpace
    from dcesynth.tuning.sweep import sweep

    space = SearchSpace.model_validate(
        {
            "name": "s",
            "storage_path": str(tmp_path),
            "base": {**tiny_training, "dataset": str(prepared), "epochs": 1, "workers": 1},
            "parameters": {"lr": {"distribution": "grid", "values": [0.001]}},
            "searcher": {"type": "grid"},
            "num_samples": 1,
        }
    )
    holder = held_by_other(tmp_path / "s", "sweep")
    with pytest.raises(FolderLocked, match=rf"another sweep process \(PID {holder.pid} "):
        sweep(space)
    assert not (tmp_path / "s").exists()


def test_a_second_segmentation_study_is_refused(tmp_path: Path, held_by_other) -> None:
    from dcesynth.segmentation.config import SegmentConfig
    from dcesynth.segmentation.run import run_study

    cfg = SegmentConfig(out=tmp_path, name="study")
    holder = held_by_other(tmp_path / "study", "segment")
    with pytest.raises(FolderLocked, match=rf"another segment process \(PID {holder.pid} "):
        run_study(cfg)
