"""Run a segmentation study on Ray: submit the task graph, follow it, score it, write Table 3.

The graph's tasks are in :mod:`dcesynth.segmentation.study`; this module is the driver. Every
task carries a name that says what it is (``segment set B: train fold 3``), so the Ray
dashboard's task list reads like the study; nnU-Net's own output goes to ``logs/``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from dcesynth.cluster import error_line, init_ray
from dcesynth.config import atomic_write_text
from dcesynth.locks import folder_lock
from dcesynth.progress import progress_bar
from dcesynth.segmentation.backend import nnunet_dirs
from dcesynth.segmentation.config import SegmentConfig
from dcesynth.segmentation.results import score_prediction, table3, write_results
from dcesynth.segmentation.status import study_status
from dcesynth.segmentation.study import (
    StudyResult,
    fold_task,
    open_study,
    plan_task,
    predict_task,
    prepare_task,
    set_spec,
)

log = logging.getLogger(__name__)


def runtime_env(cfg: SegmentConfig) -> dict:
    """What every task of the study sees: nnU-Net's folders and worker counts. Passed to the
    tasks, never set in the driver's own environment."""
    env = {k: str(v) for k, v in nnunet_dirs(cfg.study_dir).items()}
    env["nnUNet_n_proc_DA"] = str(cfg.augmentation_workers)
    env["nnUNet_def_n_proc"] = str(cfg.cpus_per_fold)
    return {"env_vars": env}


def check_cluster(cfg: SegmentConfig, address: str | None = None) -> None:
    """A fold that no node can hold would wait forever: say so before submitting (on a
    cluster we joined, an autoscaler may still add such nodes: a warning then)."""
    import ray

    from dcesynth.cluster import short_of_resources

    total = ray.cluster_resources()
    need = {"CPU": cfg.cpus_per_fold + cfg.augmentation_workers, "GPU": cfg.gpus_per_fold}
    keys = {"CPU": "cpus_per_fold + augmentation_workers", "GPU": "gpus_per_fold"}
    for res, n in need.items():
        if n > total.get(res, 0):
            short_of_resources(
                f"config: `{keys[res]}` asks {n} {res} per fold; the cluster has "
                f"{total.get(res, 0)}",
                address,
                log,
            )
    if cfg.preprocess_workers > total.get("CPU", 0):
        short_of_resources(
            f"config: `preprocess_workers` {cfg.preprocess_workers} > the cluster's "
            f"{total.get('CPU', 0)} CPUs",
            address,
            log,
        )


def submit(cfg: SegmentConfig, study: dict, cases: list, fault: dict | None) -> dict:
    """Submit the whole graph; returns {ObjectRef: (kind, label)}. Dependencies are passed
    as arguments, so Ray starts a task only when what it reads exists."""
    import ray

    env = runtime_env(cfg)
    # nnU-Net's planner sets torch's threads to nnUNet_n_proc_DA, which fails at 0 (no
    # augmentation processes, right for small folds): planning gets its own count
    plan_env = {"env_vars": {**env["env_vars"], "nnUNet_n_proc_DA": str(cfg.preprocess_workers)}}
    tasks: dict = {}
    prep = {}
    for c in cases:  # 1. volumes, once for every set
        ref = (
            ray.remote(prepare_task)
            .options(name=f"segment prepare {c.case_id}", num_cpus=1, runtime_env=env)
            .remote(c, cfg)
        )
        prep[c.case_id] = ref
        tasks[ref] = ("prepare", c.case_id)
    fold_cpus = cfg.cpus_per_fold + cfg.augmentation_workers  # nnU-Net's DA workers need CPUs
    tests = study["test_patients"]
    domains: dict[str, list[str]] = {}
    for name, domain in cfg.predictions():
        domains.setdefault(name, []).append(domain)
    for name in cfg.training_sets():
        spec = set_spec(cfg, study, name)
        # 2. plan + preprocess after the set's fold patients are prepared
        plan = (
            ray.remote(plan_task)
            .options(
                name=f"segment set {name}: plan+preprocess",
                num_cpus=cfg.preprocess_workers,
                runtime_env=plan_env,
            )
            .remote(spec, *(prep[cid] for cid in study["fold_map"]))
        )
        tasks[plan] = ("plan", f"set {name}")
        # 3. the folds, in parallel, each after the plan (and its splits_final.json)
        folds = []
        for f in range(cfg.folds):
            ref = (
                ray.remote(fold_task)
                .options(
                    name=f"segment set {name}: train fold {f}",
                    num_cpus=fold_cpus,
                    num_gpus=cfg.gpus_per_fold,
                    max_retries=cfg.fold_retries,
                    retry_exceptions=True,
                    runtime_env=env,
                )
                .remote(spec, f, plan, fault)
            )
            folds.append(ref)
            tasks[ref] = ("fold", f"set {name} fold {f}")
        # 4. per test domain: the ensemble of all folds on the test patients
        for domain in domains[name]:
            ref = (
                ray.remote(predict_task)
                .options(
                    name=f"segment set {name}: predict real {domain}",
                    num_cpus=cfg.cpus_per_fold,
                    num_gpus=cfg.gpus_per_fold,
                    runtime_env=env,
                )
                .remote(spec, domain, tests, *folds, *(prep[cid] for cid in tests))
            )
            tasks[ref] = ("predict", f"{name}_{domain}")
    return tasks


def follow(
    tasks: dict,
    progress: bool | None,
    heartbeat: Callable[[], str] | None = None,
    every_s: float = 300.0,
) -> tuple[dict, dict]:
    """Wait for every task, logging one line as each ends. Returns (results, failures) keyed
    by label.

    Args:
        tasks: Ray refs → (kind, label).
        progress: a bar (default: in a terminal).
        heartbeat: what is running, logged every ``every_s`` while no task ends: a fold at
            the preset's budget runs for many minutes, and a log with nothing in it for an
            hour cannot be told from a hung one.
        every_s: the heartbeat's period.
    """
    import ray

    pending, results, failures = list(tasks), {}, {}
    t0 = time.perf_counter()
    with progress_bar(len(pending), "segmentation study", progress) as advance:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=every_s)
            if not ready:
                if heartbeat is not None and (now := heartbeat()):
                    log.info("segment: running %s (%.0f s)", now, time.perf_counter() - t0)
                continue
            ref = ready[0]
            kind, label = tasks[ref]
            try:
                res = ray.get(ref)
                results[label] = {"kind": kind, **res}
                state = "reused" if res.get("skipped") else f"{res['end'] - res['start']:.0f} s"
            except Exception as e:  # the task (after its retries) or something it needed failed
                failures[label] = error_line(str(e))
                state = f"FAILED: {failures[label]}"
            advance()
            done = len(tasks) - len(pending)
            log.info(
                "segment: %s %s %s (%d/%d tasks, %d failed, %.0f s)",
                kind,
                label,
                state,
                done,
                len(tasks),
                len(failures),
                time.perf_counter() - t0,
            )
    return results, failures


def run_study(
    cfg: SegmentConfig,
    resume: bool = False,
    address: str | None = None,
    fault: dict | None = None,
    progress: bool | None = None,
) -> StudyResult:
    """Run (or resume) a segmentation study and write Table 3.

    Args:
        cfg: the study.
        resume: continue the study in ``cfg.study_dir`` (finished tasks are not rerun).
        address: Ray cluster to join (default: ``RAY_ADDRESS``, else a local instance).
        fault: tests only: ``{"set", "fold", "attempts"}`` makes that fold raise.
        progress: a bar (default: in a terminal); one log line per task either way.

    Raises:
        ConfigError: bad inputs or settings, before any task starts.
        FolderLocked: another process runs this study.
    """
    # one process per study folder: a second one is refused, naming this one
    with folder_lock(Path(cfg.study_dir).resolve(), "segment"):
        return _run_study(cfg, resume, address, fault, progress)


def _run_study(
    cfg: SegmentConfig,
    resume: bool,
    address: str | None,
    fault: dict | None,
    progress: bool | None,
) -> StudyResult:
    cfg, study, cases = open_study(cfg, resume, progress)
    init_ray(address)
    check_cluster(cfg, address)
    folder = cfg.study_dir
    log.info(
        "segment: %d cases (%d test), sets %s, %d folds → %s",
        len(cases),
        len(study["test_patients"]),
        "".join(cfg.training_sets()),
        cfg.folds,
        folder,
    )
    tasks = submit(cfg, study, cases, fault)
    results, failures = follow(
        tasks, progress, heartbeat=lambda: "; ".join(study_status(folder)["running"])
    )
    per_case = {}
    for name, domain in cfg.predictions():
        if f"{name}_{domain}" in results:
            per_case[(name, domain)] = score_prediction(
                folder, cfg, study["test_patients"], name, domain
            )
    cells = table3(cfg, per_case, failures)
    title = (
        f"Table 3 — {_n(study['test_patients'], 'test patient')}, {len(study['fold_map'])} "
        f"in {cfg.folds} folds, backend {cfg.backend}, {cfg.epochs} epochs × "
        f"{cfg.iterations_per_epoch} iterations"
    )
    write_results(folder / "results", cells, per_case, title)
    timeline = [
        {"label": k, **{f: v.get(f) for f in ("kind", "start", "end", "skipped")}}
        for k, v in results.items()
    ]
    atomic_write_text(
        folder / "results" / "tasks.json",
        json.dumps({"tasks": timeline, "failures": failures}, indent=1),
    )
    _report_section(cfg, folder)
    return StudyResult(folder, cells, failures, timeline)


def _report_section(cfg: SegmentConfig, folder: Path) -> None:
    """Add Table 3 to the synthesis run's evaluation report, when there is one."""
    from dcesynth.evaluation.report import add_section

    if cfg.synthetic is None or not (Path(cfg.synthetic) / "report" / "report.md").is_file():
        return
    import shutil

    res, report = folder / "results", Path(cfg.synthetic) / "report"
    shutil.copyfile(res / "table3.png", report / "segmentation_table3.png")
    text = (
        "## Segmentation with synthetic contrast (Table 3)\n\n"
        f"Study: `{folder}`.\n\n"
        + (res / "table3.md").read_text()
        + "\n![Table 3](segmentation_table3.png)\n"
    )
    add_section(report, "segmentation", text)


def _n(items, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")
