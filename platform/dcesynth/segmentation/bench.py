"""``dcectl bench segment``: the study's Ray fan-out against nnU-Net's own CLI, fold after fold.

The same training set, folds, data and settings, side by side in one run:

- **ours**: :func:`dcesynth.segmentation.run.run_study` — preparation tasks, one plan +
  preprocess task, the folds as parallel Ray tasks (one CPU each here, one GPU each on a
  cluster), the ensemble prediction and the scoring;
- **the study's way**: nnU-Net's command line as the study's shell script calls it, one
  command after another on the same raw dataset (ours, copied) and the same
  ``splits_final.json``: ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train`` per fold with
  ``nnUNetTrainer_1epoch`` (250 iterations, as ours is set), ``nnUNetv2_predict`` with all folds.

Both sides train one epoch of nnU-Net's 250 iterations, validate each fold (the CLI always
does) and predict with test-time mirroring. Fold overlap is the sum of the fold tasks' times
over the span from the first fold's start to the last one's end (1.0: one at a time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dcesynth.segmentation.config import SegmentConfig
from dcesynth.segmentation.splits import PARTS, identifier

CLI_TRAINER = "nnUNetTrainer_1epoch"  # shipped with nnU-Net: the CLI cannot set epochs


def bench_config(dataset: Path, out: Path, folds: int, training_set: str) -> SegmentConfig:
    return SegmentConfig(
        name="bench",
        out=out / "ours",
        dataset=dataset,
        scenarios=(3,),
        sets=(training_set,),
        folds=folds,
        epochs=1,
        iterations_per_epoch=250,
        val_iterations_per_epoch=50,
        validate_folds=True,
        mirroring=True,
        cpus_per_fold=1,
        augmentation_workers=0,
        preprocess_workers=min(2, os.cpu_count() or 1),
    )


def _span(rows: list[dict]) -> tuple[float, float]:
    return min(r["start"] for r in rows), max(r["end"] for r in rows)


def ours(cfg: SegmentConfig) -> dict:
    """Run the study; its stages' spans and the folds' overlap from the task records."""
    from dcesynth.segmentation.run import run_study

    shutil.rmtree(cfg.study_dir, ignore_errors=True)
    t0 = time.time()
    res = run_study(cfg, progress=False)
    total = time.time() - t0
    if res.failures:
        raise RuntimeError(f"the study failed: {res.failures}")
    by = {
        k: [t for t in res.tasks if t["kind"] == k] for k in ("prepare", "plan", "fold", "predict")
    }
    stages = {k: _span(v)[1] - _span(v)[0] for k, v in by.items()}
    fold_sum = sum(t["end"] - t["start"] for t in by["fold"])
    return {
        "total": total,
        **stages,
        "fold_sum": fold_sum,
        "overlap": fold_sum / stages["fold"],
        "dice": res.cells[0]["mean"],
        "study": res.path,
    }


def _cli(name: str, *args: str, env: dict, log) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / name), *args],
        env=env,
        check=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return time.perf_counter() - t0


def cli_reference(study: Path, cfg: SegmentConfig, out: Path) -> dict:
    """nnU-Net's CLI, one command after another, on a copy of our raw dataset and splits."""
    rec = json.loads((study / "study.json").read_text())
    name = cfg.training_sets()[0]
    ds_id = rec["sets"][name]["dataset_id"]
    ds_name = f"Dataset{ds_id:03d}_set{name}"
    root = out / "cli"
    shutil.rmtree(root, ignore_errors=True)
    dirs = {
        k: root / k.split("_")[1] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    }
    shutil.copytree(study / "nnunet" / "raw" / ds_name, dirs["nnUNet_raw"] / ds_name, symlinks=True)
    tests = dirs["nnUNet_raw"] / ds_name / "imagesTs"
    tests.mkdir()
    domain = cfg.predictions()[0][1]
    for cid in rec["test_patients"]:
        for part in PARTS[cfg.crop]:
            src = (study / "prepared" / cid / f"{part}_{domain}.nii.gz").resolve()
            os.symlink(src, tests / f"{identifier(cid, part, domain)}_0000.nii.gz")
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    times: dict[str, float] = {}
    with (root / "cli.log").open("w") as log:
        times["plan"] = _cli(
            "nnUNetv2_plan_and_preprocess",
            "-d",
            str(ds_id),
            "-c",
            cfg.configuration,
            "--verify_dataset_integrity",
            env=env,
            log=log,
        )
        # the study's splits (nnU-Net would draw its own 5 folds)
        shutil.copy(
            study / "nnunet" / "preprocessed" / ds_name / "splits_final.json",
            dirs["nnUNet_preprocessed"] / ds_name / "splits_final.json",
        )
        folds = []
        for f in range(cfg.folds):
            folds.append(
                _cli(
                    "nnUNetv2_train",
                    str(ds_id),
                    cfg.configuration,
                    str(f),
                    "-tr",
                    CLI_TRAINER,
                    "-device",
                    "cpu",
                    env=env,
                    log=log,
                )
            )
        times["fold"] = sum(folds)
        times["predict"] = _cli(
            "nnUNetv2_predict",
            "-i",
            str(tests),
            "-o",
            str(root / "pred"),
            "-d",
            str(ds_id),
            "-c",
            cfg.configuration,
            "-tr",
            CLI_TRAINER,
            "-f",
            *map(str, range(cfg.folds)),
            "-device",
            "cpu",
            env=env,
            log=log,
        )
    times["total"] = times["plan"] + times["fold"] + times["predict"]
    times["folds"] = folds
    return times
