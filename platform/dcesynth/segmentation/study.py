"""The segmentation study as one Ray task graph (the study's Table 3).

::

    prepare volumes (a task per case: N4, single-breast crop)           CPU
      → per training set: write raw data, plan + preprocess,            CPU, one task per set
        then splits_final.json
          → per fold: train (nnU-Net's plain trainer)                   1 GPU each on a cluster
              → per (set, test domain): ensemble prediction of the       after all the set's
                test patients                                            folds
                  → Dice per case → Table 3 (on the driver)

Everything is decided before the first task starts (cases, the one patient → fold map, every
set's splits, checked for leakage) and recorded in ``study.json``. Each task first looks for
its own completion marker and returns at once when it finds it, so ``--resume`` reruns only
what is missing: a finished fold is never retrained. A task that raises is retried by Ray
(``fold_retries``); if it keeps failing, the cells that need it are reported as failed with
the error while every other cell completes.

Study folder ``<out>/<name>/``: ``config.yaml``, ``study.json``, ``prepared/<case>/``,
``nnunet/{raw,preprocessed,results}/``, ``folds/<set>_fold<k>.json`` (+ ``.starts.jsonl``),
``predictions/<set>_<domain>/``, ``logs/`` (nnU-Net's output per task), ``results/``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dcesynth.config import ConfigError, atomic_write_text, to_yaml
from dcesynth.segmentation.backend import SetSpec, check_env, device_for, get_backend
from dcesynth.segmentation.cases import StudyCase, collect_cases
from dcesynth.segmentation.config import TRAINING_SETS, SegmentConfig
from dcesynth.segmentation.prepare import prep_fingerprint, prepare_case
from dcesynth.segmentation.splits import PARTS, check_splits, fold_map, identifier, set_splits

log = logging.getLogger(__name__)
DATASET_IDS = {s: 501 + i for i, s in enumerate(sorted(TRAINING_SETS))}  # A → 501 … G → 507


@dataclass
class StudyResult:
    path: Path
    cells: list[dict]  # Table 3 rows
    failures: dict[str, str]  # task label → root error
    tasks: list[dict]  # every task's label, kind, start, end, skipped


# ---------------------------------------------------------------- the plan, fixed up front


def _absolute(cfg: SegmentConfig) -> SegmentConfig:
    """Paths made absolute, so that a resumed study finds its inputs from any folder."""
    upd = {k: Path(v).resolve() for k in ("out", "dataset", "synthetic") if (v := getattr(cfg, k))}
    return cfg.model_copy(update=upd)


def plan_study(cfg: SegmentConfig, cases: list[StudyCase], excluded: dict[str, str]) -> dict:
    """``study.json``: cases, fold map, each set's splits (checked), effective settings."""
    import nnunetv2
    import torch

    folds_of = fold_map([c.case_id for c in cases if c.role == "fold"], cfg.folds, cfg.seed)
    tests = sorted(c.case_id for c in cases if c.role == "test")
    sets = {}
    for name in cfg.training_sets():
        splits = set_splits(name, folds_of, PARTS[cfg.crop], cfg.folds)
        check_splits(name, splits, folds_of, set(tests))  # raises LeakageError
        sets[name] = {"dataset_id": DATASET_IDS[name], "splits": splits}
    return {
        "cases": {c.case_id: {"split": c.split, "role": c.role, "files": c.files} for c in cases},
        "excluded": excluded,
        "fold_map": folds_of,
        "test_patients": tests,
        "sets": sets,
        "cells": [list(c) for c in cfg.cells()],
        "preparation": prep_fingerprint(cfg),
        "nnunet": {
            "version": nnunetv2.__version__ if hasattr(nnunetv2, "__version__") else _version(),
            "trainer": "nnUNetTrainer (plain; settings set on the instance)",
            "plans": "nnUNetPlans (default ExperimentPlanner)",
            "configuration": cfg.configuration,
            "epochs": cfg.epochs,
            "iterations_per_epoch": cfg.iterations_per_epoch,
            "val_iterations_per_epoch": cfg.val_iterations_per_epoch,
            "test_time_mirroring": cfg.mirroring,
            "ensemble": f"mean softmax of folds 0–{cfg.folds - 1}",
            "post_processing": "none",
        }
        if cfg.backend == "nnunet"
        else {"backend": cfg.backend},
        "torch": torch.__version__,
    }


def _version() -> str:
    from importlib.metadata import version

    return version("nnunetv2")


def set_spec(cfg: SegmentConfig, study: dict, name: str) -> SetSpec:
    """The training set's spec: its training cases (every version of every fold patient's
    parts, as prepared files) and splits."""
    prepared = cfg.study_dir / "prepared"
    cases = {}
    for cid in study["fold_map"]:
        for part in PARTS[cfg.crop]:
            for v in TRAINING_SETS[name]:
                cases[identifier(cid, part, v)] = (
                    str(prepared / cid / f"{part}_{v}.nii.gz"),
                    str(prepared / cid / f"{part}_label.nii.gz"),
                )
    s = study["sets"][name]
    return SetSpec(name, s["dataset_id"], str(cfg.study_dir), cases, s["splits"], cfg)


def open_study(cfg: SegmentConfig, resume: bool, progress: bool | None = None) -> tuple:
    """Check the inputs, then create the study folder or check that a resumed one matches.

    Returns (cfg with absolute paths, study record, cases).
    """
    cfg = _absolute(cfg)
    cases, excluded = collect_cases(cfg, progress)
    study = plan_study(cfg, cases, excluded)
    folder = cfg.study_dir
    saved = folder / "study.json"
    if resume:
        if not saved.is_file():
            raise ConfigError(f"{folder}: nothing to resume (no study.json)")
        old = json.loads(saved.read_text())
        for key in ("cases", "fold_map", "test_patients", "sets", "preparation"):
            if old.get(key) != study.get(key):
                raise ConfigError(
                    f"{folder}: the inputs changed since the study started ({key} differs); "
                    "start a new study (another `name`)"
                )
        return cfg, old, cases
    if saved.is_file():
        raise ConfigError(
            f"{folder}: a study is already there; continue it with `dcectl segment --resume "
            f"{folder}` or choose another `name`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", to_yaml(cfg))
    atomic_write_text(saved, json.dumps(study, indent=1))
    return cfg, study, cases


# ---------------------------------------------------------------- the tasks (run on workers)


def _marker(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def prepare_task(case: StudyCase, cfg: SegmentConfig) -> dict:
    t0 = time.time()
    prepare_case(case, cfg, cfg.study_dir / "prepared")
    return {"start": t0, "end": time.time()}


def plan_task(spec: SetSpec, *prepared: dict) -> dict:
    """Raw dataset, plans, preprocessed data, then ``splits_final.json``, then the marker."""
    from dcesynth.segmentation.backend import write_splits

    marker = spec.folder("preprocessed") / "dcesynth_plan.json"
    done = _marker(marker)
    if done and done["fingerprint"] == spec.fingerprint():
        return {**done, "skipped": True}
    check_env(spec)
    t0 = time.time()
    info = get_backend(spec.cfg.backend).plan(spec, _log(spec, "plan"))
    write_splits(spec)  # every fold of the set starts after this
    rec = {"fingerprint": spec.fingerprint(), "info": info, "start": t0, "end": time.time()}
    atomic_write_text(marker, json.dumps(rec))
    return rec


def fold_task(spec: SetSpec, fold: int, plan: dict, fault: dict | None = None) -> dict:
    """Train one fold unless its marker says it is done (then return at once)."""
    import torch

    folds = Path(spec.study) / "folds"
    marker = folds / f"{spec.name}_fold{fold}.json"
    if done := _marker(marker):
        return {**done, "skipped": True}
    folds.mkdir(exist_ok=True)
    starts = folds / f"{spec.name}_fold{fold}.starts.jsonl"
    attempt = 1 + (len(starts.read_text().splitlines()) if starts.is_file() else 0)
    with starts.open("a") as f:
        f.write(json.dumps({"time": time.time(), "attempt": attempt}) + "\n")
    hit = fault and fault.get("set") == spec.name and fault.get("fold") == fold
    if hit and attempt <= fault.get("attempts", 10**9):
        raise RuntimeError(f"injected failure in set {spec.name} fold {fold}")
    check_env(spec)
    torch.set_num_threads(spec.cfg.cpus_per_fold)
    device = device_for(spec.cfg.gpus_per_fold)
    t0 = time.time()
    info = get_backend(spec.cfg.backend).train(spec, fold, device, _log(spec, f"fold{fold}"))
    rec = {
        "set": spec.name,
        "fold": fold,
        "node": _node(),
        "device": device,
        "attempt": attempt,
        "start": t0,
        "end": time.time(),
        **info,
    }
    atomic_write_text(marker, json.dumps(rec))
    return rec


def predict_task(spec: SetSpec, domain: str, tests: list[str], *deps: dict) -> dict:
    """Ensemble prediction of the test patients' real ``domain`` volumes by the set's folds."""
    import torch

    out = Path(spec.study) / "predictions" / f"{spec.name}_{domain}"
    marker = out / "prediction.json"
    if done := _marker(marker):
        return {**done, "skipped": True}
    check_env(spec)
    torch.set_num_threads(spec.cfg.cpus_per_fold)
    prepared = Path(spec.study) / "prepared"
    images = {
        identifier(cid, part, domain): str(prepared / cid / f"{part}_{domain}.nii.gz")
        for cid in tests
        for part in PARTS[spec.cfg.crop]
    }
    t0 = time.time()
    device = device_for(spec.cfg.gpus_per_fold)
    log_file = _log(spec, f"predict_{domain}")
    files = get_backend(spec.cfg.backend).predict(spec, images, out, device, log_file)
    rec = {"files": {k: Path(v).name for k, v in files.items()}, "start": t0, "end": time.time()}
    atomic_write_text(marker, json.dumps(rec))
    return rec


def _node() -> str | None:
    """The Ray node a task runs on (the study records where each fold trained)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not inside Ray
        return None


def _log(spec: SetSpec, what: str) -> Path:
    return Path(spec.study) / "logs" / f"set{spec.name}_{what}.log"
