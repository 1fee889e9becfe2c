"""Fast validation during training: MAE, MSE and SSIM on a fixed subset, and sample images.

Images are compared on the [0, 255] scale of the prepared dataset. SSIM is scikit-image's with
the standard settings of Wang et al. 2004 (Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03,
data range 255). A single phase generated as 3 replicated channels is scored on their mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dcesynth.training.config import TrainConfig


@torch.no_grad()
def generate(
    G: torch.nn.Module, pre_u8: np.ndarray, cfg: TrainConfig, device, batch: int = 8
) -> np.ndarray:
    """uint8 pre slices (N, S, S) → generated phases on [0, 255] as float32 (N, P, S, S)."""
    was_training = G.training
    G.eval()
    out = []
    for i in range(0, len(pre_u8), batch):
        x = torch.as_tensor(pre_u8[i : i + batch], device=device).float()[:, None] / 127.5 - 1
        if cfg.model.replicate_input:
            x = x.expand(-1, 3, -1, -1)
        y = G(x).float()
        if cfg.out_channels == 3 and len(cfg.phases) == 1:
            y = y.mean(1, keepdim=True)  # three replicas of one phase
        out.append(((y.clamp(-1, 1) + 1) * 127.5).cpu().numpy())
    G.train(was_training)
    return np.concatenate(out)


def validation_metrics(G, val: dict, cfg: TrainConfig, device) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    fake = generate(G, val["pre"], cfg, device)
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
