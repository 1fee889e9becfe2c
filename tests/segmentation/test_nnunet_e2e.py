"""One real nnU-Net study through Ray on a tiny phantom: `dcectl segment` is killed after its
first fold and resumed; the finished fold is not retrained, and the study ends with an
ensemble prediction and a Dice per test patient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


def _ray_cpus() -> int:
    """The CPUs a local Ray started by the subprocess will have."""
    try:
        from ray._private.utils import get_num_cpus

        return int(get_num_cpus())
    except Exception:  # a Ray without that helper: the machine's count
        return os.cpu_count() or 1


def _dcectl(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcesynth.cli.app", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "CI": "1"},
    )  # fmt: skip


@pytest.mark.slow
def test_nnunet_study_killed_after_its_first_fold_resumes(seg_dataset: Path, tmp_path: Path):
    cfg = {
        "name": "nn", "out": str(tmp_path), "dataset": str(seg_dataset),
        "scenarios": [3], "sets": ["D"], "folds": 2,
        "epochs": 1, "iterations_per_epoch": 2, "val_iterations_per_epoch": 1,
        "save_every": 1, "mirroring": False,
        # every CPU of the subprocess's Ray per fold: the two folds train one after the other
        "cpus_per_fold": _ray_cpus(),
    }  # fmt: skip
    path = tmp_path / "segment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    study = tmp_path / "nn"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcesynth.cli.app", "segment", str(path)],
        env={**os.environ, "CI": "1"},
        start_new_session=True,  # its own process group: the kill takes its local Ray too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not list(study.glob("folds/D_fold*.json")):
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = sorted(p.stem for p in study.glob("folds/D_fold*.json"))
    assert len(finished) == 1, f"expected one finished fold at the kill, found {finished}"
    done = int(finished[0][-1])
    ckpt = next(study.glob(f"nnunet/results/*/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_{done}"))
    mtime = (ckpt / "checkpoint_final.pth").stat().st_mtime_ns

    resumed = _dcectl("segment", "--resume", str(study))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    starts = {f: len((study / "folds" / f"D_fold{f}.starts.jsonl").read_text().splitlines())
              for f in (0, 1)}  # fmt: skip
    assert starts[done] == 1  # not retrained
    assert (ckpt / "checkpoint_final.pth").stat().st_mtime_ns == mtime
    assert all((study / "folds" / f"D_fold{f}.json").is_file() for f in (0, 1))

    rec = json.loads((study / "study.json").read_text())
    assert rec["nnunet"]["epochs"] == 1 and rec["nnunet"]["iterations_per_epoch"] == 2
    assert rec["nnunet"]["post_processing"] == "none" and not rec["nnunet"]["test_time_mirroring"]
    plan = json.loads(next(study.glob("nnunet/preprocessed/*/dcesynth_plan.json")).read_text())
    assert len(plan["info"]["patch_size"]) == 3  # 3d_fullres
    preds = json.loads((study / "predictions" / "D_post" / "prediction.json").read_text())
    assert len(preds["files"]) == len(rec["test_patients"])
    (cell,) = json.loads((study / "results" / "table3.json").read_text())
    assert cell["n"] == len(rec["test_patients"]) and 0.0 <= cell["mean"] <= 1.0
    assert (cell["scenario"], cell["set"], cell["test"]) == (3, "D", "real post")
    status = _dcectl("segment", "status", str(study), timeout=60)
    assert status.returncode == 0 and "2/2 folds trained" in status.stdout
