"""``dcectl bench predict``: slices/s of the Ray Data inference path vs a plain PyTorch loop.

Both sides do the same work on the same phantom pre-contrast volume: read it (a ``.npy`` file),
normalise it to uint8, resize every slice to the generator's square, run the generator in
batches and resize the outputs back to the volume's grid. The Ray side is
:func:`~dcesynth.inference.engine.translate` (a read task, generator actors fed by
``map_batches``, reassembly on the driver); the plain side is one process and one loop. Ray's
own start is timed apart (a running cluster does not pay it); generator construction is inside
both timings.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The default generator of the benchmark: small enough for a CPU at 512² (the study's is
# ngf 64, 4 downsamplings, 9 blocks); pass a model file for a real one.
BENCH_MODEL = {"ngf": 8, "n_downsample": 3, "n_blocks": 3, "ndf": 8}


@dataclass(frozen=True)
class NpySource:
    """One volume in a ``.npy`` file (a ``SliceSource``); ``finish`` keeps nothing."""

    path: str
    size: int
    spacing: tuple[float, float] = (0.7, 0.7)

    def count(self) -> int:
        return 1

    def squares(self, i: int):
        return squares(np.load(self.path), self.size, self.spacing)

    def finish(self, i: int, fake: np.ndarray) -> tuple[int, ...]:
        return fake.shape


def squares(vol: np.ndarray, size: int, spacing: tuple[float, float]):
    from dcesynth.data.ingest.transforms import SquareResize, percentile

    u8 = percentile(vol)
    rs = SquareResize.plan(vol.shape[1], vol.shape[2], spacing[0], spacing[1], size)
    return rs.apply(u8[:, None])[:, 0], rs


def phantom_volume(matrix: int, slices: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The pre-contrast volume of one phantom case, float32 ``(z, y, x)``, and its spacing."""
    from dcesynth.data.phantom import PhantomConfig
    from dcesynth.data.phantom.case import generate_case

    case = generate_case(PhantomConfig(cases=1, matrix=matrix, slices=slices), 0)
    g = case.geometry
    return np.asarray(case.images[0], np.float32), (float(g.spacing[1]), float(g.spacing[0]))


def bench_spec(model: Path | None, size: int):
    """The generator to time: a model file's, or :data:`BENCH_MODEL` with random weights."""
    import torch

    from dcesynth.inference.artifact import load_artifact
    from dcesynth.inference.engine import GeneratorSpec
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    if model is not None:
        art = load_artifact(model)
        gen = art.description.get("generator", {})
        return art.spec(), art.image_size, f"{model.name} ({gen.get('architecture', '?')})"
    cfg = TrainConfig(phases=(1, 2, 3), model=BENCH_MODEL)
    torch.manual_seed(0)
    G = build_generator(cfg)
    weights = {k: v.numpy() for k, v in G.state_dict().items()}
    label = ", ".join(f"{k} {v}" for k, v in BENCH_MODEL.items() if k != "ndf")
    return GeneratorSpec(cfg.model_dump(mode="json"), weights), size, f"pix2pixHD ({label})"


def plain_loop(spec, path: str, size: int, spacing, device: str, batch: int, bf16: bool):
    """The same work in one process: build, read, normalise, resize, generate, resize back."""
    import contextlib

    import torch

    from dcesynth.training.validation import generate

    t0 = time.perf_counter()
    G, cfg = spec.build(device)
    sq, rs = squares(np.load(path), size, spacing)
    out = np.empty((len(cfg.phases), len(sq), rs.ny, rs.nx), np.uint8)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.startswith("cuda") and bf16
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), amp:
        for z in range(0, len(sq), batch):
            fake = generate(G, sq[z : z + batch], cfg, device, batch)
            out[:, z : z + batch] = rs.invert(fake).transpose(1, 0, 2, 3)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_predict(
    matrix: int, slices: int, model: Path | None, devices: list[str], batch: int
) -> dict:
    """Seconds for one ``matrix² × slices`` volume on each device, both ways.

    Returns:
        ``{"generator", "size", "ray_start", "rows": [{device, ray_s, plain_s}]}``.
    """
    from dcesynth.cluster import init_ray
    from dcesynth.inference.engine import translate

    spec, size, label = bench_spec(model, matrix)
    vol, spacing = phantom_volume(matrix, slices)
    t0 = time.perf_counter()
    init_ray(None, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcesynth-bench-") as tmp:
        path = str(Path(tmp) / "pre.npy")
        np.save(path, vol)
        for dev in devices:
            bf16 = bool(spec.config.get("bf16", True))
            res = translate(
                spec,
                NpySource(path, size, spacing),
                device=dev,
                batch=batch,
                bf16=bf16,
                progress=False,
                description=f"bench predict ({dev})",
            )
            if res.failed:
                raise ValueError(f"bench predict: the Ray path failed: {res.failed}")
            plain = plain_loop(spec, path, size, spacing, dev, batch, bf16)
            rows.append({"device": dev, "ray_s": res.wall_s, "plain_s": plain})
    return {"generator": label, "size": size, "ray_start": ray_start, "rows": rows}
