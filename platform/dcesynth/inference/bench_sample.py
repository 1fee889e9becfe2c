"""Sampling cost per generated slice: a flow's Euler steps against pix2pixHD's single forward
pass, the same slices, the same device (``dcectl bench sample``).

Both generators have random weights (the cost does not depend on them): pix2pixHD at the
study's size (or a model file's), the rectified flow at its config's defaults (or a model
file's), timed after one warm-up call, through the same ``generate`` that validation,
synthesis and predict use.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _generator(model: Path | None, family: str):
    """(config, random-weight generator) of ``family`` at its defaults, or a model file's."""
    import torch

    from dcesynth.config import build_config
    from dcesynth.inference.artifact import load_artifact
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    if model is not None:
        return load_artifact(model).spec().build("cpu")[::-1]
    cfg = build_config(TrainConfig, None, {"model": {"family": family}})
    torch.manual_seed(0)
    return cfg, build_generator(cfg).eval()


def _time(G, cfg, pre: np.ndarray, device: str, batch: int) -> float:
    """Seconds per slice over ``pre`` after one warm-up batch."""
    import torch

    from dcesynth.training.validation import generate

    G = G.to(device)
    generate(G, pre[:batch], cfg, device, batch)  # warm-up: allocations, kernel choice
    t0 = time.perf_counter()
    generate(G, pre, cfg, device, batch)  # results come back to the CPU: the device is done
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(pre)


def bench_sample(
    size: int,
    slices: int,
    steps: list[int],
    samples: int,
    device: str,
    batch: int,
    flow_model: Path | None = None,
    gan_model: Path | None = None,
) -> dict:
    """Seconds and network evaluations per slice: pix2pixHD once, the flow per step count.

    Args:
        size: slice side (a multiple of both generators' divisors).
        slices: slices timed (random uint8 images).
        steps: the flow's step counts to time.
        samples: the flow's K.
        device: cpu or cuda.
        batch: slices per call.
        flow_model, gan_model: model files to time instead of the defaults.

    Raises:
        ValueError: a size the generators cannot take, or a model file of the other family.
    """
    from dcesynth.training.families import family

    pre = np.random.default_rng(0).integers(0, 256, (slices, size, size), dtype=np.uint8)
    rows = []
    gan_cfg, gan = _generator(gan_model, "pix2pixhd")
    flow_cfg, flow = _generator(flow_model, "rectified_flow")
    for cfg, want in ((gan_cfg, "pix2pixhd"), (flow_cfg, "rectified_flow")):
        if cfg.family != want:
            raise ValueError(f"the {want} model file holds a {cfg.family} generator")
        if size % cfg.model.divisor:
            raise ValueError(f"--size {size}: {want} needs a multiple of {cfg.model.divisor}")
    s = _time(gan, gan_cfg, pre, device, batch)
    rows.append({"generator": "pix2pixHD", "nfe": 1, "s_per_slice": s})
    for n in steps:
        m = flow_cfg.model.model_copy(update={"sampling_steps": n, "samples": samples})
        cfg = flow_cfg.model_copy(update={"model": m})
        s = _time(flow, cfg, pre, device, batch)
        nfe = family(cfg).evaluations_per_slice(cfg)
        rows.append({"generator": f"rectified flow, {n} steps × {samples}", "nfe": nfe,
                     "s_per_slice": s})  # fmt: skip
    base = rows[0]["s_per_slice"]
    for r in rows:
        r["vs_pix2pixhd"] = r["s_per_slice"] / base
    return {"size": size, "device": device, "rows": rows}
