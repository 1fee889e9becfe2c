"""Training visibly learns virtual contrast: a tiny phantom model, a fixed budget, and its
synthetic phase 1 beats copying the pre-contrast image (the study's baseline) on the test split.

What is asserted with a margin is what the phantom allows: MAE and SSIM on whole slices. The
tumour-box figures are measured and printed, not asserted: most phantom lesions sit in
fibroglandular tissue and are nearly isointense with it before contrast (T1 1600 vs 1266 ms at
1.5 T), and how strongly a lesion enhances is drawn independently of how it looks before
contrast, so no generator can tell it from the pre image. Whether a small test split's boxes
then beat the baseline depends on its few lesions (this very test, seed 2: box MAE 49 vs 43);
see the README, "Training that learns"."""

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


def test_synthetic_phase1_beats_the_pre_contrast_baseline_on_whole_slices(
    ray_session, tmp_path: Path
) -> None:
    cohort = tmp_path / "cohort"
    generate_cohort(
        PhantomConfig(cases=10, matrix=48, slices=16, seed=2, formats=("nifti",)),
        cohort,
        workers=2,
        progress=False,
    )
    split = {"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    ingest(
        cohort / "nifti" / "images",
        tmp_path / "ds",
        IngestConfig(image_size=48, phases=(1,), split=split),
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
    assert syn["ssim"]["mean"] > base["ssim"]["mean"] + 0.1
    assert syn["psnr"]["mean"] > base["psnr"]["mean"] + 3
