"""Fast validation during training: MAE, MSE and SSIM on a fixed subset, and sample images.

Images are compared on the [0, 255] scale of the prepared dataset. SSIM is scikit-image's with
the standard settings of Wang et al. 2004 (Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03,
data range 255). A single phase generated as 3 replicated channels is scored on their mean.
Every family generates the same fixed subset with the same seeds (each slice's CRC-32), so
families are compared on images; the seconds and network evaluations per slice that this took
are recorded beside the metrics (``sample_s_per_slice``, ``nfe_per_slice``).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dcesynth.training.config import TrainConfig
from dcesynth.training.families import family


def generate(
    G: torch.nn.Module,
    pre_u8: np.ndarray,
    cfg: TrainConfig,
    device,
    batch: int = 8,
    seeds: Sequence[int] | None = None,
) -> np.ndarray:
    """uint8 pre slices (N, S, S) → generated phases on [0, 255] as float32 (N, P, S, S).

    Args:
        G: the generator of ``cfg``'s family (any wrapper peeled), on ``device``.
        pre_u8: the slices.
        cfg: the run's config.
        device: where G is.
        batch: slices per call of the family's generator.
        seeds: one per slice for a family that samples (default: each slice's CRC-32, so the
            same input slice gets the same noise wherever it comes from — validation,
            synthesis or predict — and whatever the batch it is in).
    """
    return generate_with_spread(G, pre_u8, cfg, device, batch, seeds, spread=False)[0]


@torch.no_grad()
def generate_with_spread(
    G: torch.nn.Module,
    pre_u8: np.ndarray,
    cfg: TrainConfig,
    device,
    batch: int = 8,
    seeds: Sequence[int] | None = None,
    spread: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """As :func:`generate`, and the per-pixel spread of the family's samples on the same scale
    (float32 (N, P, S, S); None for a family that does not sample, or without ``spread``)."""
    fam = family(cfg)
    if seeds is None:
        seeds = [zlib.crc32(np.ascontiguousarray(s).tobytes()) for s in pre_u8]
    elif len(seeds) != len(pre_u8):
        raise ValueError(f"generate: {len(seeds)} seeds for {len(pre_u8)} slices")
    was_training = G.training
    G.eval()
    out, spreads = [], []
    for i in range(0, len(pre_u8), batch):
        x = torch.as_tensor(pre_u8[i : i + batch], device=device).float()[:, None] / 127.5 - 1
        y, sd = fam.generate(G, x, cfg, list(seeds[i : i + batch]), spread)
        out.append(((y.clamp(-1, 1) + 1) * 127.5).cpu().numpy())
        if sd is not None:
            spreads.append((sd * 127.5).float().cpu().numpy())
    G.train(was_training)
    return np.concatenate(out), (np.concatenate(spreads) if spreads else None)


def validation_metrics(G, val: dict, cfg: TrainConfig, device) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    t0 = time.perf_counter()
    fake = generate(G, val["pre"], cfg, device)  # fixed slices, fixed seeds (their CRC-32)
    seconds = time.perf_counter() - t0  # the results came back to the CPU: the device is done
    real = val["post"].astype(np.float32)
    diff = fake - real
    ssim = [
        structural_similarity(
            real[i, p],
            fake[i, p],
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(len(real))
        for p in range(real.shape[1])
    ]
    return {
        "val_mae": float(np.abs(diff).mean()),
        "val_mse": float((diff**2).mean()),
        "val_ssim": float(np.mean(ssim)),
        # the sampling cost beside the quality: what the ranking shows for each family
        "sample_s_per_slice": seconds / max(len(real), 1),
        "nfe_per_slice": family(cfg).evaluations_per_slice(cfg),
    }


def write_samples(G, val: dict, cfg: TrainConfig, device, path: Path, n: int = 4) -> Path:
    """A grid: per row pre | generated phases | real phases."""
    from PIL import Image

    n = min(n, len(val["pre"]))
    fake = generate(G, val["pre"][:n], cfg, device)
    rows = [
        np.concatenate(
            [val["pre"][i], *np.clip(fake[i], 0, 255).astype(np.uint8), *val["post"][i]], 1
        )
        for i in range(n)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path)
    return path
