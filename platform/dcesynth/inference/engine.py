"""The one way to run a generator over the slices of many volumes: Ray Data.

Both ``dcectl synthesize`` (a prepared dataset's split) and ``dcectl predict`` (new patients)
describe their volumes as a :class:`SliceSource` and call :func:`translate`:

1. one Ray Data task per volume reads it and cuts it into square uint8 slices
   (``source.squares``: normalisation, canonical orientation and the ingest's resize);
2. the slices stream through ``map_batches`` into generators held by actors (CPU actors here,
   one GPU each on a cluster when asked; bf16 autocast on GPU, float32 on CPU);
3. the driver undoes the resize batch by batch into each volume's buffer and, once a volume is
   complete, hands it to ``source.finish`` (which writes it).

A volume that cannot be read becomes one error row, so one bad patient never stops the others.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dcesynth.data.ingest.transforms import SquareResize

PLAN_FIELDS = ("ny", "nx", "size", "scale_y", "scale_x", "out_h", "out_w", "pad_y", "pad_x")


class SliceSource(Protocol):
    """Volumes to translate. Picklable: ``squares`` runs in Ray Data tasks, ``finish`` on the
    driver."""

    size: int  # the generator's square slice side

    def count(self) -> int: ...

    def squares(self, i: int) -> tuple[np.ndarray, SquareResize]:
        """Volume ``i`` as uint8 slices ``(n, size, size)`` and the plan that made them;
        raises ValueError (CaseError, …) for a volume that cannot be used."""
        ...

    def finish(self, i: int, fake: np.ndarray) -> object:
        """Volume ``i`` translated: uint8 ``(P, n, ny, nx)`` in canonical orientation."""
        ...


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator as plain data: its training config (JSON) and weights (numpy)."""

    config: dict
    weights: dict[str, np.ndarray]

    def build(self, device: str):
        import torch

        from dcesynth.training.config import TrainConfig
        from dcesynth.training.loop import build_generator

        cfg = TrainConfig.model_validate(self.config)
        G = build_generator(cfg)
        G.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()})
        return G.to(device).eval(), cfg


@dataclass
class Translation:
    done: dict[int, object] = field(default_factory=dict)  # volume → what finish returned
    failed: dict[int, str] = field(default_factory=dict)  # volume → why
    slices: int = 0
    wall_s: float = 0.0


def _plan_vector(rs: SquareResize) -> np.ndarray:
    return np.array([getattr(rs, f) for f in PLAN_FIELDS], np.float64)


def _plan(v: np.ndarray) -> SquareResize:
    vals = dict(zip(PLAN_FIELDS, v.tolist(), strict=True))
    ints = {k: round(vals[k]) for k in ("ny", "nx", "size", "out_h", "out_w", "pad_y", "pad_x")}
    return SquareResize(**{**vals, **ints})


def error_message(e: Exception) -> str:
    from dcesynth.data.readers.common import CaseError

    if isinstance(e, CaseError | ValueError | FileNotFoundError):
        return str(e)
    return f"unexpected {type(e).__name__}: {e}"


def read_volume(batch: dict, source: SliceSource) -> dict:
    """Ray Data task: one volume id → its slice rows (or one error row)."""
    i = int(batch["case"][0])
    try:
        sq, rs = source.squares(i)
        n = len(sq)
        if n == 0:
            raise ValueError(f"volume {i}: no slices")
        return {
            "case": np.full(n, i, np.int64),
            "z": np.arange(n, dtype=np.int64),
            "n": np.full(n, n, np.int64),
            "pre": sq,
            "plan": np.tile(_plan_vector(rs), (n, 1)),
            "error": np.full(n, "", dtype=object),
        }
    except Exception as e:  # one bad volume must not stop the others: say what it was
        return {
            "case": np.array([i], np.int64),
            "z": np.array([-1], np.int64),
            "n": np.array([0], np.int64),
            "pre": np.zeros((1, source.size, source.size), np.uint8),
            "plan": np.zeros((1, len(PLAN_FIELDS))),
            "error": np.array([error_message(e)], dtype=object),
        }


class GeneratorActor:
    """Holds one generator; slices (uint8) in, generated phases (float32 on [0, 255]) out."""

    def __init__(self, spec: GeneratorSpec, device: str, bf16: bool, threads: int) -> None:
        import torch

        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.G, self.cfg = spec.build(device)
        self.device, self.bf16 = device, bf16

    def __call__(self, batch: dict) -> dict:
        import contextlib

        import torch

        from dcesynth.training.validation import generate

        ok = batch["z"] >= 0
        pre = batch["pre"]
        fake = np.zeros((len(ok), len(self.cfg.phases), *pre.shape[1:]), np.float32)
        if ok.any():
            amp = (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if self.device.startswith("cuda") and self.bf16
                else contextlib.nullcontext()
            )
            with amp:
                fake[ok] = generate(self.G, pre[ok], self.cfg, self.device, int(ok.sum()))
        return {k: batch[k] for k in ("case", "z", "n", "plan", "error")} | {"fake": fake}


def cpu_threads(actors: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, actors))


def translate(
    spec: GeneratorSpec,
    source: SliceSource,
    *,
    device: str = "cpu",
    batch: int = 16,
    actors: int = 1,
    bf16: bool = True,
    address: str | None = None,
    progress: bool | None = None,
    description: str = "translate",
) -> Translation:
    """Run ``spec``'s generator over every volume of ``source`` (see the module docstring).

    Args:
        device: ``cpu`` (actors of one logical CPU, each using its share of the cores) or
            ``cuda`` (actors of one GPU each).
        batch: slices per generator call.
        actors: generator actors (GPUs when ``device`` is cuda).
        bf16: bf16 autocast on GPU (CPU always runs float32).
        address: a Ray cluster to join (default: the running instance, or a local one).

    Raises:
        ValueError: no GPU in the cluster for ``device=cuda``.
    """
    import ray
    import ray.data

    from dcesynth.cluster import init_ray
    from dcesynth.progress import progress_bar

    t0 = time.perf_counter()
    init_ray(address, log_to_driver=False)
    if device.startswith("cuda") and ray.cluster_resources().get("GPU", 0) < 1:
        raise ValueError("`device` cuda: the Ray cluster has no GPU; use cpu")
    n = source.count()
    out = Translation()
    if n == 0:
        return out
    ctx = ray.data.DataContext.get_current()
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # ours below instead
    gpu = device.startswith("cuda")
    ds = ray.data.from_items([{"case": i} for i in range(n)], override_num_blocks=n)
    ds = ds.map_batches(
        read_volume,
        fn_kwargs={"source": source},
        batch_size=1,
        batch_format="numpy",
        num_cpus=1,
        udf_modifying_row_count=True,
    )
    ds = ds.map_batches(
        GeneratorActor,
        fn_constructor_kwargs={
            "spec": spec,
            "device": device,
            "bf16": bf16,
            "threads": cpu_threads(actors),
        },
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        num_gpus=1 if gpu else None,
    )
    buffers: dict[int, list] = {}
    try:
        with progress_bar(n, description, progress) as advance:
            for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i in np.unique(b["case"]).tolist():
                    sel = np.flatnonzero(b["case"] == i)
                    if b["z"][sel[0]] < 0:
                        out.failed[i] = str(b["error"][sel[0]])
                        advance()
                        continue
                    rs = _plan(b["plan"][sel[0]])
                    total = int(b["n"][sel[0]])
                    buf = buffers.setdefault(
                        i, [np.empty((b["fake"].shape[1], total, rs.ny, rs.nx), np.uint8), 0]
                    )
                    buf[0][:, b["z"][sel]] = rs.invert(b["fake"][sel]).transpose(1, 0, 2, 3)
                    buf[1] += len(sel)
                    out.slices += len(sel)
                    if buf[1] == total:
                        fake = buffers.pop(i)[0]
                        try:
                            out.done[i] = source.finish(i, fake)
                        except Exception as e:  # a write that fails fails that volume only
                            out.failed[i] = error_message(e)
                        advance()
    finally:
        ctx.enable_progress_bars = bars
    for i in buffers:  # cannot happen unless Ray Data lost rows: never report them as done
        out.failed[i] = f"volume {i}: incomplete ({buffers[i][1]} slices came back)"
    out.wall_s = time.perf_counter() - t0
    return out
