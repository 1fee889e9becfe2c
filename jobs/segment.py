"""Ray job entry point: the segmentation study (Table 3) on a cluster.

    ray job submit --working-dir . -- python jobs/segment.py \
        jobs/configs/segment_study.yaml dataset=/shared/duke_prepared synthetic=/shared/runs/study
    ray job submit --working-dir . -- python jobs/segment.py --resume /shared/segmentation/study

The driver joins the job's cluster (RAY_ADDRESS), submits one task per case, per training set,
per fold and per prediction, and writes Table 3 into the study folder, which must be on
storage every node shares.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dcesynth.config import build_config, parse_overrides
from dcesynth.segmentation.config import SegmentConfig
from dcesynth.segmentation.run import run_study

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:]
    if args[:1] == ["--resume"] and len(args) == 2:
        cfg = build_config(SegmentConfig, Path(args[1]) / "config.yaml")
        res = run_study(cfg, resume=True)
    elif args and not args[0].startswith("-"):
        res = run_study(build_config(SegmentConfig, args[0], parse_overrides(args[1:])))
    else:
        sys.exit("usage: python jobs/segment.py CONFIG.yaml [key=value ...] | --resume STUDY_DIR")
    print("table:", res.path / "results" / "table3.md")
    sys.exit(1 if res.failures else 0)
