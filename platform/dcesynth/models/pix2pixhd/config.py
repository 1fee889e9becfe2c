"""pix2pixHD's config: the ``model`` section of a training config with ``family: pix2pixhd``
(the default: a config without ``family`` is this one), and the ``loss`` section, which only
this family reads. Defaults equal the study (and upstream pix2pixHD). No torch here."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from dcesynth.config import StrictModel


class Pix2PixHDConfig(StrictModel):
    family: Literal["pix2pixhd"] = Field("pix2pixhd", description="the generator family")
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

    divisor_key: ClassVar[str] = "model.n_downsample"  # the setting that decides the divisor

    @property
    def divisor(self) -> int:
        """What an image side must divide by: the generator halves it this many times."""
        return 2 ** (self.n_downsample + (1 if self.generator == "local" else 0))

    def in_channels(self) -> int:
        """Channels of the pre-contrast input the generator takes."""
        return 3 if self.replicate_input else 1

    def out_channels(self, phases: int) -> int:
        """Channels the generator writes for ``phases`` generated post phases."""
        return 3 if phases == 1 and self.replicate_single_phase else phases

    def check_training(self, loss: LossConfig) -> None:
        """Nothing to refuse: the ``loss`` section is this family's."""


class LossConfig(StrictModel):
    """pix2pixHD's losses (the ``loss`` section; other families refuse a changed one)."""

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
