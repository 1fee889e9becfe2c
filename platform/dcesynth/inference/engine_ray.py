"""The Ray Data engine of :func:`~dcesynth.inference.engine.translate`: reading tasks, a pool of
generator actors and reassembly on the driver, streaming, so that reading and writing overlap
the generator (see :mod:`dcesynth.inference.engine` for the steps and how they scale)."""

from __future__ import annotations

import os
import pickle
import time

import numpy as np

from dcesynth.inference.engine import (
    GeneratorActor,
    GeneratorSpec,
    SliceSource,
    Translation,
    _plan,
    assemble,
    cpu_threads,
    finish_volume,
    read_volume,
    record,
)

READ_CPUS = 0.5  # per reading task; must differ from the actor's (see translate_ray)
CPUS_PER_CPU_ACTOR = 8
# volumes being written at once (each is held in memory until written): half the cores
WRITES_IN_FLIGHT = max(
    1, (os.cpu_count() or 2) // 2
)  # actors=0 on CPU: one generator per this many CPUs of the cluster


def _writer(address: str | None):
    """Writing tasks pinned to this node (OUT is on its disk), so that the outputs of several
    volumes are written at once, beside the driver rather than by it: writing DICOM and NIfTI
    is the slowest step of a small generator's prediction. None through Ray Client, whose
    driver's disk no task can reach. ``num_cpus=0``: the writers never wait behind Ray Data's
    reading tasks for a CPU slot; :data:`WRITES_IN_FLIGHT` bounds them instead."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if (address or "").startswith("ray://"):
        return None
    node = ray.get_runtime_context().get_node_id()
    return ray.remote(finish_volume).options(
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        name="translate:write",
        max_retries=0,  # a failed write is reported, never silently retried into OUT
    )


def pool_size(actors: int, gpu: bool) -> int:
    """``actors``, or (0) one per GPU / per :data:`CPUS_PER_CPU_ACTOR` CPUs of the cluster."""
    import ray

    if actors > 0:
        return actors
    res = ray.cluster_resources()
    if gpu:
        return max(1, int(res.get("GPU", 0)))
    return max(1, int(res.get("CPU", 1)) // CPUS_PER_CPU_ACTOR)


def translate_ray(
    spec: GeneratorSpec,
    source: SliceSource,
    device: str,
    batch: int,
    actors: int,
    bf16: bool,
    address: str | None,
    progress: bool | None,
    description: str,
) -> Translation:
    """:func:`~dcesynth.inference.engine.translate` through Ray Data (arguments as there).

    Raises:
        ValueError: no GPU in the cluster for ``device=cuda``.
    """
    import ray
    import ray.data

    from dcesynth.cluster import init_ray
    from dcesynth.progress import progress_bar

    t0 = time.perf_counter()
    init_ray(address, log_to_driver=False)
    gpu = device.startswith("cuda")
    if gpu and ray.cluster_resources().get("GPU", 0) < 1:
        raise ValueError("`device` cuda: the Ray cluster has no GPU; use cpu")
    n = source.count()
    out = Translation(engine="ray")
    if n == 0:
        return out
    size = pool_size(actors, gpu)
    ctx = ray.data.DataContext.get_current()
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # ours below instead
    ds = ray.data.from_items([{"case": i} for i in range(n)], override_num_blocks=n)
    # Half a CPU per reading task, not the actor's one: with equal resources Ray Data fuses
    # reading into the generator actor (one operator), which then reads and generates in turn
    # and nothing overlaps. Reading a series is part waiting on files, so two share a core.
    ds = ds.map_batches(
        read_volume,
        fn_kwargs={"source": source},
        batch_size=1,
        batch_format="numpy",
        num_cpus=READ_CPUS,
        udf_modifying_row_count=True,
    )
    # batch_size=None: one read block, i.e. one whole volume, per call, so that the actor
    # cuts it into the same chunks as the local engine (same bytes out) and no volume waits
    # for the next one's slices to fill a batch
    ds = ds.map_batches(
        GeneratorActor,
        fn_constructor_kwargs={
            "spec": spec,
            "device": device,
            "bf16": bf16,
            "threads": cpu_threads(size),
            "batch": batch,
        },
        batch_size=None,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
        num_gpus=1 if gpu else None,
    )
    write = _writer(address)
    shared = ray.put(source) if write else None  # once, not with every writing task
    buffers: dict[int, list] = {}
    pending: list = []  # writing tasks in flight
    try:
        with progress_bar(n, description, progress) as advance:

            def collect(wait_for: int) -> None:
                nonlocal pending
                done, pending = ray.wait(pending, num_returns=wait_for)
                for result in ray.get(done):
                    record(out, result)
                    advance()

            for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i in np.unique(b["case"]).tolist():
                    sel = np.flatnonzero(b["case"] == i)
                    if b["z"][sel[0]] < 0:
                        out.failed[i] = str(b["error"][sel[0]])
                        advance()
                        continue
                    first = sel[b["z"][sel] == 0]
                    context = pickle.loads(b["context"][first[0]]) if len(first) else None
                    rs, z = _plan(b["plan"][sel[0]]), b["z"][sel]
                    total = int(b["n"][sel[0]])
                    vol = assemble(buffers, i, b["fake"][sel], rs, z, total, context)
                    out.slices += len(sel)
                    if vol is None:
                        continue
                    if write is None:  # Ray Client: OUT is on this machine, write here
                        record(out, finish_volume(source, i, *vol))
                        advance()
                        continue
                    if len(pending) >= WRITES_IN_FLIGHT:  # bounds the volumes held in memory
                        collect(1)
                    pending.append(write.remote(shared, i, *vol))
            if pending:
                collect(len(pending))
    finally:
        ctx.enable_progress_bars = bars
    for i in buffers:  # cannot happen unless Ray Data lost rows: never report them as done
        out.failed[i] = f"volume {i}: incomplete ({buffers[i][1]} slices came back)"
    out.wall_s = time.perf_counter() - t0
    return out
