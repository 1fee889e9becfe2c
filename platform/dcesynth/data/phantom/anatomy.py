"""Phantom anatomy: an axial-slab label volume of both breasts, chest wall, heart and lesions.

Layout (LPS mm; image rows run anterior → posterior, so the breasts point to the top):
an elliptic-cylinder thorax whose anterior surface is the chest wall, two breast ellipsoids in
front of it, skin on the body surface, subcutaneous fat and pectoral muscle layers over the
thorax, lungs inside with the heart and aorta (the blood pool), fibroglandular tissue (FGT) as a
thresholded smooth random field inside each breast, and lesions (lobulated ellipsoids, optional
spicules and necrotic core). Random fields live on a fixed physical grid, so the anatomy of a
case barely depends on the matrix it is sampled at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter, map_coordinates

from dcesynth.data.geometry import Geometry
from dcesynth.data.phantom.lesions import LesionDraw, fgt_around, shape_params


class Tissue(IntEnum):
    AIR = 0
    SKIN = 1
    FAT = 2
    FGT = 3
    MUSCLE = 4
    BLOOD = 5
    LUNG = 6


LESION_BASE = 10  # lesion i: label 10 + 2i (enhancing), 11 + 2i (necrotic core)
MAX_LESIONS = 3
# BI-RADS density category → share of FGT in the breast.
DENSITY_FGT_SHARE = {"a": (0.03, 0.22), "b": (0.27, 0.48), "c": (0.52, 0.73), "d": (0.77, 0.92)}
#: A lesion is at the FGT–fat interface when the parenchyma touching it is between 10 % and
#: 90 % FGT (Zhu et al. 2017 read it by eye: "at the interface" vs "surrounded by" one tissue).
INTERFACE_FGT_SHARE = (0.1, 0.9)


def at_interface(surround_fgt: float) -> bool:
    lo, hi = INTERFACE_FGT_SHARE
    return lo <= surround_fgt <= hi


def lesion_label(i: int, necrotic: bool = False) -> int:
    return LESION_BASE + 2 * i + int(necrotic)


@dataclass
class Lesion:
    """One lesion's geometry; its other properties are its joint ``draw`` (lesions.py).

    Positions in LPS mm; ``bbox`` (array order) and ``surround_fgt`` are filled in when drawn.
    """

    index: int
    side: str  # "L" or "R" (patient side)
    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    rotation: np.ndarray
    draw: LesionDraw
    lobes: np.ndarray  # (m, 5): wave vector (3), phase, amplitude
    spicules: np.ndarray  # (n, 4): direction (3), length in units of the mean radius
    voxels: int = 0
    bbox: tuple[int, int, int, int, int, int] | None = None  # z0, z1, y0, y1, x0, x1 (inclusive)
    surround_fgt: float | None = None  # FGT share of the parenchyma touching the lesion

    @property
    def diameter_mm(self) -> float:
        return 2.0 * float(np.mean(self.semi_axes_mm))

    @property
    def necrotic(self) -> bool:
        return self.draw.necrotic

    @property
    def spiculated(self) -> bool:
        return self.draw.spiculated

    @property
    def at_interface(self) -> bool:
        """Measured: the tissue touching the lesion holds both FGT and fat."""
        return self.surround_fgt is not None and at_interface(self.surround_fgt)


@dataclass
class Anatomy:
    labels: np.ndarray  # uint8 (z, y, x)
    fgt_share: np.ndarray  # float32 (z, y, x): soft FGT fraction inside the breasts, else 0
    breast: np.ndarray  # bool (z, y, x): breast parenchyma region (fat + FGT)
    lesions: list[Lesion]
    density: str
    fgt_fraction: float  # realised share of FGT in the breasts
    facts: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return (self.labels >= LESION_BASE).astype(np.uint8)


def axes_mm(geom: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS coordinates of the x (columns), y (rows) and z (slices) axes; axial grids only."""
    if not np.allclose(geom.direction_matrix, np.eye(3)):
        raise ValueError("the phantom draws on axial grids with identity direction")
    nz, ny, nx = geom.shape
    return tuple(  # type: ignore[return-value]
        (geom.origin[a] + geom.spacing[a] * np.arange(n)).astype(np.float32)
        for a, n in ((0, nx), (1, ny), (2, nz))
    )


def _interp_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Dense (len(dst), len(src)) matrix of linear-interpolation weights (src ascending)."""
    pos = np.clip(np.interp(dst, src, np.arange(src.size)), 0, src.size - 1)
    lo = (
        np.minimum(np.floor(pos).astype(int), src.size - 2)
        if src.size > 1
        else np.zeros(dst.size, int)
    )
    w = np.zeros((dst.size, src.size), np.float32)
    frac = (pos - lo).astype(np.float32)
    w[np.arange(dst.size), lo] = 1 - frac
    if src.size > 1:
        w[np.arange(dst.size), lo + 1] += frac
    return w


def smooth_field(
    rng: np.random.Generator, geom: Geometry, corr_mm: float, grid_mm: float = 2.0
) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field (correlation length ``corr_mm``) on ``geom``.

    Drawn on a coarse grid of ``grid_mm`` covering the volume and interpolated separably, which
    costs a few matrix products instead of a full-resolution 3-D filter.
    """
    x, y, z = axes_mm(geom)
    grid_mm = max(grid_mm, corr_mm / 4)
    coarse = [np.arange(a[0] - 2 * grid_mm, a[-1] + 2 * grid_mm + 1e-3, grid_mm) for a in (z, y, x)]
    noise = rng.standard_normal(tuple(c.size for c in coarse), dtype=np.float32)
    f = gaussian_filter(noise, sigma=corr_mm / grid_mm, mode="reflect")
    f /= f.std() + 1e-12
    wz, wy, wx = (_interp_matrix(c, a) for c, a in zip(coarse, (z, y, x), strict=True))
    f = np.tensordot(f, wx, axes=([2], [1]))  # (cz, cy, nx)
    f = np.einsum("yc,zcx->zyx", wy, f)  # (cz, ny, nx)
    return np.tensordot(wz, f, axes=([1], [0])).astype(np.float32)  # (nz, ny, nx)


def _depth_ellipsoid(d: list[np.ndarray], semi: list[float]) -> np.ndarray:
    """Approximate depth (mm, > 0 inside) below the surface of an axis-aligned ellipsoid.

    First-order distance (1 − ρ)/|∇ρ|: exact on spheres and accurate near any surface, which is
    where it is used (skin, fat and muscle layers).
    """
    q = sum((di / s) ** 2 for di, s in zip(d, semi, strict=True))
    g = np.sqrt(sum((di / s**2) ** 2 for di, s in zip(d, semi, strict=True)))
    rho = np.sqrt(q)
    return np.where(g > 1e-6, (1 - rho) * rho / np.maximum(g, 1e-6), min(semi)).astype(np.float32)


def build_anatomy(rng: np.random.Generator, geom: Geometry, cfg_facts: dict) -> Anatomy:
    """Draw one case's anatomy on ``geom``.

    Args:
        rng: the case's generator (all randomness of the anatomy comes from it).
        geom: the volume grid (axial, identity direction).
        cfg_facts: ``density``, ``draws`` (one :class:`LesionDraw` per lesion, index lesion
            first) and ``mass_effect`` — drawn or taken by the caller from the cohort config.
    """
    x, y, z = axes_mm(geom)
    X, Y, Z = x[None, None, :], y[None, :, None], z[:, None, None]
    fov_y = y[-1] - y[0]
    # Thorax: elliptic cylinder whose anterior edge (the chest wall) sits just in front of centre.
    y_cw = float(rng.uniform(0.0, 0.08) * fov_y)
    a_th, b_th = float(rng.uniform(0.42, 0.48) * fov_y), float(rng.uniform(0.30, 0.36) * fov_y)
    d_th = _depth_ellipsoid([X - 0.0, Y - (y_cw + b_th)], [a_th, b_th])  # (1, ny, nx)
    # Breasts: ellipsoids anterior to the chest wall, slightly asymmetric.
    rx, ry, rz = (
        float(v)
        for v in rng.uniform((0.15, 0.24, 0.33), (0.21, 0.36, 0.45)) * (fov_y, fov_y, z[-1] - z[0])
    )
    breasts = {}
    for side, sign in (("R", -1.0), ("L", 1.0)):  # LPS: +x is the patient's left
        s = rng.uniform(0.93, 1.07)
        cx = sign * float(rng.uniform(0.20, 0.25) * fov_y)
        c = (cx, y_cw + 0.1 * ry, float(rng.uniform(-0.05, 0.05) * (z[-1] - z[0])))
        semi = (rx * s, ry * s, rz * s)
        breasts[side] = (c, semi, _depth_ellipsoid([X - c[0], Y - c[1], Z - c[2]], list(semi)))
    d_br = np.maximum(breasts["R"][2], breasts["L"][2])
    d_body = np.maximum(d_br, d_th)

    skin_mm = max(2.0, 0.5 * min(geom.spacing[:2]))
    fat_mm, muscle_mm = float(rng.uniform(6, 14)), float(rng.uniform(9, 15))
    labels = np.zeros(geom.shape, np.uint8)
    labels[d_body > 0] = Tissue.FAT
    deep = np.broadcast_to(d_th >= skin_mm + fat_mm, geom.shape)
    labels[deep] = Tissue.MUSCLE
    lung = np.broadcast_to(d_th >= skin_mm + fat_mm + muscle_mm, geom.shape)
    labels[lung] = Tissue.LUNG
    # Heart (inferior, left of midline) and aorta: the strongly, early enhancing blood pool.
    zc = z[0] + 0.3 * (z[-1] - z[0])
    heart = ((X - 0.06 * fov_y) / (0.17 * fov_y)) ** 2 + (
        (Y - (y_cw + 0.22 * fov_y)) / (0.13 * fov_y)
    ) ** 2 + ((Z - zc) / (0.35 * (z[-1] - z[0]))) ** 2 < 1
    aorta = (X - 0.05 * fov_y) ** 2 + (Y - (y_cw + 0.38 * fov_y)) ** 2 < (0.035 * fov_y) ** 2
    labels[lung & (heart | aorta)] = Tissue.BLOOD
    # Breast parenchyma: inside a breast, under the skin, in front of the muscle.
    breast = (d_br > skin_mm) & ~deep
    labels[np.broadcast_to(d_body <= skin_mm, geom.shape) & (d_body > 0)] = Tissue.SKIN

    # FGT: smooth random field biased towards the breast centre, thresholded to the density share.
    density = cfg_facts["density"]
    share = float(rng.uniform(*DENSITY_FGT_SHARE[density]))
    rho_br = np.minimum(
        *(
            np.sqrt(((X - c[0]) / s[0]) ** 2 + ((Y - c[1]) / s[1]) ** 2 + ((Z - c[2]) / s[2]) ** 2)
            for c, s, _ in breasts.values()
        )
    )
    g = smooth_field(rng, geom, corr_mm=6.0) + 1.2 * (1.0 - rho_br)
    del rho_br
    vals = g[breast]
    thr = (
        float(np.quantile(vals[:: max(1, vals.size // 200_000)], 1.0 - share)) if vals.size else 0.0
    )
    # Lesions are placed on the undisturbed tissue, then push it aside (mass effect), and only
    # then is the tissue labelled: FGT bends around a lesion instead of being painted over.
    lesions: list[Lesion] = []
    for i, draw in enumerate(cfg_facts["draws"]):
        side = lesions[0].side if lesions else str(rng.choice(["L", "R"]))
        les = _place_lesion(rng, i, side, draw, breasts[side], lesions, geom, g, thr)
        if les is not None:
            lesions.append(les)
    for les in lesions:
        _push_aside(g, les, geom, float(cfg_facts.get("mass_effect", 0.0)))
    fgt_share = np.where(breast, 1.0 / (1.0 + np.exp(-(g - thr) / 0.12)), 0.0).astype(np.float32)
    labels[breast & (g > thr)] = Tissue.FGT
    labels[breast & (g <= thr)] = Tissue.FAT
    for les in lesions:
        _draw_lesion(les, labels, breast, geom)
    lesions = [les for les in lesions if les.voxels]
    fgt_frac = float((labels[breast] == Tissue.FGT).mean()) if breast.any() else 0.0
    facts = {
        "chest_wall_y_mm": y_cw,
        "fat_layer_mm": fat_mm,
        "muscle_layer_mm": muscle_mm,
        "breast_semi_axes_mm": [rx, ry, rz],
        "skin_mm": skin_mm,
    }
    return Anatomy(labels, fgt_share, breast, lesions, density, fgt_frac, facts)


def _place_lesion(rng, index, side, draw: LesionDraw, breast_def, placed, geom, g, thr):
    """A lesion centre deep enough inside the breast and apart from the others, at the FGT–fat
    interface if ``draw.at_interface`` (else inside FGT); ``None`` if none fits."""
    (cx, cy, cz), (sx, sy, sz), _ = breast_def
    _, _, z = axes_mm(geom)
    f, lobes, n_sp = shape_params(rng, draw.shape)
    best: tuple[float, np.ndarray, float] | None = None  # (miss, centre, radius)
    for attempt in range(600):
        r = draw.diameter_mm / 2 * (1.0 if attempt < 300 else 0.6)  # shrink if no room
        u = rng.uniform(-1, 1, 3)
        if (u**2).sum() > 1:
            continue
        p = np.array([cx + u[0] * sx * 0.75, cy - abs(u[1]) * sy * 0.8, cz + u[2] * sz * 0.75])
        rho = np.sqrt((((p - (cx, cy, cz)) / (sx, sy, sz)) ** 2).sum())
        depth = (1 - rho) * min(sx, sy, sz)
        if depth < r + 4 or p[1] > cy - r or not (z[0] + r <= p[2] <= z[-1] - r):
            continue
        if any(
            np.linalg.norm(p - np.asarray(o.center_mm)) < r + o.diameter_mm / 2 + 3 for o in placed
        ):
            continue
        share = fgt_around(p, r, geom, g, thr)
        # how far the site is from what the draw wants: 0 is a hit; else keep the closest
        # (a cancer not at the interface is embedded in FGT, where it arises: Zhu et al. 2017)
        miss = max(0.2 - share, share - 0.8, 0.0) if draw.at_interface else 1.0 - share
        if best is None or miss < best[0]:
            best = (miss, p, r)
        if miss <= (0.0 if draw.at_interface else 0.05):
            break
    if best is None:
        return None
    _, p, r = best
    semi = tuple(float(r * v) for v in f / f.mean())  # mean semi-axis is r: diameter as drawn
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    sp_dirs = rng.standard_normal((n_sp, 3))
    sp_dirs /= np.linalg.norm(sp_dirs, axis=1, keepdims=True) + 1e-12
    spicules = np.column_stack([sp_dirs, rng.uniform(1.4, 2.2, n_sp)]) if n_sp else np.zeros((0, 4))
    return Lesion(index, side, tuple(float(v) for v in p), semi, q, draw, lobes, spicules)


def _lesion_frame(les: Lesion, geom: Geometry, reach: float):
    """The array region within ``reach`` mm of the lesion centre, and its LPS offsets there."""
    x, y, z = axes_mm(geom)
    sl = []
    for a, ax in ((2, z), (1, y), (0, x)):
        lo = np.searchsorted(ax, les.center_mm[a] - reach)
        hi = np.searchsorted(ax, les.center_mm[a] + reach, side="right")
        sl.append(slice(int(lo), int(max(hi, lo + 1))))
    dz, dy, dx = np.meshgrid(
        z[sl[0]] - les.center_mm[2],
        y[sl[1]] - les.center_mm[1],
        x[sl[2]] - les.center_mm[0],
        indexing="ij",
    )
    return tuple(sl), np.stack([dx, dy, dz], axis=-1)  # LPS offsets


PUSH_REACH = 6.0  # normalised radius out to which a lesion's mass effect is carried


def _push_aside(g: np.ndarray, les: Lesion, geom: Geometry, mass_effect: float) -> None:
    """Mass effect: the tissue field ``g`` around the lesion is pushed outwards, in place.

    A share ``m`` of the lesion's volume displaces tissue, the rest replaces it: tissue that was
    at normalised radius ρ_s now sits at ρ with ρ³ = ρ_s³ + m (volume is conserved outside the
    lesion). m = 0 paints the lesion over the tissue; m = 1 pushes all of it aside.
    """
    if mass_effect <= 0:
        return
    # The displacement falls off as m/(3ρ²) but never ends: cut at ρ = 6 (a sixtieth of a semi-
    # axis left), the displaced volume leaves the region there, mostly into peripheral fat.
    region, d = _lesion_frame(les, geom, PUSH_REACH * max(les.semi_axes_mm))
    u = d @ les.rotation
    rho = np.sqrt(((u / np.asarray(les.semi_axes_mm)) ** 2).sum(-1))
    scale = np.cbrt(np.maximum(rho**3 - mass_effect, 0.0)) / np.maximum(rho, 1e-6)
    scale = np.where(rho < PUSH_REACH, scale, 1.0)
    src = np.asarray(les.center_mm) + d * scale[..., None]  # LPS mm
    coords = [(src[..., a] - geom.origin[a]) / geom.spacing[a] for a in (2, 1, 0)]
    g[region] = map_coordinates(g, coords, order=1, mode="nearest")


def _draw_lesion(les: Lesion, labels: np.ndarray, breast: np.ndarray, geom: Geometry) -> None:
    """Rasterise ``les`` into ``labels`` (only over breast parenchyma); record its box and the
    FGT share of the parenchyma touching it."""
    reach = max(les.semi_axes_mm) * (1.3 + (les.spicules[:, 3].max() if les.spiculated else 0.0))
    sl, d = _lesion_frame(les, geom, reach + 2 * max(geom.spacing))
    u = d @ les.rotation  # lesion frame
    rho = np.sqrt(((u / np.asarray(les.semi_axes_mm)) ** 2).sum(-1))
    n = u / (np.linalg.norm(u, axis=-1, keepdims=True) + 1e-9)
    lobul = sum(a * np.cos(n @ kv + ph) for *kv, ph, a in les.lobes)
    inside = rho < 1.0 + lobul
    r_mean = float(np.mean(les.semi_axes_mm))
    width = max(1.0, 0.5 * min(geom.spacing[:2]))
    for *v, length in les.spicules:
        t = np.clip(d @ np.asarray(v), 0, length * r_mean)
        dist = np.linalg.norm(d - t[..., None] * np.asarray(v), axis=-1)
        inside |= dist < width * (1.0 - t / (length * r_mean)) + 0.3 * width
    region = tuple(sl)
    sub = labels[region]
    inside &= breast[region] & (sub < LESION_BASE)  # never over another lesion (spicules reach far)
    core = (
        inside & (rho < les.draw.core_fraction * (1.0 + 0.5 * lobul))
        if les.necrotic
        else np.zeros_like(inside)
    )
    sub[inside] = lesion_label(les.index)
    sub[core] = lesion_label(les.index, necrotic=True)
    les.voxels = int(inside.sum())
    if les.voxels:
        idx = np.argwhere(inside)
        lo, hi = idx.min(0), idx.max(0)
        offs = [s.start for s in sl]
        les.bbox = tuple(int(v) for pair in zip(lo + offs, hi + offs, strict=True) for v in pair)
        shell = binary_dilation(inside, np.ones((3, 3, 3), bool)) & ~inside
        tissue = sub[shell & breast[region]]
        tissue = tissue[(tissue == Tissue.FGT) | (tissue == Tissue.FAT)]
        les.surround_fgt = float((tissue == Tissue.FGT).mean()) if tissue.size else None
