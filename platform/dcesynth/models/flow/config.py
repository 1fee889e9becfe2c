"""The conditional rectified flow's config: the ``model`` section with
``family: rectified_flow``. No torch here (configs load before any heavy import).

The flow learns a velocity field that carries a start image x₁ to the target x₀ along
straight lines, x_t = (1 − t)·x₀ + t·x₁ (MONAI's ``RFlowScheduler``), with the pre-contrast
slice concatenated to x_t as the condition. Sampling integrates it from t = 1 to 0 in
``sampling_steps`` Euler steps, ``samples`` times per slice, and averages.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from dcesynth.config import StrictModel


class RectifiedFlowConfig(StrictModel):
    family: Literal["rectified_flow"] = Field("rectified_flow", description="the generator family")
    # --- the network: MONAI's DiffusionModelUNet (2-D) -------------------------------------
    channels: tuple[int, ...] = Field(
        (32, 64, 128, 128), min_length=2, description="UNet channels per level"
    )
    attention_levels: tuple[bool, ...] | None = Field(
        None, description="self-attention per level (as many as channels); None: none"
    )
    num_res_blocks: int = Field(2, ge=1, description="residual blocks per level")
    norm_num_groups: int = Field(32, ge=1, description="GroupNorm groups; divides every channel")
    num_head_channels: int = Field(32, ge=1, description="channels per attention head")
    # --- what is learned ----------------------------------------------------------------
    target: Literal["post", "subtraction"] = Field(
        "subtraction",
        description="x₀: the post-contrast image, or post − pre (better for DDPMs on "
        "MAMA-MIA in Ibarra et al. 2025); generate() returns post either way",
    )
    start: Literal["noise", "pre"] = Field(
        "noise",
        description="x₁: Gaussian noise, or a bridge from the copy-the-pre-contrast guess "
        "(pre for target post, 0 for subtraction) plus bridge_noise·noise",
    )
    bridge_noise: float = Field(0.5, ge=0, description="noise sd added to the bridge's start")
    mask_channel: bool = Field(
        False,
        description="the tumour mask as one more generated channel during training: the "
        "network must localise lesions; sampling generates and drops it (never an input)",
    )
    train_timesteps: int = Field(1000, ge=1, description="RFlowScheduler's num_train_timesteps")
    timestep_sampling: Literal["uniform", "logit-normal"] = Field(
        "uniform", description="how training draws t (RFlowScheduler's sample_method)"
    )
    loss: Literal["mse", "l1"] = Field("mse", description="on the velocity")
    # --- sampling (validation, synthesis, predict) --------------------------------------
    sampling_steps: int = Field(8, ge=1, description="Euler steps from t = 1 to 0")
    samples: int = Field(1, ge=1, description="K samples per slice, averaged")
    sampling_seed: int = Field(0, ge=0, description="noise seed (per slice: seed and index)")

    @model_validator(mode="after")
    def _shape(self) -> RectifiedFlowConfig:
        if bad := [c for c in self.channels if c % self.norm_num_groups]:
            raise ValueError(
                f"model.channels {list(self.channels)}: {bad} not divisible by "
                f"model.norm_num_groups {self.norm_num_groups} (GroupNorm)"
            )
        att = self.attention_levels
        if att is not None and len(att) != len(self.channels):
            raise ValueError(
                f"model.attention_levels: {len(att)} values for {len(self.channels)} levels "
                "(model.channels); give one per level, or None"
            )
        # MONAI's middle block always attends, at the last level's channels
        attended = {self.channels[-1]} | {
            c for c, a in zip(self.channels, att or (), strict=False) if a
        }
        if bad := sorted(c for c in attended if c % self.num_head_channels):
            raise ValueError(
                f"model.num_head_channels {self.num_head_channels} must divide the channels "
                f"of every attention block: {bad} (the last level of model.channels always "
                "has one, and each level with model.attention_levels true)"
            )
        if self.sampling_steps > self.train_timesteps:
            raise ValueError(
                f"model.sampling_steps {self.sampling_steps} > model.train_timesteps "
                f"{self.train_timesteps}: at most one step per training timestep"
            )
        return self

    divisor_key: ClassVar[str] = "model.channels"  # the setting that decides the divisor

    @property
    def divisor(self) -> int:
        """What an image side must divide by: the UNet halves it once per level but the last."""
        return 2 ** (len(self.channels) - 1)

    def in_channels(self) -> int:
        """Channels of the pre-contrast input the generator takes (the condition)."""
        return 1

    def flow_channels(self, phases: int) -> int:
        """Channels the flow moves: one per phase, and the mask's when it is learned too."""
        return phases + (1 if self.mask_channel else 0)

    def out_channels(self, phases: int) -> int:
        """Channels ``generate`` returns for ``phases`` post phases (the mask is dropped)."""
        return phases

    def check_training(self, loss: Any) -> None:
        """Refuse a changed ``loss`` section: those are pix2pixHD's losses, unused here."""
        if loss != type(loss)():
            changed = sorted(k for k, v in loss if v != type(loss).model_fields[k].default)
            raise ValueError(
                f"loss.{changed[0]}: the `loss` section holds pix2pixHD's losses; family "
                "rectified_flow trains on the velocity (model.loss: mse or l1) and reads "
                f"none of {changed}; remove them or use model.family: pix2pixhd"
            )
