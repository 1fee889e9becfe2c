"""A running study's progress: each fold's epoch and pseudo-Dice from nnU-Net's own logs, and
the heartbeat the study logs while no task ends."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dcesynth.segmentation.run import follow
from dcesynth.segmentation.status import fold_epoch, study_status

LOG = """2026-12-03 19:47:42.847549: Epoch 0
2026-12-03 19:48:42.860246: Pseudo dice [np.float32(0.0076)]
2026-12-03 19:48:45.398853:
2026-12-03 19:48:45.398900: Epoch 1
2026-12-03 19:49:45.860246: Pseudo dice [np.float32(0.2513)]
2026-12-03 19:49:46.000000: Epoch 2
"""


def _fold_dir(study: Path, name: str = "A", k: int = 0) -> Path:
    d = study / "nnunet" / "results" / f"Dataset501_set{name}"
    d = d / "nnUNetTrainer__nnUNetPlans__2d" / f"fold_{k}"
    d.mkdir(parents=True)
    return d


def test_fold_epoch_reads_the_newest_epoch_and_last_pseudo_dice(tmp_path: Path) -> None:
    d = _fold_dir(tmp_path)
    assert fold_epoch(tmp_path, 501, "A", 0) is None  # no log yet
    (d / "training_log_2026_12_3_19_47_42.txt").write_text(LOG)
    assert fold_epoch(tmp_path, 501, "A", 0) == (2, pytest.approx(0.2513))
    # a resumed fold starts a new log at its checkpoint's epoch: the later epoch wins
    (d / "training_log_2026_12_3_20_10_00.txt").write_text(
        "2026-12-03 20:10:00.0: Epoch 5\n2026-12-03 20:11:00.0: Pseudo dice [0.5]\n"
        "2026-12-03 20:11:01.0: Epoch 6\n"
    )
    assert fold_epoch(tmp_path, 501, "A", 0) == (6, 0.5)
    assert fold_epoch(tmp_path, 501, "A", 1) is None  # another fold: nothing


def test_status_shows_running_folds_with_epoch_of_the_budget(tmp_path: Path) -> None:
    study = {
        "cases": {},
        "cells": [[1, "A", "pre"]],
        "sets": {"A": {"splits": [[], []], "dataset_id": 501}},
        "nnunet": {"epochs": 60},
    }
    (tmp_path / "study.json").write_text(json.dumps(study))
    (tmp_path / "folds").mkdir()
    (tmp_path / "folds" / "A_fold0.starts.jsonl").write_text("{}\n")
    (_fold_dir(tmp_path) / "training_log_x.txt").write_text(LOG)
    st = study_status(tmp_path)
    assert st["running"] == ["A/0 epoch 3/60 (pseudo-Dice 0.25)"]
    assert st["sets"][0]["folds"] == "0: started ×1, epoch 3/60 (pseudo-Dice 0.25), 1: waiting"


def test_follow_logs_a_heartbeat_while_no_task_ends(ray_session, caplog) -> None:
    import time

    @ray_session.remote
    def slow() -> dict:
        time.sleep(1.5)
        return {"start": 0.0, "end": 1.5}

    calls = []

    def beat() -> str:
        calls.append(1)
        return "A/0 epoch 3/60"

    with caplog.at_level(logging.INFO, logger="dcesynth.segmentation.run"):
        results, failures = follow({slow.remote(): ("fold", "set A fold 0")}, False, beat, 0.3)
    assert failures == {} and results["set A fold 0"]["end"] == 1.5
    beats = [r for r in caplog.records if "segment: running A/0 epoch 3/60" in r.getMessage()]
    assert len(calls) >= 2 and len(beats) == len(calls)
