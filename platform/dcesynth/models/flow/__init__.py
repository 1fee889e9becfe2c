"""Conditional rectified flow from MONAI's parts: config.py (the family's typed config, no
torch), network.py (MONAI's ``DiffusionModelUNet``), rectified.py (the training target, the
start image and the sampler, with MONAI's ``RFlowScheduler`` and ``DiffusionInferer``)."""
