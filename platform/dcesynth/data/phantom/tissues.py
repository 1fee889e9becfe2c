"""Tissue properties of the phantom: T1 by field strength, proton density, default kinetics.

T1 (ms) at 1.5 T / 3 T: fat, FGT and blood (1.5 T) from PHANTOM.md (Henze Bancroft et al.
2022; Edden et al. 2010); muscle and blood at 3 T from Stanisz et al., MRM 2005. Skin, lung and
necrosis are rough values: they only shape the picture, no analysis reads them. Lesion tissue
is drawn per lesion (lesions.py).
"""

from __future__ import annotations

from dcesynth.data.phantom.anatomy import Tissue

# label → (T1 at 1.5 T, T1 at 3 T) in ms
T1_MS: dict[int, tuple[float, float]] = {
    Tissue.AIR: (1000.0, 1000.0),
    Tissue.SKIN: (1000.0, 1300.0),
    Tissue.FAT: (296.0, 423.0),
    Tissue.FGT: (1266.0, 1680.0),
    Tissue.MUSCLE: (1008.0, 1412.0),
    Tissue.BLOOD: (1440.0, 1932.0),
    Tissue.LUNG: (1200.0, 1300.0),
}
NECROSIS_T1_MS = (2200.0, 2600.0)

# relative proton density (M0); fat is further scaled by the fat-suppression residual
M0: dict[int, float] = {
    Tissue.AIR: 0.0,
    Tissue.SKIN: 0.7,
    Tissue.FAT: 0.95,
    Tissue.FGT: 0.8,
    Tissue.MUSCLE: 0.7,
    Tissue.BLOOD: 0.85,
    Tissue.LUNG: 0.05,
}
NECROSIS_M0 = 0.9

# Extended-Tofts parameters (Ktrans /min, ve, vp) of the non-lesion tissues; fat, air and lung
# do not enhance; blood is handled apart (its concentration is the AIF itself).
TOFTS: dict[int, tuple[float, float, float]] = {
    Tissue.SKIN: (0.02, 0.2, 0.02),
    Tissue.MUSCLE: (0.05, 0.12, 0.02),
    Tissue.FGT: (0.03, 0.3, 0.01),  # background parenchymal enhancement, scaled per case
}
# BPE level (BI-RADS) → multiplier of the FGT Ktrans, and its share in a screening population
BPE_LEVELS: dict[str, tuple[float, float]] = {
    "minimal": (0.3, 0.4),
    "mild": (0.7, 0.35),
    "moderate": (1.0, 0.17),
    "marked": (1.8, 0.08),
}
# Lesion kinetics drawn per curve type, (low, high) for Ktrans, ve, vp. Chosen so that with the
# Parker AIF and a Duke schedule each type is reachable; the draw is kept only if the simulated
# curve really has that type (see case.sample_lesion_kinetics).
LESION_TOFTS_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "I": ((0.02, 0.08), (0.6, 0.95), (0.002, 0.02)),
    "II": ((0.04, 0.15), (0.35, 0.9), (0.005, 0.03)),
    "III": ((0.15, 1.2), (0.1, 0.5), (0.02, 0.08)),
}


def t1_for(label_t1: tuple[float, float], field_t: float) -> float:
    return label_t1[0] if field_t < 2.0 else label_t1[1]
