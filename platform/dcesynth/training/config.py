"""TrainConfig: one training run, defaults equal to the study (and upstream pix2pixHD).

The ``model`` section is a generator family's own config, chosen by its ``family`` key
(``pix2pixhd``, the default, or ``rectified_flow``); an unknown family or a key of another
family is an error naming what is valid. The rest (data, schedule, optimiser, workers) is
shared by every family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from dcesynth.config import StrictModel
from dcesynth.models.flow.config import RectifiedFlowConfig
from dcesynth.models.pix2pixhd.config import LossConfig, Pix2PixHDConfig
from dcesynth.tracking import TrackingConfig

# the smallest crop_size: below it the multiscale discriminator's coarser scales see only a
# few pixels of each window
MIN_CROP = 16


def _family(value: Any) -> str:
    """The ``family`` of a ``model`` section; absent means pix2pixhd (configs written before
    there were families load unchanged)."""
    if isinstance(value, dict):
        return value.get("family", DEFAULT_FAMILY)
    return getattr(value, "family", DEFAULT_FAMILY)


DEFAULT_FAMILY = "pix2pixhd"
# every generator family's config, by its `family` name (training/families.py holds the code)
FAMILY_CONFIGS: dict[str, type[StrictModel]] = {
    "pix2pixhd": Pix2PixHDConfig,
    "rectified_flow": RectifiedFlowConfig,
}
GeneratorConfig = Annotated[
    Annotated[Pix2PixHDConfig, Tag("pix2pixhd")]
    | Annotated[RectifiedFlowConfig, Tag("rectified_flow")],
    Discriminator(
        _family,
        custom_error_type="unknown_family",
        custom_error_message=f"unknown generator family; valid: {', '.join(FAMILY_CONFIGS)}",
    ),
]
ModelConfig = Pix2PixHDConfig  # the study's (and the default) family


class TrainConfig(StrictModel):
    name: str = Field("pix2pixhd", pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: Path | None = None
    runs_dir: Path = Path("runs")
    phases: tuple[int, ...] = Field((1,), min_length=1, description="post phases to generate")
    epochs: int = Field(200, ge=1, description="upstream: 100 constant + 100 decaying")
    batch_size: int = Field(1, ge=1, description="per worker")
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    rotate_p: float = Field(0.5, ge=0, le=1)
    # not in the study (it trains on whole 512² slices); the generator is fully convolutional,
    # so validation, synthesis and evaluation still run on whole slices
    crop_size: int | None = Field(
        None,
        description="train on random crop_size² windows (kept on the lesion of tumour "
        "slices); a multiple of the model's divisor, >= 16; None: whole slices",
    )
    seed: int = Field(0, ge=0)
    workers: int = Field(1, ge=1)
    use_gpu: bool = False
    bf16: bool = Field(
        True, description="bf16 autocast on a GPU and on a CPU with native bf16; false: fp32"
    )
    channels_last: bool | None = Field(
        None, description="channels-last tensors; None: on GPU, off on CPU (measured slower)"
    )
    compile: bool = Field(False, description="torch.compile G and D (off until measured)")
    tumour_oversampling: int = Field(
        1, ge=1, description="slices with lesion pixels appear this many times per epoch"
    )
    checkpoint_every: int = Field(10, ge=1)
    val_slices: int = Field(64, ge=1, description="fixed validation subset")
    max_failures: int = Field(
        2, ge=0, description="worker-failure retries from the last checkpoint"
    )
    model: GeneratorConfig = Field(
        default_factory=Pix2PixHDConfig,
        description="the generator: a family's own config, chosen by `family` (default pix2pixhd)",
    )
    loss: LossConfig = Field(default_factory=LossConfig, description="pix2pixHD's losses")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="MLflow: the run's (and a sweep's, from `base`) store (docs/tracking.md)",
    )

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or list(v) != sorted(v) or min(v) < 1:
            raise ValueError(f"phases are distinct increasing post-phase numbers, got {v}")
        return v

    @model_validator(mode="after")
    def _family_settings(self) -> TrainConfig:
        self.model.check_training(self.loss)  # e.g. a flow refuses pix2pixHD's loss settings
        return self

    @model_validator(mode="after")
    def _crop_size(self) -> TrainConfig:
        size, d = self.crop_size, self.model.divisor
        # the generator halves a window n_downsample times (once more for the local
        # generator): a side it cannot halve evenly would come back at another size
        if size is not None and (size < MIN_CROP or size % d):
            ok = -(-MIN_CROP // d) * d  # the smallest allowed value
            raise ValueError(
                f"crop_size: {size} must be >= {MIN_CROP} and a multiple of the model's "
                f"divisor {d} (pix2pixhd: 2**model.n_downsample, twice that for the local "
                "generator; rectified_flow: 2**(len(model.channels) - 1)), "
                f"e.g. {ok}, {ok + d} or {ok + 2 * d}; or None for whole slices"
            )
        return self

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def in_channels(self) -> int:
        """Channels of the pre-contrast input the generator takes."""
        return self.model.in_channels()

    @property
    def out_channels(self) -> int:
        """Channels the generator writes."""
        return self.model.out_channels(len(self.phases))


def learning_rate(epoch: int, cfg: TrainConfig) -> float:
    """The rate for 0-based ``epoch``: upstream pix2pixHD with niter = niter_decay = epochs/2.

    Constant for the first ``epochs - epochs//2`` epochs; then lowered by ``lr / decay`` after
    each epoch, so the last epoch trains at ``lr / decay`` and the rate would reach 0 after it.
    """
    decay = cfg.epochs // 2
    niter = cfg.epochs - decay
    if decay == 0 or epoch <= niter:
        return cfg.lr
    return cfg.lr * (1.0 - (epoch - niter) / decay)
