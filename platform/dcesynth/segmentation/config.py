"""SegmentConfig: the segmentation study (the study's Table 3), defaults equal to the study.

The study trains nnU-Net v2 ``3d_fullres`` (plain trainer, 500 epochs of 250 iterations,
5-fold cross-validation, the 5 fold models ensembled on the test cases, no post-processing) on
single-breast crops with N4 bias-field correction, multifocal cases removed, and reports the
tumour Dice per test case for seven training sets (A–G) in four scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcesynth.config import StrictModel
from dcesynth.tracking import TrackingConfig

# Training sets: which versions of each patient are separate training cases.
# pre = real pre-contrast, post = real post-contrast, syn = synthetic post-contrast.
TRAINING_SETS: dict[str, tuple[str, ...]] = {
    "A": ("pre",),
    "B": ("pre", "syn"),
    "C": ("syn",),
    "D": ("post",),
    "E": ("post", "syn"),
    "F": ("post", "pre"),
    "G": ("post", "pre", "syn"),
}
# Scenarios: (training sets, test domain); the first set of each is its paired-test baseline.
SCENARIOS: dict[int, tuple[tuple[str, ...], str]] = {
    1: (("A", "B", "C"), "pre"),
    2: (("A", "B", "C"), "post"),
    3: (("D", "E", "F", "G", "C"), "post"),
    4: (("D", "E", "C"), "pre"),
}
# The study's Table 3 (Duke, 191 cases, real GAN): mean Dice per (scenario, set), for reference.
STUDY_DICE: dict[tuple[int, str], float] = {
    (1, "A"): 0.569,
    (1, "B"): 0.531,
    (1, "C"): 0.486,
    (2, "A"): 0.484,
    (2, "B"): 0.663,
    (2, "C"): 0.687,
    (3, "D"): 0.790,
    (3, "E"): 0.797,
    (3, "F"): 0.780,
    (3, "G"): 0.770,
    (3, "C"): 0.687,
    (4, "D"): 0.164,
    (4, "E"): 0.409,
    (4, "C"): 0.486,
}


class N4Config(StrictModel):
    """The study's N4 recipe: SimpleITK N4 on an Otsu mask of the image shrunk by ``shrink``;
    the log bias field is evaluated at full resolution and divided out."""

    enabled: bool = True
    shrink: int = Field(4, ge=1, description="shrink factor of the fitting image")
    iterations: tuple[int, ...] = Field(
        (50, 50, 50, 50), min_length=1, description="per fitting level (SimpleITK's default)"
    )
    convergence: float = Field(1e-3, gt=0, description="convergence threshold")


class SegmentConfig(StrictModel):
    """Every setting of a segmentation study; YAML is its serialised form.

    Args (as YAML keys):
        name: the study's folder under ``out``.
        dataset: prepared dataset (its normalised volumes and masks).
        synthetic: a training run whose ``synthetic/<split>/`` volumes (``dcectl synthesize``)
            supply the synthetic post-contrast versions; needed by sets B, C, E, G.
    """

    name: str = Field("segment", pattern=r"^[A-Za-z0-9_.-]+$")
    out: Path = Path("segmentation")
    dataset: Path | None = None
    synthetic: Path | None = Field(None, description="run directory with synthetic/<split>/")
    synthetic_phase: int = Field(1, ge=1, description="synthetic post phase used as 'syn'")
    post_phase: int = Field(1, ge=1, description="real post phase used as 'post' (mask's phase)")
    scenarios: tuple[int, ...] = Field((1, 2, 3, 4), min_length=1)
    sets: tuple[str, ...] | None = Field(
        None, description="train only these sets (default: those the scenarios need)"
    )
    test_split: str = Field("test", description="dataset split of the held-out test patients")
    folds: int = Field(5, ge=2)
    seed: int = Field(0, ge=0, description="patient → fold map")
    # the volumes: the study's preparation
    crop: Literal["tumour_side", "both_halves", "none"] = Field(
        "tumour_side",
        description="tumour_side: the study's rule, chosen from the mask (an oracle); "
        "both_halves: each breast a separate case, no mask needed",
    )
    n4: N4Config = Field(default_factory=N4Config)
    in_plane_factor: int = Field(
        1,
        ge=1,
        le=8,
        description="in-plane downsampling of the prepared volumes (block mean; a label voxel "
        "is tumour when at least half its block is). The study: 1 (native). A CPU budget: "
        "nnU-Net's iterations cost what its patches hold",
    )
    multifocal: Literal["remove", "keep"] = "remove"
    min_component_voxels: int = Field(
        8, ge=1, description="mask components smaller than this are specks, not lesions"
    )
    # nnU-Net (plain nnUNetTrainer; these are set on the instance)
    backend: Literal["nnunet", "threshold"] = Field(
        "nnunet", description="threshold: a one-parameter classifier for dry runs, not a result"
    )
    configuration: str = "3d_fullres"
    epochs: int = Field(500, ge=1)
    iterations_per_epoch: int = Field(250, ge=1)
    val_iterations_per_epoch: int = Field(50, ge=1)
    save_every: int = Field(50, ge=1, description="epochs between resumable checkpoints")
    foreground_oversampling: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="share of each batch drawn to contain tumour (nnU-Net's "
        "oversample_foreground_percent, set on the trainer); None: nnU-Net's 0.33, the study's",
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        description="cap on the batch size nnU-Net's planner chose (written into its plans); "
        "the study: none. A CPU budget: the planner fills a GPU's memory, so at 160² a 2d "
        "batch of ~30 slices makes one iteration several times dearer",
    )
    unet_base_features: int | None = Field(
        None,
        ge=4,
        le=64,
        description="first-stage width of the planned U-Net, every stage scaled alike (written "
        "into its plans); the study: none (nnU-Net's 32). A CPU budget: 16 makes an iteration "
        "~3× cheaper, so the same minutes train ~3× longer",
    )
    mirroring: bool = Field(True, description="test-time mirroring")
    validate_folds: bool = Field(
        False, description="nnU-Net's own validation of each fold after training"
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="MLflow store (docs/tracking.md)"
    )
    # resources and faults
    gpus_per_fold: float = Field(0, ge=0, description="0 on CPU; 1 on a GPU cluster")
    cpus_per_fold: int = Field(1, ge=1, description="torch threads of a fold")
    augmentation_workers: int = Field(
        0, ge=0, description="nnU-Net's data-augmentation processes per fold (CPUs reserved)"
    )
    preprocess_workers: int = Field(1, ge=1)
    fold_retries: int = Field(1, ge=0, description="a crashed fold is retried this often")

    @field_validator("scenarios")
    @classmethod
    def _scenarios(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if bad := [s for s in v if s not in SCENARIOS]:
            raise ValueError(f"unknown scenario(s) {bad}; allowed: {sorted(SCENARIOS)}")
        if len(set(v)) != len(v):
            raise ValueError(f"repeated scenario in {v}")
        return tuple(sorted(v))

    @field_validator("sets")
    @classmethod
    def _sets(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if bad := [s for s in v if s not in TRAINING_SETS]:
            raise ValueError(f"unknown training set(s) {bad}; allowed: {sorted(TRAINING_SETS)}")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _needs(self) -> SegmentConfig:
        if self.sets is not None and not self.cells():
            raise ValueError(
                f"sets {list(self.sets)} give no cell of scenarios {list(self.scenarios)}; "
                "a scenario's cells are its sets tested on its domain"
            )
        return self

    def cells(self) -> list[tuple[int, str, str]]:
        """(scenario, training set, test domain) of every Table 3 cell this study fills."""
        keep = set(self.sets) if self.sets is not None else None
        return [
            (s, t, domain)
            for s in self.scenarios
            for t in SCENARIOS[s][0]
            if keep is None or t in keep
            for domain in [SCENARIOS[s][1]]
        ]

    def training_sets(self) -> list[str]:
        return sorted({t for _, t, _ in self.cells()})

    def predictions(self) -> list[tuple[str, str]]:
        """(training set, test domain) pairs: each one ensemble prediction."""
        return sorted({(t, d) for _, t, d in self.cells()})

    def versions(self) -> list[str]:
        """Volume versions the study reads: what its sets train on and its tests predict."""
        used = {v for t in self.training_sets() for v in TRAINING_SETS[t]}
        used |= {d for _, d in self.predictions()}
        return [v for v in ("pre", "post", "syn") if v in used]

    @property
    def study_dir(self) -> Path:
        return self.out / self.name
