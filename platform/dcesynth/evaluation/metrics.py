"""Paired image metrics, batched in torch (CPU or GPU): MAE, MSE, PSNR, SSIM, MS-SSIM.

Every function takes ``real`` and ``fake`` as (N, H, W) tensors or arrays on the data scale
(default [0, 255], ``data_range`` 255) and returns one value per pair, shape (N,). uint8 input
is converted to floating point first, so differences never wrap.

Definitions (the standard ones; the defaults are those of the original papers):

* MAE = mean |x − y|; MSE = mean (x − y)²; PSNR = 10 log10(R² / MSE) dB (+inf for identical
  images), R = ``data_range``.
* SSIM (Wang et al. 2004): Gaussian window of 11 × 11 taps, σ = 1.5, K1 = 0.01, K2 = 0.03,
  C1 = (K1 R)², C2 = (K2 R)², population (biased) variances; the SSIM map is computed where the
  window fits inside the image ("valid", i.e. scikit-image's result with the 5-pixel border
  cropped) and averaged. This equals ``skimage.metrics.structural_similarity(…,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R)``.
* MS-SSIM (Wang et al. 2003): 5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
  2 × 2 average pooling between scales, contrast-structure terms at scales 1–4 and full SSIM at
  the coarsest, negative terms clipped to 0 (as pytorch-msssim and torchmetrics do). Five scales
  need images of at least 176 px (11 × 2⁴); smaller images use the largest number of scales M whose
  coarsest scale still holds a window, with the first M weights renormalised to sum to 1 —
  ``ms_ssim_scales(h, w)`` says how many, and reports record it.

Regions: pass ``region`` (N, H, W) bool to restrict a metric to those pixels (e.g. the tumour
box or mask): MAE/MSE/PSNR average over the region's pixels; SSIM averages its map over the
region's pixels where the window fits; a pair whose region is empty gives NaN. MS-SSIM has no
meaningful restriction (its coarse scales mix the whole image) and is not computed on regions.

Why not torchmetrics: we need per-pair values, region-restricted maps and one pass that gives
SSIM and MS-SSIM together (SSIM is MS-SSIM's first scale); torchmetrics computes each metric
separately, and its SSIM averages over a reflect-padded border too (up to ~7e-3 from the
standard value). scikit-image and pytorch-msssim are the references of the tests and of
``dcectl bench metrics``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PAIRED = ("mae", "mse", "psnr", "ssim", "ms_ssim")
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "ms_ssim"})


def as_float(
    x: torch.Tensor | np.ndarray, device: torch.device | str | None = None
) -> torch.Tensor:
    """(N, H, W) uint8/float array → float32 tensor on ``device`` (never uint8 arithmetic)."""
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x, device=device)
    if t.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {tuple(t.shape)}")
    return t.float() if t.dtype != torch.float64 else t


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}"
        )


def _region_mean(v: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Mean over (H, W) per image; over the region's pixels only when given (NaN if empty)."""
    if region is None:
        return v.flatten(1).mean(1)
    r = region.to(v.dtype)
    n = r.flatten(1).sum(1)
    return (v * r).flatten(1).sum(1) / n  # 0/0 → NaN for an empty region


def mae(real, fake, region=None, device=None) -> torch.Tensor:
    x, y = as_float(real, device), as_float(fake, device)
    _check_pair(x, y)
    return _region_mean((x - y).abs(), _region(region, x))


def mse(real, fake, region=None, device=None) -> torch.Tensor:
    x, y = as_float(real, device), as_float(fake, device)
    _check_pair(x, y)
    return _region_mean((x - y).square(), _region(region, x))


def psnr(real, fake, region=None, data_range: float = 255.0, device=None) -> torch.Tensor:
    m = mse(real, fake, region, device).double()
    return (10 * torch.log10(data_range**2 / m)).float()  # mse 0 → +inf


def _region(region, like: torch.Tensor) -> torch.Tensor | None:
    if region is None:
        return None
    r = torch.as_tensor(np.asarray(region) if not torch.is_tensor(region) else region)
    if tuple(r.shape) != tuple(like.shape):
        raise ValueError(f"region of shape {tuple(r.shape)} for images {tuple(like.shape)}")
    return r.to(like.device).bool()


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (the separable SSIM window)."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@functools.lru_cache(maxsize=16)
def _band(n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(n, n − 10) matrix B with B[i + k, i] = g[k]: ``x @ B`` is the 'valid' 1-D filter."""
    g = gaussian_window(device=device).to(dtype)
    m = n - len(g) + 1
    band = torch.zeros(n, m, dtype=dtype, device=device)
    cols = torch.arange(m, device=device)
    for k in range(len(g)):
        band[cols + k, cols] = g[k]
    return band


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of (..., H, W) as two banded matrix products.

    Measured on CPU at 512²: 2× faster than a depthwise ``conv2d`` (BLAS beats oneDNN's
    depthwise 1 × 11 kernels); the same numbers to float32 rounding.
    """
    h, w = x.shape[-2:]
    dev = str(x.device)
    return _band(h, dev, x.dtype).T @ (x @ _band(w, dev, x.dtype))


def _ssim_cs_maps(x: torch.Tensor, y: torch.Tensor, data_range: float):
    """SSIM and contrast-structure maps ('valid' region) of (N, 1, H, W) images.

    Moments are taken of mean-centred images: SSIM's variances are differences of large
    numbers (E[x²] − E[x]²), and centring keeps float32 within ~1e-6 of float64.
    """
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    cx = x.mean(dim=(2, 3), keepdim=True)
    cy = y.mean(dim=(2, 3), keepdim=True)
    xc, yc = x - cx, y - cy
    m = _blur(torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], 1))
    mx, my = m[:, 0:1], m[:, 1:2]
    vx = m[:, 2:3] - mx * mx
    vy = m[:, 3:4] - my * my
    cov = m[:, 4:5] - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    mx, my = mx + cx, my + cy  # luminance uses the uncentred local means
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def ssim(real, fake, region=None, data_range: float = 255.0, device=None) -> torch.Tensor:
    """Per-pair SSIM (see the module docstring for window, σ, constants and border)."""
    x, y = as_float(real, device), as_float(fake, device)
    _check_pair(x, y)
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW} px, got {tuple(x.shape[-2:])}")
    s, _ = _ssim_cs_maps(x[:, None], y[:, None], data_range)
    r = _region(region, x)
    h = (WINDOW - 1) // 2
    return _region_mean(s[:, 0], None if r is None else r[:, h:-h, h:-h])


def ms_ssim_scales(h: int, w: int) -> int:
    """Number of MS-SSIM scales for an h × w image: 5 when the coarsest (÷16) holds a window."""
    m = 1
    while m < len(MS_SSIM_WEIGHTS) and min(h, w) // 2**m >= WINDOW:
        m += 1
    if min(h, w) < WINDOW:
        raise ValueError(f"MS-SSIM needs images of at least {WINDOW} px, got {h} × {w}")
    return m


def _ms_ssim_and_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float):
    """(MS-SSIM, SSIM) per pair: SSIM is the mean of the first scale's SSIM map, which MS-SSIM
    computes anyway — one pass gives both."""
    m = ms_ssim_scales(*x.shape[-2:])
    w = torch.tensor(MS_SSIM_WEIGHTS[:m], dtype=torch.float64, device=x.device)
    if m < len(MS_SSIM_WEIGHTS):  # the published five weights sum to 1.0001: keep them as is
        w = w / w.sum()
    x, y = x[:, None], y[:, None]
    terms, first = [], None
    for j in range(m):
        s, cs = _ssim_cs_maps(x, y, data_range)
        if j == 0:
            first = s.flatten(1).mean(1)
        last = j == m - 1
        terms.append(torch.relu((s if last else cs).flatten(1).mean(1)).double())
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(terms, 1) ** w, 1).float(), first


def ms_ssim(real, fake, data_range: float = 255.0, device=None) -> torch.Tensor:
    """Per-pair MS-SSIM (Wang et al. 2003); fewer scales for small images (see module doc)."""
    x, y = as_float(real, device), as_float(fake, device)
    _check_pair(x, y)
    return _ms_ssim_and_ssim(x, y, data_range)[0]


def paired_metrics(
    real,
    fake,
    region=None,
    data_range: float = 255.0,
    names: tuple[str, ...] = PAIRED,
    device=None,
    batch: int = 8,
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` for each pair, in batches: {name: float64 array (N,)}.

    Args:
        real, fake: (N, H, W) images on the data scale (uint8 or float).
        region: optional (N, H, W) bool; MS-SSIM is then left out (see the module doc).
        data_range: R of PSNR and of the SSIM constants (255 for the prepared dataset).
        names: a subset of ``PAIRED``.
        device: where to compute (None: where the tensors are, CPU for arrays).
        batch: pairs per step (bounds memory; 4–8 is fastest on CPU at 512², more on GPU).
    """
    if unknown := [n for n in names if n not in PAIRED]:
        raise ValueError(f"unknown paired metrics {unknown}; valid: {list(PAIRED)}")
    if region is not None:
        names = tuple(n for n in names if n != "ms_ssim")
    fns = {
        "mae": lambda a, b, r: mae(a, b, r),
        "mse": lambda a, b, r: mse(a, b, r),
        "psnr": lambda a, b, r: psnr(a, b, r, data_range),
        "ssim": lambda a, b, r: ssim(a, b, r, data_range),
        "ms_ssim": lambda a, b, r: ms_ssim(a, b, data_range),
    }
    n = len(real)
    if len(fake) != n:
        raise ValueError(f"{n} real vs {len(fake)} fake images")
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(0, n, batch):
        a = as_float(real[i : i + batch], device)
        b = as_float(fake[i : i + batch], a.device)
        r = None if region is None else _region(region[i : i + batch], a)
        _check_pair(a, b)
        done = {}
        if "ms_ssim" in names and "ssim" in names:  # shared first scale
            done["ms_ssim"], done["ssim"] = _ms_ssim_and_ssim(a, b, data_range)
        for k in names:
            v = done[k] if k in done else fns[k](a, b, r)
            out[k].append(v.double().cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def summarise(values: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{metric: {mean, std, n}} over pairs; NaN pairs (empty regions) are left out.

    ``std`` is the population standard deviation (ddof = 0), as numpy's default.
    """
    out = {}
    for k, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        ok = v[~np.isnan(v)]
        out[k] = {
            "mean": float(ok.mean()) if ok.size else math.nan,
            "std": float(ok.std()) if ok.size else math.nan,
            "n": int(ok.size),
        }
    return out


def subtraction(post, pre) -> np.ndarray:
    """The study's subtraction image: post − pre with negatives clipped to 0, in float32."""
    return np.clip(np.asarray(post, np.float32) - np.asarray(pre, np.float32), 0, None)
