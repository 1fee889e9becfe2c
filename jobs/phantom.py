"""Ray job entry point: generate a phantom cohort from a YAML config.

    ray job submit --working-dir . -- python jobs/phantom.py jobs/configs/phantom_small.yaml OUT

Generation runs in local worker processes of the node the job lands on; OUT should be shared
storage when the next steps run elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dcesynth.config import build_config
from dcesynth.data.phantom import PhantomConfig, generate_cohort

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python jobs/phantom.py CONFIG.yaml OUT")
    cfg = build_config(PhantomConfig, sys.argv[1])
    records = generate_cohort(cfg, Path(sys.argv[2]), workers=os.cpu_count() or 1)
    print(f"{len(records)} cases in {sys.argv[2]}")
