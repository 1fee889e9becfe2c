"""TrustConfig: what `dcectl trust` measures and how (every key has a documented default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dcesynth.config import StrictModel, resolve_device
from dcesynth.evaluation.config import BOX_MIN_PX, BOX_MIN_PX_HELP

STRATA = ("manufacturer", "field_t", "agent", "density", "curve_type", "lesion_size")


class TrustConfig(StrictModel):
    checkpoint: str = Field("best", description="best (dcectl select's), last or an epoch")
    split: str = Field("test", description="the held-out split")
    pairs: int = Field(
        5000,
        ge=2,
        description="at most this many slices (seeded subset); kinetics read every tumour slice",
    )
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    weights_dir: Path | None = None
    features: Literal["pixels", "fid_inception", "random_inception"] = Field(
        "fid_inception",
        description="feature space beside pixels for privacy and diversity: fid_inception "
        "needs its pretrained file; random_inception is an untrained network (says so); "
        "pixels: none",
    )
    # privacy
    pixel_size: int = Field(32, ge=4, description="side of the area-averaged pixel space")
    privacy_tolerance: float = Field(
        0.01, ge=0, le=1, description="flag when more synthetic images than this are too close"
    )
    # diversity
    prdc_k: int = Field(5, ge=1, description="k of the k-NN balls (Naeem et al. use 5)")
    # fairness
    strata: tuple[str, ...] = Field(STRATA, description="columns to stratify by")
    box_min_px: int = Field(BOX_MIN_PX, ge=1, description=BOX_MIN_PX_HELP)  # as EvalConfig's
    clinical: Path | None = Field(
        None, description="CSV with a `Patient ID` column (the phantom's clinical.csv, Duke's)"
    )
    salt: str = Field("dcesynth", description="ingest's pseudonym salt (to match clinical rows)")
    bootstrap: int = Field(2000, ge=100)
    # uncertainty
    ensemble: Literal["epochs", "sweep"] = Field(
        "epochs", description="the run's last kept checkpoints, or a sweep's top-ranked ones"
    )
    members: int = Field(3, ge=2)
    sweep: Path | None = Field(None, description="the sweep folder (ensemble: sweep)")
    flag_quantile: float = Field(
        0.8, gt=0, lt=1, description="cases above this quantile of uncertainty: give real contrast"
    )
    missed_fraction: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="a synthetic lesion is missed when its box enhancement is below this "
        "fraction of the real one",
    )
    # kinetics
    truth: Path | None = Field(None, description="the phantom's ground_truth/ folder")
    min_enhancement: float = Field(0.1, ge=0, description="relative peak for a curve type")

    def torch_device(self) -> str:
        return resolve_device(self.device)
