"""The rectified flow visibly learns virtual contrast: a tiny flow on the phantom, a fixed
budget, and its synthetic phase 1 (K averaged samples) beats copying the pre-contrast image on
whole-slice MAE and SSIM of the test split, with the margins of the pix2pixHD test
(test_learns.py) on the same cohort, split and crops.

Measured (2 shared CPU cores): MAE 9.17 vs 17.15, SSIM 0.725 vs 0.633, PSNR 22.03 vs 19.01,
tumour-box MAE 29.26 vs 42.68; training 230 s, evaluation 127 s, the test ~450 s. PSNR and
the box are printed, not asserted: their margins (+3.0 dB, 0.69×) are too close to the
pix2pixHD test's thresholds (+3 dB, 0.75×) to be stable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dcesynth.config import build_config
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.phantom import PhantomConfig, generate_cohort
from dcesynth.evaluation.config import NO_WEIGHTS, EvalConfig
from dcesynth.evaluation.report import evaluate
from dcesynth.training.config import TrainConfig
from dcesynth.training.run import train

pytestmark = pytest.mark.slow


def test_flow_phase1_beats_the_pre_contrast_baseline(ray_session, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    generate_cohort(
        PhantomConfig(cases=10, matrix=128, slices=16, seed=2, formats=("nifti",)),
        cohort,
        workers=2,
        progress=False,
    )
    split = {"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    ingest(
        cohort / "nifti" / "images",
        tmp_path / "ds",
        IngestConfig(image_size=128, phases=(1,), split=split),
        progress=False,
    )
    cfg = build_config(
        TrainConfig,
        None,
        {
            "dataset": str(tmp_path / "ds"),
            "runs_dir": str(tmp_path / "runs"),
            "name": "flow",
            "epochs": 8,
            "batch_size": 4,
            "lr": 1e-3,
            "beta1": 0.9,
            "checkpoint_every": 8,
            "val_slices": 8,
            "tumour_oversampling": 3,
            "crop_size": 64,
            "max_failures": 0,
            "model": {
                "family": "rectified_flow",
                "channels": [16, 32, 64],
                "norm_num_groups": 8,
                "num_head_channels": 16,
                "num_res_blocks": 1,
                "target": "subtraction",
                "sampling_steps": 4,
                "samples": 4,
            },
        },
    )
    t0 = time.perf_counter()
    run = train(cfg).run_dir
    t1 = time.perf_counter()
    ev = evaluate(run, EvalConfig(**NO_WEIGHTS, device="cpu"), "last", "test")
    rows = {r["comparison"]: r for r in ev.rows if r["phase"] == 1}
    syn, base = rows["synthetic vs real"], rows["baseline: real pre vs real post"]
    box, box_base = rows["tumour box: synthetic vs real"], rows["tumour box: baseline pre vs post"]
    print(
        f"flow: training {t1 - t0:.0f} s, evaluation {time.perf_counter() - t1:.0f} s; whole "
        f"slice MAE {syn['mae']['mean']:.2f} vs {base['mae']['mean']:.2f}, SSIM "
        f"{syn['ssim']['mean']:.3f} vs {base['ssim']['mean']:.3f}, PSNR "
        f"{syn['psnr']['mean']:.2f} vs {base['psnr']['mean']:.2f}; tumour box MAE "
        f"{box['mae']['mean']:.2f} vs {box_base['mae']['mean']:.2f}"
    )
    assert syn["mae"]["mean"] < 0.7 * base["mae"]["mean"]
    assert syn["ssim"]["mean"] > base["ssim"]["mean"] + 0.05
