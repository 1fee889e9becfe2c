"""Training visibly learns virtual contrast: a tiny phantom model, a fixed budget, and its
synthetic phase 1 beats copying the pre-contrast image (the study's baseline) on the test split.

The cohort is 128² (lesions about 6 px across; training on 64² crops that keep a tumour slice's
lesion in view). Asserted with margins: MAE, SSIM and PSNR on whole slices, and MAE and PSNR
inside the tumour box (widened to one SSIM window). The box SSIM is printed, not asserted: in
this budget the generator does not enhance the lesions (measured 0.644 vs 0.713 at 8 epochs,
0.650 vs 0.713 at 16), and the baseline keeps the lesion's own pattern, which SSIM's structure
term rewards; see the README, "Training that learns"."""

from __future__ import annotations

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


def test_synthetic_phase1_beats_the_pre_contrast_baseline(ray_session, tmp_path: Path) -> None:
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
            "name": "learn",
            "epochs": 8,
            "batch_size": 4,
            "lr": 5e-4,
            "checkpoint_every": 8,
            "val_slices": 8,
            "tumour_oversampling": 3,
            "crop_size": 64,
            "max_failures": 0,
            "model": {"ngf": 32, "n_downsample": 1, "n_blocks": 3, "ndf": 16},
            "loss": {
                "perceptual_network": "vgg19_random",
                "lambda_per": 0.0,
                "lambda_l1": 100.0,
                "lesion_weight": 10.0,
            },
        },
    )
    run = train(cfg).run_dir
    ev = evaluate(run, EvalConfig(**NO_WEIGHTS, device="cpu"), "last", "test")
    rows = {r["comparison"]: r for r in ev.rows if r["phase"] == 1}
    syn, base = rows["synthetic vs real"], rows["baseline: real pre vs real post"]
    box, box_base = rows["tumour box: synthetic vs real"], rows["tumour box: baseline pre vs post"]
    print(
        f"whole slice MAE {syn['mae']['mean']:.2f} vs {base['mae']['mean']:.2f}, SSIM "
        f"{syn['ssim']['mean']:.3f} vs {base['ssim']['mean']:.3f}; tumour box MAE "
        f"{box['mae']['mean']:.2f} vs {box_base['mae']['mean']:.2f}, SSIM "
        f"{box['ssim']['mean']:.3f} vs {box_base['ssim']['mean']:.3f}"
    )
    assert syn["mae"]["mean"] < 0.7 * base["mae"]["mean"]
    assert syn["ssim"]["mean"] > base["ssim"]["mean"] + 0.05
    assert syn["psnr"]["mean"] > base["psnr"]["mean"] + 3
    assert box["mae"]["mean"] < 0.75 * box_base["mae"]["mean"]
    assert box["psnr"]["mean"] > box_base["psnr"]["mean"] + 2
