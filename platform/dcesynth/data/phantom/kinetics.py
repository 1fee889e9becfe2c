"""Contrast kinetics and MR signal: Parker AIF, extended Tofts, relaxivity, SPGR, curve types.

Units: time in minutes, concentration in mM, Ktrans in 1/min, T1 in ms, R1 in 1/s, TR in ms.
References are in ``docs/phantom.md``; each function names its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CurveType = Literal["I", "II", "III"]
CURVE_TYPES: tuple[CurveType, ...] = ("I", "II", "III")

# r1 relaxivity in plasma, s⁻¹·mM⁻¹, at 1.5 T and 3 T (PHANTOM.md).
RELAXIVITY: dict[str, dict[float, float]] = {
    "gadopentetate": {1.5: 4.1, 3.0: 3.7},
    "gadobenate": {1.5: 6.3, 3.0: 5.5},
    "gadobutrol": {1.5: 5.2, 3.0: 5.0},
    "gadoterate": {1.5: 3.6, 3.0: 3.5},
}
# DICOM ContrastBolusAgent strings as scanners write them.
AGENT_TRADE_NAMES: dict[str, str] = {
    "gadopentetate": "Magnevist",
    "gadobenate": "MultiHance",
    "gadobutrol": "Gadavist",
    "gadoterate": "Dotarem",
}
FIELD_STRENGTHS: tuple[float, ...] = (1.5, 3.0)


def relaxivity(agent: str, field_t: float) -> float:
    """r1 (s⁻¹·mM⁻¹) of ``agent`` at ``field_t`` tesla.

    Raises:
        ValueError: naming the allowed agents or field strengths.
    """
    if agent not in RELAXIVITY:
        raise ValueError(f"unknown contrast agent {agent!r}; allowed: {sorted(RELAXIVITY)}")
    table = RELAXIVITY[agent]
    if field_t not in table:
        raise ValueError(f"no relaxivity for field strength {field_t} T; allowed: {sorted(table)}")
    return table[field_t]


@dataclass(frozen=True)
class ParkerAIF:
    """Parker population AIF (Parker et al., MRM 2006), whole-blood concentration in mM."""

    a1: float = 0.809
    sigma1: float = 0.0563
    t1: float = 0.17046
    a2: float = 0.330
    sigma2: float = 0.132
    t2: float = 0.365
    alpha: float = 1.050
    beta: float = 0.1685
    s: float = 38.078
    tau: float = 0.483

    def blood(self, t_min: np.ndarray | float, delay_min: float = 0.0) -> np.ndarray:
        """Cb(t) in mM; t in minutes after injection, shifted by the bolus arrival delay.

        Zero before arrival: Parker's fit is defined from arrival on (at t = 0 it is ~0.06 mM).
        """
        t = np.asarray(t_min, dtype=float) - delay_min
        gauss = sum(
            a / (sg * np.sqrt(2 * np.pi)) * np.exp(-((t - tn) ** 2) / (2 * sg**2))
            for a, sg, tn in ((self.a1, self.sigma1, self.t1), (self.a2, self.sigma2, self.t2))
        )
        # exp(-s(t-τ)) overflows for very negative t; those times are zeroed below anyway.
        with np.errstate(over="ignore"):
            sigmoid = self.alpha * np.exp(-self.beta * t) / (1.0 + np.exp(-self.s * (t - self.tau)))
        return np.where(t >= 0, gauss + sigmoid, 0.0)

    def plasma(self, t_min: np.ndarray | float, hct: float, delay_min: float = 0.0) -> np.ndarray:
        """Cp = Cb / (1 − Hct)."""
        if not 0 <= hct < 1:
            raise ValueError(f"haematocrit must be in [0, 1), got {hct}")
        return self.blood(t_min, delay_min) / (1.0 - hct)


def _exp_weights(k: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact weights for ∫₀^dt c(s)·exp(−k(dt−s)) ds with c linear on [0, dt].

    Returns ``(E, a, b)``: E = exp(−k·dt), a = ∫ e^{−k(dt−s)} ds, b = ∫ s·e^{−k(dt−s)} ds / dt,
    so that the integral is ``a·c0 + b·(c1 − c0)``. Series expansions avoid the cancellation of
    the closed forms when k·dt is tiny (k = 0 is allowed: no exchange).
    """
    x = k * dt
    small = x < 1e-5
    xs = np.where(small, 1.0, x)  # placeholders keep the closed forms finite where unused
    ks = np.where(small, 1.0, k)
    em1 = np.expm1(-xs)  # e^{-x} − 1, accurate for small x
    a = np.where(small, dt * (1 - x / 2 + x**2 / 6), -em1 / ks)
    # b = dt·(x + expm1(−x)) / x²
    b = np.where(small, dt * (0.5 - x / 6 + x**2 / 24), dt * (xs + em1) / xs**2)
    return np.exp(-x), a, b


def tofts(
    t_min: np.ndarray,
    cp: np.ndarray,
    ktrans: float | np.ndarray,
    ve: float | np.ndarray,
    vp: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Extended Tofts tissue concentration Ct(t) = vp·Cp(t) + Ktrans ∫ Cp(u)·e^{−kep(t−u)} du.

    The convolution is integrated *exactly* for a Cp that is piecewise linear between the given
    samples (a recursive exponential integrator), so its only error is how well linear pieces
    describe Cp: on a 1 s grid that is far below any noise. Repeated time points are allowed and
    express a jump (a piecewise-constant input is represented exactly that way).

    Args:
        t_min: non-decreasing sample times (minutes), shape (T,).
        cp: plasma concentration (mM) at those times, shape (T,).
        ktrans: transfer constant (1/min), scalar or shape (P,) for P tissues at once.
        ve: extravascular extracellular volume fraction, (0, 1].
        vp: plasma volume fraction, [0, 1].

    Returns:
        Ct with shape (T,) for scalar parameters, else (P, T).
    """
    t = np.asarray(t_min, dtype=float)
    c = np.asarray(cp, dtype=float)
    if t.ndim != 1 or t.shape != c.shape:
        raise ValueError(f"t_min and cp must be 1-D of equal length, got {t.shape} and {c.shape}")
    if np.any(np.diff(t) < 0):
        raise ValueError("t_min must be non-decreasing")
    scalar = np.ndim(ktrans) == 0 and np.ndim(ve) == 0 and np.ndim(vp) == 0
    kt, ve_, vp_ = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (ktrans, ve, vp))
    kt, ve_, vp_ = np.broadcast_arrays(kt, ve_, vp_)
    if np.any(kt < 0) or np.any(ve_ <= 0) or np.any(ve_ > 1) or np.any(vp_ < 0) or np.any(vp_ > 1):
        raise ValueError("need Ktrans ≥ 0, 0 < ve ≤ 1 and 0 ≤ vp ≤ 1")
    kep = kt / ve_
    conv = np.zeros((kt.size, t.size))
    f = np.zeros(kt.size)
    for i in range(t.size - 1):
        dt = t[i + 1] - t[i]
        if dt > 0:
            e, a, b = _exp_weights(kep, dt)
            f = e * f + a * c[i] + b * (c[i + 1] - c[i])
        conv[:, i + 1] = f
    ct = vp_[:, None] * c[None, :] + kt[:, None] * conv
    return ct[0] if scalar else ct


def spgr_signal(
    m0: np.ndarray | float, r1_per_s: np.ndarray | float, tr_ms: float, flip_deg: float
) -> np.ndarray:
    """Spoiled gradient echo: S = M0·sin α·(1 − E1)/(1 − cos α·E1), E1 = exp(−TR·R1)."""
    if tr_ms <= 0 or flip_deg <= 0:
        raise ValueError(f"need TR > 0 and flip angle > 0, got TR={tr_ms} ms, flip={flip_deg}°")
    alpha = np.deg2rad(flip_deg)
    e1 = np.exp(-(tr_ms / 1000.0) * np.asarray(r1_per_s, dtype=float))
    return np.asarray(m0) * np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1)


def r1_of(t10_ms: np.ndarray | float, conc_mm: np.ndarray | float, r1: float) -> np.ndarray:
    """R1(t) = 1/T10 + r1·C(t), in 1/s."""
    return 1000.0 / np.asarray(t10_ms, dtype=float) + r1 * np.asarray(conc_mm, dtype=float)


def classify_curve(enhancement: np.ndarray, tol: float = 0.10) -> CurveType:
    """Kuhl curve type of an enhancement curve S(t_k) − S(t_0) over the post-contrast phases.

    * III (wash-out): the last phase is more than ``tol`` below the peak.
    * I (persistent): the last phase is the peak and more than ``tol`` above the first phase.
    * II (plateau): otherwise — the last phase within ±``tol`` of the peak and not rising.

    Raises:
        ValueError: with fewer than 2 post-contrast phases (no shape to classify).
    """
    e = np.asarray(enhancement, dtype=float)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"need ≥ 2 post-contrast phases to classify a curve, got shape {e.shape}")
    peak, first, last = e.max(), e[0], e[-1]
    if last < (1 - tol) * peak:
        return "III"
    if last >= peak and last > (1 + tol) * first:
        return "I"
    return "II"


def robust_curve_type(enhancement: np.ndarray, margin: float = 0.05) -> CurveType | None:
    """The curve type if it is the same with the 10 % threshold moved by ±``margin``, else None.

    The phantom only accepts lesions whose type is robust, so that per-phase drift and noise
    cannot flip the type recorded in the ground truth.
    """
    lo, hi = classify_curve(enhancement, 0.10 - margin), classify_curve(enhancement, 0.10 + margin)
    return lo if lo == hi == classify_curve(enhancement) else None
