"""Where ingest's per-case work runs: Ray tasks, or a pool of local processes.

Ray is what ingest is built on: a cluster (``--address``, a Ray job's ``RAY_ADDRESS``) spreads
the cases over its nodes, and a Ray already running in this process (the demo, the study) is
used as it is. Without either, starting a Ray instance costs ~8 s and Ray's set-up several more
— most of a small cohort's wall time, paid on every ingest (issue 22 measured 20 s of fixed
cost against a 2 s plain script). So ``engine="auto"`` then runs the same ``prepare_case`` in a
local process pool, which starts in well under a second. Both engines return results in
submission order, so the dataset is the same bytes either way (a test checks it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Submit picklable functions; take results in the order you choose."""

    engine: str
    slots: int  # how many tasks run at once (the submission window is twice that)

    def submit(self, fn: Callable, *args: Any, name: str) -> Any: ...
    def result(self, handle: Any) -> Any: ...
    def cancel(self, handle: Any) -> None: ...
    def close(self) -> None: ...


def choose_engine(engine: str, address: str | None) -> str:
    """``ray`` or ``local`` for ``engine``; ``auto``: Ray when a cluster is named (``address``
    or ``RAY_ADDRESS``) or Ray already runs in this process, local processes otherwise.

    Raises:
        ValueError: an unknown engine, or ``local`` with a cluster address.
    """
    from dcesynth.cluster import check_engine, joins_cluster

    check_engine(engine, address)
    if engine != "auto":
        return engine
    return "ray" if joins_cluster(address) or ray_running_here() else "local"


def ray_running_here() -> bool:
    """Whether this process is connected to a Ray instance (without importing Ray)."""
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def open_runner(engine: str, address: str | None, workers: int | None) -> Runner:
    """The runner ``engine`` names (see :func:`choose_engine`); close it when done.

    Args:
        engine: ``auto``, ``ray`` or ``local``.
        address: a Ray cluster to join (Ray only).
        workers: CPUs of a local Ray instance, or processes of the local pool [all CPUs].
    """
    chosen = choose_engine(engine, address)
    log.debug("ingest engine: %s (asked: %s)", chosen, engine)
    return RayRunner(address, workers) if chosen == "ray" else LocalRunner(workers)


class RayRunner:
    """One Ray task per call, one CPU each, on this machine's Ray or a cluster."""

    engine = "ray"

    def __init__(self, address: str | None, workers: int | None) -> None:
        import ray

        from dcesynth.cluster import init_ray

        init_ray(address, num_cpus=workers, log_to_driver=False)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote: dict[Callable, Any] = {}

    def submit(self, fn: Callable, *args: Any, name: str) -> Any:
        import ray

        task = self._remote.setdefault(fn, ray.remote(num_cpus=1)(fn))
        return task.options(name=name).remote(*args)

    def result(self, handle: Any) -> Any:
        import ray

        return ray.get(handle)

    def cancel(self, handle: Any) -> None:
        import ray

        ray.cancel(handle)

    def close(self) -> None:
        """Ray stays up: it may be the caller's (demo, study) or serve the next command."""


class LocalRunner:
    """A process pool on this machine. ``forkserver``: the CLI draws its progress bar from a
    thread, and forking a threaded process can copy a held lock into the child; the server
    imports the per-case code once, and each worker forks from it."""

    engine = "local"

    def __init__(self, workers: int | None) -> None:
        self.slots = max(1, workers or os.cpu_count() or 1)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["dcesynth.data.ingest.prepare"])
        self._pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=ctx)

    def submit(self, fn: Callable, *args: Any, name: str) -> Future:
        return self._pool.submit(fn, *args)

    def result(self, handle: Future) -> Any:
        return handle.result()

    def cancel(self, handle: Future) -> None:
        handle.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
