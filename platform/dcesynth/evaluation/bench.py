"""`dcectl bench metrics`: pairs/s of the batched paired metrics vs the reference libraries.

Both sides compute the same values on the same 512² pairs in one process, side by side:
ours batched in torch; scikit-image (MSE, PSNR, SSIM), numpy (MAE), pytorch-msssim (MS-SSIM)
and torchmetrics (SSIM) one pair at a time, as an evaluation script would call them. The
largest difference between the two sides' values is printed next to each ratio. torchmetrics'
SSIM differs by up to ~7e-3 by design: it averages the SSIM map over the whole image, border
pixels from a reflect-padded input included, where scikit-image and we use only the pixels
where the window fits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def test_pairs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Natural-looking uint8 pairs: skimage's camera, shifted, with noise and a contrast change."""
    from skimage import data
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    base = resize(data.camera().astype(np.float32), (size, size), preserve_range=True)
    real = np.empty((n, size, size), np.uint8)
    fake = np.empty_like(real)
    for i in range(n):
        img = np.roll(base, (int(rng.integers(size)), int(rng.integers(size))), (0, 1))
        real[i] = np.clip(img, 0, 255)
        fake[i] = np.clip(img * rng.uniform(0.8, 1.2) + rng.normal(0, 12, img.shape), 0, 255)
    return real, fake


def _timed(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    fn()  # warm-up: first calls allocate and JIT-select kernels
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, np.asarray(out, dtype=np.float64)


def reference_fns(real: np.ndarray, fake: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """One pair at a time, as an evaluation script calls the reference libraries."""
    import pytorch_msssim
    import torch
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    pairs = list(zip(r64, f64, strict=True))
    kw = {"data_range": 255.0, "gaussian_weights": True, "sigma": 1.5}

    def tm(a, b):
        x, y = (torch.from_numpy(v)[None, None] for v in (a, b))
        return tm_ssim(y, x, data_range=255.0).item()

    def ms(a, b):
        x, y = (torch.from_numpy(v)[None, None] for v in (a, b))
        return pytorch_msssim.ms_ssim(x, y, data_range=255, size_average=False).item()

    return {
        "mae": lambda: [np.abs(a - b).mean() for a, b in pairs],
        "mse": lambda: [mean_squared_error(a, b) for a, b in pairs],
        "psnr": lambda: [peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs],
        "ssim": lambda: [
            structural_similarity(a, b, use_sample_covariance=False, **kw) for a, b in pairs
        ],
        "ssim (torchmetrics)": lambda: [tm(a, b) for a, b in pairs],
        "ms_ssim": lambda: [ms(a, b) for a, b in pairs],
    }


def bench_metrics(
    n: int = 32, size: int = 512, batch: int = 4, device: str = "cpu", repeat: int = 2
) -> list[dict]:
    """Rows: metric, ours pairs/s, reference pairs/s, ratio, max |difference|."""
    from dcesynth.evaluation.metrics import paired_metrics

    real, fake = test_pairs(n, size)
    rows = []
    refs = reference_fns(real, fake)
    # all five in one call (the default ``names``): what select and evaluate run
    ours_all, _ = _timed(
        lambda: paired_metrics(real, fake, batch=batch, device=device)["mae"], repeat
    )
    for name, ref in refs.items():
        metric = name.split(" ")[0]
        t_ours, ours = _timed(
            lambda m=metric: paired_metrics(real, fake, names=(m,), batch=batch, device=device)[m],
            repeat,
        )
        t_ref, theirs = _timed(ref, repeat)
        rows.append(
            {
                "metric": name,
                "ours": n / t_ours,
                "reference": n / t_ref,
                "ratio": t_ref / t_ours,
                "max_diff": float(np.max(np.abs(ours - theirs))),
            }
        )
    t_ref_all = sum(n / r["reference"] for r in rows if r["metric"] != "ssim (torchmetrics)")
    rows.append(
        {
            "metric": "all five together",
            "ours": n / ours_all,
            "reference": n / t_ref_all,
            "ratio": t_ref_all / ours_all,
            "max_diff": float("nan"),
        }
    )
    return rows
