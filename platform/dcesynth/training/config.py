"""TrainConfig: pix2pixHD training, defaults equal to the study (and upstream pix2pixHD)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dcesynth.config import StrictModel

# the smallest crop_size: below it the multiscale discriminator's coarser scales see only a
# few pixels of each window
MIN_CROP = 16


class ModelConfig(StrictModel):
    generator: Literal["global", "local"] = "global"
    ngf: int = Field(64, ge=1, description="generator filters (local: of the full-res branch)")
    n_downsample: int = Field(4, ge=1, le=7)
    n_blocks: int = Field(9, ge=0)
    n_blocks_local: int = Field(3, ge=0)
    ndf: int = Field(64, ge=1)
    n_layers_d: int = Field(3, ge=1)
    num_d: int = Field(2, ge=1)
    replicate_input: bool = Field(True, description="pre slice replicated to 3 channels (study)")
    replicate_single_phase: bool = Field(True, description="one phase → 3 channels (study)")

    @property
    def divisor(self) -> int:
        return 2 ** (self.n_downsample + (1 if self.generator == "local" else 0))


class LossConfig(StrictModel):
    lambda_adv: float = Field(1.0, ge=0)
    lambda_fm: float = Field(10.0, ge=0)
    lambda_per: float = Field(10.0, ge=0)
    perceptual_network: Literal["vgg19_imagenet", "vgg19_random"] = Field(
        "vgg19_imagenet", description="vgg19_random is NOT the study's loss; runs record it"
    )
    weights_dir: Path | None = Field(None, description="where vgg19-dcbb9e9d.pth lives")
    # not in the study (it names both as future work); 0 / 1 keep the study's losses
    lambda_l1: float = Field(0.0, ge=0, description="pixel L1 reconstruction (not the study)")
    lesion_weight: float = Field(
        1.0, ge=1, description="weight of lesion pixels (the mask) in the L1 term"
    )


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
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or list(v) != sorted(v) or min(v) < 1:
            raise ValueError(f"phases are distinct increasing post-phase numbers, got {v}")
        return v

    @model_validator(mode="after")
    def _crop_size(self) -> TrainConfig:
        size, d = self.crop_size, self.model.divisor
        # the generator halves a window n_downsample times (once more for the local
        # generator): a side it cannot halve evenly would come back at another size
        if size is not None and (size < MIN_CROP or size % d):
            ok = -(-MIN_CROP // d) * d  # the smallest allowed value
            raise ValueError(
                f"crop_size: {size} must be >= {MIN_CROP} and a multiple of the model's "
                f"divisor {d} (2**model.n_downsample, twice that for the local generator), "
                f"e.g. {ok}, {ok + d} or {ok + 2 * d}; or None for whole slices"
            )
        return self

    @property
    def in_channels(self) -> int:
        return 3 if self.model.replicate_input else 1

    @property
    def out_channels(self) -> int:
        single = len(self.phases) == 1 and self.model.replicate_single_phase
        return 3 if single else len(self.phases)


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
