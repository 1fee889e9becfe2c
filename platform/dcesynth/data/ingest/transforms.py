"""Per-case preparation steps: normalisation, slice selection, square resize, pseudonyms.

Normalisers live in an explicit registry that fails loudly with the valid names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _to_uint8(
    v: np.ndarray, lo: float, hi: float, clip: bool = True, consume: bool = False
) -> np.ndarray:
    """``v`` mapped from [lo, hi] to uint8. ``consume``: the caller gives ``v`` up (a float
    volume it drops next), so the arithmetic runs in it: on a machine where touching fresh
    memory costs ~5 ms per MB (page faults, measured here), one volume's float copy is most of
    its normalisation. The same float32 operations either way, so the same bytes."""
    if not hi > lo:
        raise ValueError(f"constant volume (min = max = {lo})")
    floating = np.issubdtype(v.dtype, np.floating)
    if floating and consume and v.flags.writeable:
        out = v
        if clip:  # not needed when lo/hi are the volume's own extremes (minmax)
            np.clip(out, lo, hi, out=out)
    else:
        out = v.copy() if floating and not clip else np.clip(v, lo, hi)
    out -= lo
    out *= 255.0 / (hi - lo)
    return np.rint(out, out=out).astype(np.uint8)


# Each normaliser is a linear window: the volume's [lo, hi] mapped onto [0, 255]. The window is
# returned with the image and stored per phase (cases.parquet ``intensity_window``) because
# normalising each phase on its own scale changes how phases compare: in a DCE series the
# brightest voxel (the blood pool) darkens from phase to phase, so per-phase min-max lifts late
# phases and turns a wash-out curve into a plateau (trust's kinetics undo it with the window).
Window = tuple[float, float]


def _minmax_window(v: np.ndarray, **_: object) -> tuple[float, float, bool]:
    return float(v.min()), float(v.max()), False  # the extremes: nothing to clip


def _percentile_window(
    v: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5), **_: object
) -> tuple[float, float, bool]:
    lo, hi = np.percentile(v, percentiles)
    return float(lo), float(hi), True


def _zscore_window(
    v: np.ndarray, zscore_clip: float = 3.0, **_: object
) -> tuple[float, float, bool]:
    mu, sd = float(v.mean()), float(v.std())
    return mu - zscore_clip * sd, mu + zscore_clip * sd, True


_WINDOWS: dict[str, Callable[..., tuple[float, float, bool]]] = {
    "minmax": _minmax_window,  # the study's choice: the whole volume's min → 0, max → 255
    "percentile": _percentile_window,  # clip to percentiles first (robust to hot voxels)
    "zscore": _zscore_window,  # mean ± zscore_clip sd
}


def normalise(
    name: str, v: np.ndarray, consume: bool = False, **kw: object
) -> tuple[np.ndarray, Window]:
    """``v`` normalised to uint8 by normaliser ``name``, and the window [lo, hi] it mapped onto
    [0, 255] (so ``lo + u8 · (hi − lo) / 255`` restores the intensity to within half a step).

    Args:
        name: ``minmax``, ``percentile`` or ``zscore``.
        v: the volume.
        consume: ``v`` may be overwritten (see :func:`_to_uint8`).
        kw: ``percentiles`` or ``zscore_clip``.
    """
    if name not in _WINDOWS:
        raise ValueError(f"unknown normalisation {name!r}; valid: {sorted(_WINDOWS)}")
    lo, hi, clip = _WINDOWS[name](v, **kw)
    return _to_uint8(v, lo, hi, clip=clip, consume=consume), (lo, hi)


def unnormalise(u8: np.ndarray, window: Window | np.ndarray) -> np.ndarray:
    """float64 intensities of uint8 images normalised with ``window`` (lo, hi)."""
    lo, hi = (float(x) for x in window)
    return lo + np.asarray(u8, np.float64) * ((hi - lo) / 255.0)


def minmax(v: np.ndarray, consume: bool = False, **_: object) -> np.ndarray:
    """The study's choice: the whole volume's min → 0, max → 255."""
    return normalise("minmax", v, consume=consume)[0]


def percentile(
    v: np.ndarray,
    percentiles: tuple[float, float] = (0.5, 99.5),
    consume: bool = False,
    **_: object,
) -> np.ndarray:
    """Clip to the volume's percentiles, then min-max (robust to a few hot voxels)."""
    return normalise("percentile", v, consume=consume, percentiles=percentiles)[0]


def zscore(
    v: np.ndarray, zscore_clip: float = 3.0, consume: bool = False, **_: object
) -> np.ndarray:
    """(v − mean)/sd clipped to ±``zscore_clip`` sd, mapped to [0, 255]."""
    return normalise("zscore", v, consume=consume, zscore_clip=zscore_clip)[0]


NORMALISERS: dict[str, Callable[..., np.ndarray]] = {
    "minmax": minmax,
    "percentile": percentile,
    "zscore": zscore,
}


def normaliser(name: str) -> Callable[..., np.ndarray]:
    if name not in NORMALISERS:
        raise ValueError(f"unknown normalisation {name!r}; valid: {sorted(NORMALISERS)}")
    return NORMALISERS[name]


def select_slices(
    n_slices: int, policy: str, z_range: tuple[int, int] | None, margin_fraction: float
) -> np.ndarray:
    """Canonical slice indices to keep.

    ``tumour``: the tumour's slices plus ``ceil(margin_fraction × extent)`` on each side (the
    study: 5 % of the tumour's slice extent), clipped to the volume.
    """
    if policy == "all":
        return np.arange(n_slices)
    if policy != "tumour":
        raise ValueError(f"unknown selection {policy!r}; valid: ['all', 'tumour']")
    if z_range is None:
        raise ValueError("selection 'tumour' needs a box or a mask")
    z0, z1 = z_range
    m = math.ceil(round(margin_fraction * (z1 - z0 + 1), 9))  # 0.07 × 100 is 7.000000000000001
    return np.arange(max(0, z0 - m), min(n_slices - 1, z1 + m) + 1)


@dataclass(frozen=True)
class SquareResize:
    """Slices (ny × nx pixels of dy × dx mm) → size × size, physical aspect kept, zero padding.

    The content is scaled by ``scale_y``, ``scale_x`` (output px per input px) and offset by
    ``pad_y``, ``pad_x``; ``apply`` and ``box`` use it, synthesis will invert it.
    """

    ny: int
    nx: int
    size: int
    scale_y: float
    scale_x: float
    out_h: int
    out_w: int
    pad_y: int
    pad_x: int

    @classmethod
    def plan(cls, ny: int, nx: int, dy: float, dx: float, size: int) -> SquareResize:
        h_mm, w_mm = ny * dy, nx * dx
        px_per_mm = size / max(h_mm, w_mm)
        out_h = max(1, min(size, round(h_mm * px_per_mm)))
        out_w = max(1, min(size, round(w_mm * px_per_mm)))
        return cls(
            ny,
            nx,
            size,
            out_h / ny,
            out_w / nx,
            out_h,
            out_w,
            (size - out_h) // 2,
            (size - out_w) // 2,
        )

    def apply(self, stack: np.ndarray, binary: bool = False) -> np.ndarray:
        """``(n, c, ny, nx)`` uint8 → ``(n, c, size, size)`` uint8 (bilinear, antialiased)."""
        n, c = stack.shape[:2]
        same = (self.out_h, self.out_w, self.pad_y, self.pad_x) == (self.ny, self.nx, 0, 0)
        if same and stack.dtype == np.uint8:
            # slices already square at `size`: what the torch path computes for uint8 input
            # (round, clamp, or ≥ 0.5 for a mask) is the identity — no float copy, no torch
            return (stack >= 0.5).astype(np.uint8) if binary else stack.astype(np.uint8)
        import torch
        import torch.nn.functional as F

        out = np.zeros((n, c, self.size, self.size), np.uint8)
        for i in range(0, n, 16):  # bounded memory at 512² × many phases
            t = torch.from_numpy(stack[i : i + 16].astype(np.float32))
            if (self.out_h, self.out_w) != (self.ny, self.nx):
                t = F.interpolate(
                    t,
                    size=(self.out_h, self.out_w),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
            r = (t >= 0.5).to(torch.uint8) if binary else t.round_().clamp_(0, 255).to(torch.uint8)
            out[
                i : i + 16,
                :,
                self.pad_y : self.pad_y + self.out_h,
                self.pad_x : self.pad_x + self.out_w,
            ] = r.numpy()
        return out

    def invert(self, stack: np.ndarray) -> np.ndarray:
        """``(n, c, size, size)`` float on [0, 255] → ``(n, c, ny, nx)`` uint8: crop the padding,
        resize back (bilinear, antialiased when shrinking) — synthesis' way back to the volume."""
        import torch
        import torch.nn.functional as F

        n, c = stack.shape[:2]
        out = np.empty((n, c, self.ny, self.nx), np.uint8)
        for i in range(0, n, 16):
            t = torch.as_tensor(
                np.ascontiguousarray(
                    stack[
                        i : i + 16,
                        :,
                        self.pad_y : self.pad_y + self.out_h,
                        self.pad_x : self.pad_x + self.out_w,
                    ]
                ),
                dtype=torch.float32,
            )
            if (self.out_h, self.out_w) != (self.ny, self.nx):
                t = F.interpolate(
                    t, size=(self.ny, self.nx), mode="bilinear", align_corners=False, antialias=True
                )
            out[i : i + 16] = t.round_().clamp_(0, 255).to(torch.uint8).numpy()
        return out

    def box(self, y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int]:
        """Inclusive pixel box → the inclusive box that covers it after resizing."""
        return (
            self.pad_y + math.floor(y0 * self.scale_y),
            self.pad_y + min(self.out_h, math.ceil((y1 + 1) * self.scale_y)) - 1,
            self.pad_x + math.floor(x0 * self.scale_x),
            self.pad_x + min(self.out_w, math.ceil((x1 + 1) * self.scale_x)) - 1,
        )


def pseudonym(key: str, salt: str) -> str:
    """Stable pseudonymous case id: ``c`` + 12 hex digits of sha256(salt:key)."""
    return "c" + hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:12]


def assign_splits(keys: list[str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded patient-level split; each split with a positive ratio gets ≥ 1 case if possible."""
    rng = np.random.default_rng(seed)
    order = sorted(keys)
    rng.shuffle(order)
    names = list(ratios)
    total = sum(ratios.values())
    counts = [math.floor(len(order) * ratios[n] / total) for n in names]
    for i in np.argsort([-(len(order) * ratios[n] / total) % 1 for n in names]):  # largest rests
        if sum(counts) < len(order):
            counts[i] += 1
    for i, n in enumerate(names):  # lend one case to an empty split from the largest
        if ratios[n] > 0 and counts[i] == 0 and len(order) >= sum(r > 0 for r in ratios.values()):
            counts[i] += 1
            counts[int(np.argmax(counts))] -= 1
    out, start = {}, 0
    for n, c in zip(names, counts, strict=True):
        for k in order[start : start + c]:
            out[k] = n
        start += c
    return out
