"""The lesion model: every property of a lesion drawn once, jointly, from its kind.

A lesion is one :class:`LesionDraw`: its kind (invasive cancer, or an optional benign
distractor), Kuhl curve type, shape and margin class, size, necrotic core, relaxation (T1),
proton density and internal heterogeneity, and whether it sits at the FGT–fat interface.
Geometry (anatomy.py: where it sits, what it displaces), signal (case.py: what it is made of)
and kinetics (case.py: how it enhances) all read this one object; nothing downstream re-draws
any of it. The couplings are what makes the pre-contrast image informative without giving the
answer away:

* kind → curve type with Kuhl's frequencies (cancers 8.9 / 33.6 / 57.4 %, benign 83.0 / 11.5 /
  5.5 %; Kuhl et al., Radiology 1999), exactly, whatever the other draws;
* (kind, curve type) → shape class: cancers are mostly irregular or spiculated, wash-out
  cancers more often round (the triple-negative phenotype, Galati et al. 2022), persistent ones
  more often oval; benign lesions are oval or round and never spiculated (the ordering of
  malignancy by feature in Liberman et al., AJR 2002; the table itself is our assumption);
* (shape, curve type, size) → necrotic core: round wash-out cancers most often;
* kind → relaxation: cancers are fat-free with T1 from Meng et al. 2020 (3 T) scaled to 1.5 T
  by the FGT ratio of Rakow-Penner et al. 2006; their proton density over FGT's is the
  phantom's conspicuity parameter (``tumour_pd``), set by ``dcectl calibrate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from dcesynth.data.geometry import Geometry
from dcesynth.data.phantom.config import PhantomConfig

Kind = Literal["invasive", "benign"]
Shape = Literal["oval", "round", "irregular", "spiculated"]
SHAPES: tuple[Shape, ...] = ("oval", "round", "irregular", "spiculated")

#: P(shape | kind, curve type). Cancers: irregular/spiculated dominate (Liberman 2002: spiculated
#: margins 80 % malignant, irregular shape 32 %, oval/circumscribed the lowest rates); round goes
#: with wash-out (triple-negative, Galati 2022); oval with persistent curves. Benign: oval/round.
SHAPE_GIVEN_TYPE: dict[str, dict[str, dict[str, float]]] = {
    "invasive": {
        "I": {"oval": 0.30, "round": 0.05, "irregular": 0.35, "spiculated": 0.30},
        "II": {"oval": 0.15, "round": 0.10, "irregular": 0.40, "spiculated": 0.35},
        "III": {"oval": 0.10, "round": 0.20, "irregular": 0.40, "spiculated": 0.30},
    },
    "benign": {t: {"oval": 0.70, "round": 0.20, "irregular": 0.10} for t in ("I", "II", "III")},
}
#: Cancer T1 at 1.5 T from the 3 T value: the FGT ratio 1266/1445 of Rakow-Penner et al. 2006.
T1_15_OVER_3T = 1266.0 / 1445.0
#: Benign lesions: lower T1 than cancers (Meng et al. 2020 report "benign lower T1"); their
#: proton density is not modelled apart from the cancers'.
BENIGN_T1_FACTOR = 0.9
NECROSIS_MIN_DIAMETER_MM = 15.0


@dataclass(frozen=True)
class LesionDraw:
    """One lesion's jointly drawn properties (what ground truth records for it)."""

    kind: Kind
    curve_type: Literal["I", "II", "III"]
    shape: Shape
    diameter_mm: float
    necrotic: bool
    core_fraction: float  # necrotic core radius over the lesion's
    t1_ms: float  # at the case's field strength
    pd: float  # proton density over FGT's
    heterogeneity: float  # sd of the smooth internal M0 variation
    at_interface: bool  # placement wanted at the FGT–fat interface

    @property
    def spiculated(self) -> bool:
        return self.shape == "spiculated"

    def to_dict(self) -> dict:
        return asdict(self)


def pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """One key of ``weights`` drawn with probability proportional to its weight."""
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], float)
    return str(keys[rng.choice(len(keys), p=p / p.sum())])


def draw_diameter(rng: np.random.Generator, cfg: PhantomConfig, min_mm: float) -> float:
    """Log-normal diameter (median, sigma of the config) truncated to the config's range.

    ``min_mm`` raises the lower bound where the grid is too coarse for smaller lesions.
    """
    lo, hi = cfg.lesion_diameter_mm
    lo = min(max(lo, min_mm), hi)
    for _ in range(100):  # rejection keeps the shape of the distribution inside the range
        d = float(cfg.lesion_diameter_median_mm * np.exp(cfg.lesion_diameter_sigma * rng.normal()))
        if lo <= d <= hi:
            return d
    return float(np.clip(cfg.lesion_diameter_median_mm, lo, hi))


def draw_lesion(
    rng: np.random.Generator,
    cfg: PhantomConfig,
    field_t: float,
    diameter_mm: float,
    kind: Kind | None = None,
) -> LesionDraw:
    """Draw one lesion's properties jointly (see the module docstring for the couplings).

    Args:
        rng: the case's generator.
        cfg: the cohort config (frequencies, relaxation, conspicuity).
        field_t: the case's field strength (1.5 or 3 T), for T1.
        diameter_mm: the lesion's diameter (drawn by the caller: satellites are smaller).
        kind: force the kind (a multifocal case's satellites share the index lesion's);
            ``None`` draws it with ``cfg.benign_fraction``.
    """
    if kind is None:
        kind = "benign" if rng.random() < cfg.benign_fraction else "invasive"
    weights = cfg.curve_type_weights if kind == "invasive" else cfg.benign_curve_type_weights
    ctype = pick(rng, weights)
    shape = pick(rng, SHAPE_GIVEN_TYPE[kind][ctype])
    p_necrosis = 0.0
    if kind == "invasive" and diameter_mm >= NECROSIS_MIN_DIAMETER_MM:
        round_washout = shape == "round" and ctype == "III"
        p_necrosis = cfg.necrotic_fraction_round_washout if round_washout else cfg.necrotic_fraction
    necrotic = bool(rng.random() < p_necrosis)
    core_fraction = float(rng.uniform(0.35, 0.6))
    mean3, sd3 = cfg.tumour_t1_3t_ms
    t1_3t = float(np.clip(rng.normal(mean3, sd3), mean3 - 2.5 * sd3, mean3 + 2.5 * sd3))
    t1 = t1_3t * (1.0 if field_t >= 2.0 else T1_15_OVER_3T)
    if kind == "benign":
        t1 *= BENIGN_T1_FACTOR
    pd = float(max(0.2, rng.normal(cfg.tumour_pd, cfg.tumour_pd_sd)))
    return LesionDraw(
        kind=kind,
        curve_type=ctype,  # type: ignore[arg-type]
        shape=shape,  # type: ignore[arg-type]
        diameter_mm=float(diameter_mm),
        necrotic=necrotic,
        core_fraction=core_fraction,
        t1_ms=float(t1),
        pd=pd,
        heterogeneity=float(cfg.lesion_heterogeneity),
        at_interface=bool(rng.random() < cfg.interface_fraction),
    )


def draw_case_lesions(
    rng: np.random.Generator, cfg: PhantomConfig, field_t: float, n: int, min_mm: float
) -> list[LesionDraw]:
    """The lesions of one case: the index lesion first, satellites smaller and of its kind."""
    first = draw_diameter(rng, cfg, min_mm)
    draws = [draw_lesion(rng, cfg, field_t, first)]
    lo = max(cfg.lesion_diameter_mm[0], min_mm)
    for _ in range(n - 1):
        d = max(min(lo, first), first * float(rng.uniform(0.4, 0.8)))
        draws.append(draw_lesion(rng, cfg, field_t, d, kind=draws[0].kind))
    return draws


# --- geometry of the draw: the shape class and where placement probes the tissue ----------

#: 26 unit directions (cube faces, edges and corners): where placement probes the tissue.
_PROBES = np.array(
    [
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if (i, j, k) != (0, 0, 0)
    ],
    float,
)
_PROBES /= np.linalg.norm(_PROBES, axis=1, keepdims=True)


def fgt_around(p: np.ndarray, r: float, geom: Geometry, g: np.ndarray, thr: float) -> float:
    """Share of FGT on two spheres (0.8 r and 1.25 r) around ``p``: what the lesion will touch."""
    pts = np.concatenate([p + 0.8 * r * _PROBES, p + 1.25 * r * _PROBES])
    idx = [
        np.clip(np.rint((pts[:, a] - geom.origin[a]) / geom.spacing[a]).astype(int), 0, n - 1)
        for a, n in ((2, geom.shape[0]), (1, geom.shape[1]), (0, geom.shape[2]))
    ]
    return float((g[idx[0], idx[1], idx[2]] > thr).mean())


def shape_params(rng: np.random.Generator, shape: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Axis factors, lobulation (m, 5) and spicule count of a shape class.

    Round: near-spherical and smooth; oval: elongated and smooth (circumscribed margins);
    irregular: strongly lobulated; spiculated: lobulated with spicules.
    """
    if shape == "round":
        f, n_lobes, amp, n_sp = rng.uniform(0.93, 1.07, 3), 3, (0.0, 0.02), 0
    elif shape == "oval":
        f, n_lobes, amp, n_sp = (
            np.array([1.35, 1.0, 0.75]) * rng.uniform(0.92, 1.08, 3),
            3,
            (
                0.0,
                0.02,
            ),
            0,
        )
    elif shape == "irregular":
        f, n_lobes, amp, n_sp = rng.uniform(0.75, 1.25, 3), 8, (0.06, 0.16), 0
    elif shape == "spiculated":
        f, n_lobes, amp, n_sp = rng.uniform(0.8, 1.2, 3), 6, (0.03, 0.09), int(rng.integers(5, 11))
    else:
        raise ValueError(
            f"unknown lesion shape {shape!r}; allowed: round, oval, irregular, spiculated"
        )
    lobes = np.column_stack(
        [
            rng.normal(0, 3.0, (n_lobes, 3)),
            rng.uniform(0, 2 * np.pi, n_lobes),
            rng.uniform(*amp, n_lobes),
        ]
    )
    return f, lobes, n_sp
