"""The in-process engine of :func:`~dcesynth.inference.engine.translate`: no Ray, volume after
volume in this process — for one patient (or a few) on a machine of its own, where Ray's start
and Ray Data's set-up would cost more than the work. Ray is not imported."""

from __future__ import annotations

import logging
import time

import numpy as np

from dcesynth.inference.engine import (
    GeneratorSpec,
    SliceSource,
    Translation,
    assemble,
    cpu_threads,
    error_message,
    finish_volume,
    load,
    record,
    run_generator,
)

log = logging.getLogger(__name__)


def translate_local(
    spec: GeneratorSpec,
    source: SliceSource,
    device: str,
    batch: int,
    bf16: bool,
    progress: bool | None,
    description: str,
) -> Translation:
    """:func:`~dcesynth.inference.engine.translate` in this process (arguments as there).

    Raises:
        ValueError: ``device=cuda`` where torch sees no GPU.
    """
    import torch

    from dcesynth.progress import progress_bar

    t0 = time.perf_counter()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("`device` cuda: torch sees no GPU here; use cpu")
    out = Translation(engine="local")
    n = source.count()
    if n == 0:
        return out
    # the thread count of the Ray engine's single CPU actor: the same arithmetic, the same bytes
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cpu_threads(1))
    try:
        G, cfg = spec.build(device)
        buffers: dict[int, list] = {}
        with progress_bar(n, description, progress) as advance:
            for i in range(n):
                try:
                    sq, rs, context = load(source, i)
                    if len(sq) == 0:
                        raise ValueError(f"volume {i}: no slices")
                except Exception as e:  # one bad volume must not stop the others
                    out.failed[i] = error_message(e)
                    advance()
                    continue
                t = time.perf_counter()
                fake = run_generator(G, cfg, sq, device, bf16, batch)
                out.compute_s += time.perf_counter() - t
                z = np.arange(len(sq))
                vol, context = assemble(buffers, i, fake, rs, z, len(sq), context)
                out.slices += len(sq)
                record(out, finish_volume(source, i, vol, context))
                advance()
    finally:
        torch.set_num_threads(threads)
    out.wall_s = time.perf_counter() - t0
    log.info("%s: %d slices in %.1f s (generator %.1f s)", description, out.slices,
             out.wall_s, out.compute_s)  # fmt: skip
    return out
