"""The flow's velocity network: MONAI's ``DiffusionModelUNet`` in 2-D, conditioned by
concatenation (the inferer's ``concat`` mode): input channels are the moving image x_t (one
per phase, plus the mask's when it is learned) followed by the pre-contrast slice."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from dcesynth.models.flow.config import RectifiedFlowConfig


def build_unet(m: RectifiedFlowConfig, phases: int) -> nn.Module:
    """A freshly initialised velocity network for ``phases`` generated post phases.

    Args:
        m: the family's config (``TrainConfig.model``).
        phases: how many post phases are generated.
    """
    from monai.networks.nets import DiffusionModelUNet

    moving = m.flow_channels(phases)
    levels = len(m.channels)
    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=moving + m.in_channels(),  # x_t, then the condition
        out_channels=moving,  # the velocity of x_t
        num_res_blocks=m.num_res_blocks,
        channels=m.channels,
        attention_levels=m.attention_levels or (False,) * levels,
        norm_num_groups=m.norm_num_groups,
        num_head_channels=m.num_head_channels,
        # torch's scaled_dot_product_attention: the same weights and result, without the
        # attention matrix in memory (at the 64² level of a 512² slice: 4096² per head)
        use_flash_attention=True,
    )
