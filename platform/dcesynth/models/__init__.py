"""Generator families as pure nn.Modules, one sub-package each, side by side.

* ``pix2pixhd/``: the study's conditional GAN (networks, losses, config);
* ``flow/``: a conditional rectified flow built from MONAI's parts (config, network,
  training target and sampler).

Each family's config is its own typed model (``<family>/config.py``, light: no torch), chosen
by the ``family`` key of ``TrainConfig.model``. The pix2pixHD names are re-exported here lazily,
so importing a config never imports torch (``dcectl --help`` stays fast).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "PerceptualLoss": "dcesynth.models.pix2pixhd.losses",
    "feature_matching_loss": "dcesynth.models.pix2pixhd.losses",
    "lsgan_loss": "dcesynth.models.pix2pixhd.losses",
    "vgg19_features": "dcesynth.models.pix2pixhd.losses",
    "GlobalGenerator": "dcesynth.models.pix2pixhd.networks",
    "LocalEnhancer": "dcesynth.models.pix2pixhd.networks",
    "MultiscaleDiscriminator": "dcesynth.models.pix2pixhd.networks",
    "NLayerDiscriminator": "dcesynth.models.pix2pixhd.networks",
    "count_parameters": "dcesynth.models.pix2pixhd.networks",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dcesynth.models' has no attribute {name!r}")


__all__ = sorted(_LAZY)
