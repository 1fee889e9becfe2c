"""Ray job entry point: select a run's checkpoint, synthesize the test split and write the report.

    ray job submit --working-dir . -- python jobs/evaluate.py /shared/runs/study \
        jobs/configs/eval_study.yaml [key=value ...] [--gpus 1]

The work runs as one Ray task (with a GPU when asked), so the job's driver can sit on a head
node without one. The run directory and the dataset must be on shared storage.
"""

from __future__ import annotations

import sys

import ray

from dcesynth.config import build_config, parse_overrides
from dcesynth.evaluation.config import EvalConfig


def study(run: str, cfg: EvalConfig) -> str:
    from dcesynth.evaluation.report import evaluate
    from dcesynth.evaluation.select import select_checkpoint
    from dcesynth.evaluation.synthesize import synthesize

    select_checkpoint(run, cfg, progress=False)
    synthesize(run, "best", "test", device=cfg.torch_device(), progress=False)
    return str(evaluate(run, cfg, "best", "test").report / "report.md")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--gpus"]
    gpus = 1 if "--gpus" in sys.argv else 0
    if len(args) < 2:
        sys.exit("usage: python jobs/evaluate.py RUN_DIR CONFIG.yaml [key=value ...] [--gpus]")
    cfg = build_config(EvalConfig, args[1], parse_overrides(args[2:]))
    ray.init(address="auto")
    task = ray.remote(num_gpus=gpus, num_cpus=1)(study).options(name=f"evaluate {args[0]}")
    print("report:", ray.get(task.remote(args[0], cfg)))
