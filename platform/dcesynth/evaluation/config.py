"""EvalConfig: which metrics, which networks, how many pairs — defaults follow the study."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcesynth.config import StrictModel, resolve_device
from dcesynth.evaluation.metrics import WINDOW
from dcesynth.evaluation.same import DEFAULT_METRICS, KNOWN

ALL_METRICS = ("mae", "mse", "psnr", "ssim", "ms_ssim", "lpips", "fid_img", "fid_rad")
NEEDS_WEIGHTS = ("lpips", "fid_img", "fid_rad")
# Beyond the study: FRD (frd-score v1, radiomics features, no network weights) on whole slices
# and inside the tumour box. Opt-in (each costs feature extraction, see evaluation/frd.py).
EXTRA_METRICS = ("frd", "frd_box")
VALID_METRICS = ALL_METRICS + EXTRA_METRICS
# SSIM is a windowed statistic: in a box smaller than its window the map mostly measures the
# window's surroundings. The study's boxes (at 512²) are wider than a window, so the default
# changes nothing there; at smaller image sizes boxes shrink below it. TrustConfig shares it.
BOX_MIN_PX = WINDOW
BOX_MIN_PX_HELP = (
    f"tumour-box metrics: a box narrower than this along an axis is widened about its centre "
    f"(kept inside the slice) to this size; {WINDOW} = one SSIM window; 1: boxes as annotated"
)


class EvalConfig(StrictModel):
    metrics: tuple[str, ...] = Field(
        ALL_METRICS,
        description="metrics to compute; lpips/fid_* need pretrained weights; frd/frd_box "
        "(radiomics, no weights) are opt-in",
    )
    same_metrics: tuple[str, ...] = Field(DEFAULT_METRICS, description="metrics SAMe averages")
    fid_img_network: str = "fid_inception"
    fid_rad_network: str = Field(
        "radimagenet_inceptionv3",
        description="radimagenet_inceptionv3 (the study), radimagenet_resnet50, torchscript:PATH",
    )
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    weights_dir: Path | None = Field(None, description="default ~/.cache/dcesynth/weights")
    pairs: int = Field(5000, ge=2, description="at most this many slice pairs (seeded subset)")
    selection_pairs: int | None = Field(
        None,
        ge=2,
        description="checkpoint selection (Table 1) scores every checkpoint on at most this many "
        "validation pairs (seeded subset; default: pairs): a sampling family pays its steps × "
        "samples per slice and checkpoint",
    )
    seed: int = Field(0, ge=0)
    batch_size: int = Field(16, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    box_min_px: int = Field(BOX_MIN_PX, ge=1, description=BOX_MIN_PX_HELP)
    frd_pairs: int = Field(
        200,
        ge=2,
        description="FRD uses at most this many of the slice pairs (a seeded subset, the same "
        "for every checkpoint): its feature extraction costs ~0.3 s of CPU per slice",
    )
    frd_workers: int = Field(1, ge=1, description="FRD feature-extraction processes")

    @property
    def n_selection_pairs(self) -> int:
        """How many validation pairs a checkpoint selection (or a sweep's ranking) scores."""
        return min(self.pairs, self.selection_pairs or self.pairs)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if unknown := [m for m in v if m not in VALID_METRICS]:
            raise ValueError(f"unknown metrics {unknown}; valid: {list(VALID_METRICS)}")
        if not v:
            raise ValueError("at least one metric")
        return v

    @model_validator(mode="after")
    def _same_subset(self) -> EvalConfig:
        if not self.same_metrics:
            raise ValueError("same_metrics: at least one metric")
        for name, v in (("metrics", self.metrics), ("same_metrics", self.same_metrics)):
            if len(set(v)) != len(v):  # a repeat would silently weigh a metric twice
                raise ValueError(f"{name}: repeated entries in {list(v)}")
        if unknown := [m for m in self.same_metrics if m not in KNOWN]:
            raise ValueError(f"same_metrics: unknown {unknown}; valid: {sorted(KNOWN)}")
        if missing := [m for m in self.same_metrics if m not in self.metrics]:
            raise ValueError(
                f"same_metrics {missing} are not computed; add them to `metrics` "
                f"or drop them from `same_metrics` (computed: {list(self.metrics)})"
            )
        return self

    @property
    def left_out(self) -> list[str]:
        """Metrics of the study this configuration does not compute (reports say so)."""
        return [m for m in ALL_METRICS if m not in self.metrics]

    def torch_device(self) -> str:
        return resolve_device(self.device)


# Without pretrained weights (a fresh machine): everything that can be computed honestly.
NO_WEIGHTS = {
    "metrics": ("mae", "mse", "psnr", "ssim", "ms_ssim"),
    "same_metrics": ("ssim", "mae", "mse"),
}
