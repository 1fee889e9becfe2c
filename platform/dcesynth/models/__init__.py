"""pix2pixHD networks and losses (pure nn.Modules; see networks.py and losses.py)."""

from dcesynth.models.losses import PerceptualLoss, feature_matching_loss, lsgan_loss, vgg19_features
from dcesynth.models.networks import (
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    count_parameters,
)

__all__ = [
    "GlobalGenerator",
    "LocalEnhancer",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "PerceptualLoss",
    "count_parameters",
    "feature_matching_loss",
    "lsgan_loss",
    "vgg19_features",
]
