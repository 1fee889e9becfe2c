"""The paired test shared by Table 2's per-case box comparison and Table 3's cells."""

from __future__ import annotations

import numpy as np


def wilcoxon_p(x: list[float], y: list[float]) -> float | None:
    """Two-sided paired Wilcoxon signed-rank p-value (exact for small n without ties);
    1.0 when every pair is equal; None with fewer than 2 pairs."""
    from scipy.stats import wilcoxon

    if len(x) != len(y):
        raise ValueError(f"paired test of {len(x)} and {len(y)} values")
    if len(x) < 2:
        return None
    d = np.asarray(x, float) - np.asarray(y, float)
    if np.allclose(d, 0):
        return 1.0
    return float(wilcoxon(x, y, alternative="two-sided").pvalue)
