"""The study's Ray task graph end to end with the threshold backend (seconds per study):
splits written before folds, a failing fold retried then reported while the other cells
complete, resume reruns only what is missing, and a changed input is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dcesynth.config import ConfigError
from dcesynth.segmentation.config import SegmentConfig
from dcesynth.segmentation.run import run_study
from dcesynth.segmentation.status import study_status


def _starts(study: Path, name: str, fold: int) -> int:
    f = study / "folds" / f"{name}_fold{fold}.starts.jsonl"
    return len(f.read_text().splitlines()) if f.is_file() else 0


def test_graph_failure_resume_and_changed_inputs(
    ray_session, seg_dataset: Path, seg_run: Path, tmp_path: Path
) -> None:
    cfg = SegmentConfig(
        name="dry", out=tmp_path, dataset=seg_dataset, synthetic=seg_run, scenarios=(1,),
        folds=2, backend="threshold", fold_retries=1,
    )  # fmt: skip
    study = tmp_path / "dry"
    # set B fold 1 fails on every attempt: retried once, then its cell fails, A and C complete
    res = run_study(cfg, fault={"set": "B", "fold": 1}, progress=False)
    assert "injected failure in set B fold 1" in res.failures["set B fold 1"]
    assert "injected failure" in res.failures["B_pre"]  # the prediction needed that fold
    assert set(res.failures) == {"set B fold 1", "B_pre"}
    assert _starts(study, "B", 1) == 2  # first attempt + one retry
    cells = {c["set"]: c for c in res.cells}
    assert "error" in cells["B"] and "injected failure" in cells["B"]["error"]
    assert cells["A"]["n"] == cells["C"]["n"] == len(json.loads((study / "study.json").read_text())
                                                     ["test_patients"])  # fmt: skip
    assert "nnUNet_raw" not in os.environ  # nnU-Net's paths went to the tasks only

    # splits_final.json: the planned splits, written before any fold of the set started
    rec = json.loads((study / "study.json").read_text())
    for name in "ABC":
        pre = (
            study
            / "nnunet"
            / "preprocessed"
            / f"Dataset{rec['sets'][name]['dataset_id']}_set{name}"
        )
        splits = pre / "splits_final.json"
        assert json.loads(splits.read_text()) == rec["sets"][name]["splits"]
        for f in range(2):
            marker = study / "folds" / f"{name}_fold{f}.json"
            if marker.is_file():
                assert splits.stat().st_mtime <= json.loads(marker.read_text())["start"]
    table = (study / "results" / "table3.md").read_text()
    assert "failed: RuntimeError: injected failure in set B fold 1" in table
    st = study_status(study)
    assert (
        st["folds_done"] == 5
        and "1: failed" in next(s for s in st["sets"] if s["set"] == "B")["folds"]
    )

    # a fresh start on the same folder is refused; resume trains only B fold 1
    with pytest.raises(
        ConfigError, match="already there; continue it with `dcectl segment --resume"
    ):
        run_study(cfg, progress=False)
    (study / "folds" / "A_fold0.json").unlink()  # as if A fold 0 had been interrupted
    (study / "predictions" / "A_pre" / "prediction.json").unlink()
    res2 = run_study(cfg, resume=True, progress=False)
    assert not res2.failures
    assert _starts(study, "B", 1) == 3 and _starts(study, "A", 0) == 2
    assert all(_starts(study, n, f) == 1 for n, f in [("A", 1), ("B", 0), ("C", 0), ("C", 1)])
    again = {c["set"]: c for c in res2.cells}
    assert again["C"] == cells["C"]  # reused: the same prediction and Dice
    assert again["A"]["mean"] == pytest.approx(cells["A"]["mean"])  # retrained: same threshold
    assert "mean" in again["B"]
    skipped = {t["label"] for t in res2.tasks if t["skipped"]}
    assert {"set C fold 0", "set C fold 1", "set A fold 1", "C_pre", "set A"} <= skipped
    assert "set A fold 0" not in skipped and "set B fold 1" not in skipped
    assert study_status(study)["folds_done"] == 6

    # inputs that changed since the start (another fold map) are refused on resume
    with pytest.raises(ConfigError, match="inputs changed since the study started"):
        run_study(cfg.model_copy(update={"seed": 1}), resume=True, progress=False)
