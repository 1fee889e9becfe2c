"""pix2pixHD (Wang et al., CVPR 2018), the study's generator: networks.py, losses.py and its
config (config.py). Its training step is training/step.py's ``GanStep``."""
