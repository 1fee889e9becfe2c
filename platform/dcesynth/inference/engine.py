"""The one interface that runs a generator over the slices of many volumes, two ways.

Both ``dcectl synthesize`` (a prepared dataset's split) and ``dcectl predict`` (new patients)
describe their volumes as a :class:`SliceSource` and call :func:`translate`, which picks an
engine (:func:`choose_engine`):

``ray`` — Ray Data, for folders of many patients and for clusters:

1. one Ray Data task per volume reads and checks it once and cuts it into square uint8 slices
   (``source.load``: normalisation, canonical orientation and the ingest's resize); what
   ``finish`` needs of the volume (the checked pre volume, its headers) travels with the
   volume's first slice, pickled, so that nothing is read twice;
2. each volume's slices stream through ``map_batches`` (one read block, i.e. one volume, per
   call) into generators held by an actor pool: while an actor runs the generator on one
   volume, read tasks decode the next ones and the driver writes the previous one;
3. the driver undoes the resize into each volume's buffer and, once a volume is complete, hands
   it and its context to ``source.finish`` (which writes it) in a writing task on the driver's
   node (a few at once), so that writing neither holds up the driver nor waits for it.

How it scales: the pool has ``actors`` generators (``actors=0``: from the cluster's resources,
one per GPU with ``cuda``, one per 8 CPUs on CPU — each CPU actor uses its share of the
machine's cores, so more actors on one machine only help when reading is not the bottleneck).
Read tasks take half a CPU each and run as many at once as the cluster has CPUs left over,
with Ray Data's back-pressure keeping a few volumes ahead of the generators; writing tasks run
on the driver's node (OUT is its disk), half its cores at most.

``local`` — the same steps in this process, one volume after the other, without Ray (no Ray
start, no pipeline set-up: the latency of one patient is its reading, generator and writing).

Both call the generator on the same chunks (``batch`` slices from each volume's first slice)
with the same thread count, so their outputs are the same bytes (tested).

A volume that cannot be read becomes one error row (or one failure), so one bad patient never
stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dcesynth.data.ingest.transforms import SquareResize

PLAN_FIELDS = ("ny", "nx", "size", "scale_y", "scale_x", "out_h", "out_w", "pad_y", "pad_x")
# ``auto`` runs in-process (no Ray) for at most this many volumes when no cluster is named: Ray's
# start and Ray Data's set-up (~10–20 s on a small machine) cost more than overlapping reading
# with the generator saves on so few (see docs/benchmarks_gpu_predict.md for the figures).
LOCAL_MAX_VOLUMES = 2

log = logging.getLogger(__name__)


class SliceSource(Protocol):
    """Volumes to translate. Picklable: ``load`` runs in Ray Data tasks, ``finish`` on the
    driver.

    A source may define ``squares(i) -> (slices, plan)`` instead of ``load``; ``finish(i, fake)``
    then gets no context and must read what it needs itself.
    """

    size: int  # the generator's square slice side

    def count(self) -> int: ...

    def load(self, i: int) -> tuple[np.ndarray, SquareResize, object]:
        """Volume ``i`` as uint8 slices ``(n, size, size)``, the plan that made them and a
        picklable context for ``finish`` (what was read and checked, so it is not read again);
        raises ValueError (CaseError, …) for a volume that cannot be used."""
        ...

    def finish(self, i: int, fake: np.ndarray, context: object) -> object:
        """Volume ``i`` translated: uint8 ``(P, n, ny, nx)`` in canonical orientation."""
        ...


def load(source, i: int) -> tuple[np.ndarray, SquareResize, object]:
    """``source.load(i)``, or ``(*source.squares(i), None)`` for a source without ``load``."""
    if hasattr(source, "load"):
        return source.load(i)
    sq, rs = source.squares(i)
    return sq, rs, None


def finish(source, i: int, fake: np.ndarray, context: object) -> object:
    """``source.finish`` with the context ``load`` gave (none for a source without ``load``)."""
    if hasattr(source, "load"):
        return source.finish(i, fake, context)
    return source.finish(i, fake)


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
    engine: str = "ray"
    compute_s: float = 0.0  # in the generator (local engine; the Ray engine's actors: 0)


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
    """Ray Data task: one volume id → its slice rows (or one error row). The volume's context
    for ``finish`` rides on its first row (pickled bytes; empty on the others)."""
    i = int(batch["case"][0])
    try:
        sq, rs, ctx = load(source, i)
        n = len(sq)
        if n == 0:
            raise ValueError(f"volume {i}: no slices")
        context = np.full(n, b"", dtype=object)
        context[0] = pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL)
        return {
            "case": np.full(n, i, np.int64),
            "z": np.arange(n, dtype=np.int64),
            "n": np.full(n, n, np.int64),
            "pre": sq,
            "plan": np.tile(_plan_vector(rs), (n, 1)),
            "error": np.full(n, "", dtype=object),
            "context": context,
        }
    except Exception as e:  # one bad volume must not stop the others: say what it was
        return {
            "case": np.array([i], np.int64),
            "z": np.array([-1], np.int64),
            "n": np.array([0], np.int64),
            "pre": np.zeros((1, source.size, source.size), np.uint8),
            "plan": np.zeros((1, len(PLAN_FIELDS))),
            "error": np.array([error_message(e)], dtype=object),
            "context": np.array([b""], dtype=object),
        }


def run_generator(G, cfg, pre: np.ndarray, device: str, bf16: bool, batch: int) -> np.ndarray:
    """One volume's uint8 slices ``(n, S, S)`` → generated phases float32 ``(n, P, S, S)`` on
    [0, 255], ``batch`` slices per call from the first slice: the chunks every engine uses."""
    import torch

    from dcesynth.training.validation import generate

    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.startswith("cuda") and bf16
        else contextlib.nullcontext()
    )
    with amp:
        return generate(G, pre, cfg, device, batch)


class GeneratorActor:
    """Holds one generator; slices (uint8) in, generated phases (float32 on [0, 255]) out.
    Rows are generated volume by volume, in z order, in chunks of ``batch``."""

    def __init__(
        self, spec: GeneratorSpec, device: str, bf16: bool, threads: int, batch: int = 16
    ) -> None:
        import torch

        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.G, self.cfg = spec.build(device)
        self.device, self.bf16, self.batch = device, bf16, batch

    def __call__(self, batch: dict) -> dict:
        pre = batch["pre"]
        fake = np.zeros((len(pre), len(self.cfg.phases), *pre.shape[1:]), np.float32)
        ok = batch["z"] >= 0
        for i in np.unique(batch["case"][ok]).tolist():
            sel = np.flatnonzero(ok & (batch["case"] == i))
            sel = sel[np.argsort(batch["z"][sel], kind="stable")]
            fake[sel] = run_generator(
                self.G, self.cfg, pre[sel], self.device, self.bf16, self.batch
            )
        keep = ("case", "z", "n", "plan", "error", "context")
        return {k: batch[k] for k in keep} | {"fake": fake}


def cpu_threads(actors: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, actors))


def choose_engine(engine: str, address: str | None, volumes: int, actors: int) -> str:
    """``ray`` or ``local`` for ``engine`` (``auto``: local for at most
    :data:`LOCAL_MAX_VOLUMES` volumes, one actor and no cluster named by ``address`` or
    ``RAY_ADDRESS``; Ray otherwise).

    Raises:
        ValueError: an unknown engine, or ``local`` with a cluster address.
    """
    from dcesynth.cluster import check_engine, joins_cluster

    check_engine(engine, address)
    if engine != "auto":
        return engine
    small = volumes <= LOCAL_MAX_VOLUMES and actors <= 1
    return "local" if small and not joins_cluster(address) else "ray"


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
    engine: str = "ray",
) -> Translation:
    """Run ``spec``'s generator over every volume of ``source`` (see the module docstring).

    Args:
        device: ``cpu`` (actors of one logical CPU, each using its share of the cores) or
            ``cuda`` (actors of one GPU each).
        batch: slices per generator call.
        actors: generator actors (GPUs when ``device`` is cuda); 0: from the cluster's
            resources (Ray engine).
        bf16: bf16 autocast on GPU (CPU always runs float32).
        address: a Ray cluster to join (default: the running instance, or a local one).
        engine: ``ray``, ``local`` (in this process, no Ray) or ``auto`` (:func:`choose_engine`).

    Raises:
        ValueError: no GPU for ``device=cuda``; an unknown engine.
    """
    if batch < 1 or actors < 0:
        raise ValueError(f"batch ≥ 1 and actors ≥ 0; got {batch} and {actors}")
    way = choose_engine(engine, address, source.count(), actors)
    log.info("%s: %s engine, %d volume(s)", description, way, source.count())
    if way == "local":
        from dcesynth.inference.engine_local import translate_local

        return translate_local(spec, source, device, batch, bf16, progress, description)
    from dcesynth.inference.engine_ray import translate_ray

    return translate_ray(spec, source, device, batch, actors, bf16, address, progress, description)


def assemble(buffers: dict, i: int, fake, rs, z, total: int, ctx) -> tuple | None:
    """Put volume ``i``'s generated slices ``fake`` (at ``z``) back on its grid. Returns
    ``(volume, context)`` once all ``total`` slices are in (the buffer is then released)."""
    buf = buffers.setdefault(i, [np.empty((fake.shape[1], total, rs.ny, rs.nx), np.uint8), 0, None])
    buf[0][:, z] = rs.invert(fake).transpose(1, 0, 2, 3)
    buf[1] += len(z)
    if ctx is not None:
        buf[2] = ctx
    if buf[1] < total:
        return None
    vol, _, context = buffers.pop(i)
    return vol, context


def finish_volume(source, i: int, fake: np.ndarray, context) -> tuple[int, bool, object]:
    """``(i, True, what finish returned)``, or ``(i, False, why)``: a write that fails fails
    that volume only. Runs on the driver (local engine) or in a writing task (Ray engine)."""
    try:
        return i, True, finish(source, i, fake, context)
    except Exception as e:
        return i, False, error_message(e)


def record(out: Translation, result: tuple[int, bool, object]) -> None:
    i, ok, value = result
    if ok:
        out.done[i] = value
    else:
        out.failed[i] = str(value)
