"""Ray job entry point: train pix2pixHD from a YAML config (key=value overrides allowed).

    ray job submit --working-dir . -- python jobs/train.py jobs/configs/train_study.yaml \
        dataset=/shared/duke_prepared workers=8 use_gpu=true
"""

from __future__ import annotations

import sys

from dcesynth.config import build_config, parse_overrides
from dcesynth.training.config import TrainConfig
from dcesynth.training.run import train

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python jobs/train.py CONFIG.yaml [key=value ...]")
    cfg = build_config(TrainConfig, sys.argv[1], parse_overrides(sys.argv[2:]))
    res = train(cfg, address="auto")
    print(f"{res.run_dir}: {res.epochs_done} epochs")
