"""MLflow experiment tracking: one small API that every command calls, and that never fails one.

``with track(kind, name, config, root) as t:`` opens an MLflow run (a no-op object when
tracking is off); ``t.metrics({...}, step=epoch)``, ``t.artifact(path)``, ``t.table(csv, keys,
prefix)`` and ``t.child(kind, name, config)`` (a nested run: a sweep's trial, a study's stage)
log into it. Where it logs (docs/tracking.md):

1. ``--tracking-uri`` (the command line), 2. the config's ``tracking.uri``, 3. the environment's
``MLFLOW_TRACKING_URI``, 4. ``sqlite:///<root>/mlflow.db`` with artefacts in
``<root>/mlartifacts`` — a database file, no server. ``--no-tracking``, ``tracking.enabled:
false`` or ``DCESYNTH_TRACKING=off`` turn it off.

Every MLflow call runs on one background thread per process, in order: the command never waits
for the store (creating a SQLite store takes seconds) until the run closes, and a failure of the
store (unreachable server, locked or unwritable database) is one ``logging.warning`` per process,
after which that run logs nothing more. ``mlflow`` itself is imported only when a run opens.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# where runs log and what they record: pure functions, re-exported here (dcesynth.tracking.X)
from dcesynth.tracking_settings import (  # noqa: F401
    ARTIFACTS_NAME,
    DB_NAME,
    MAX_PARAM_VALUE,
    OFF_ENV,
    OFF_VALUES,
    Target,
    TrackingConfig,
    clean_key,
    default_uri,
    fingerprints,
    flatten,
    numeric,
    resolve,
    version_tags,
    world_rank,
)

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 120.0  # at most this long for the store to take a closing run's last calls

# --- the background thread, and warning once ------------------------------------------------

_WARNED = {"done": False}
_QUEUE: queue.Queue = queue.Queue()
_THREAD: dict[str, threading.Thread] = {}
_LOCK = threading.Lock()


def warn_once(what: str, error: BaseException | str) -> None:
    """A tracking failure: one warning per process (then debug lines), never an exception."""
    msg = f"MLflow tracking off for this run: {what}: {error}"
    if not _WARNED["done"]:
        _WARNED["done"] = True
        log.warning("%s (the run goes on; later tracking errors are not repeated)", msg)
    else:
        log.debug(msg)


def _worker() -> None:
    while True:
        fn = _QUEUE.get()
        try:
            fn()
        finally:
            _QUEUE.task_done()


def _submit(fn: Callable[[], None]) -> None:
    with _LOCK:
        if "t" not in _THREAD or not _THREAD["t"].is_alive():
            _THREAD["t"] = threading.Thread(target=_worker, name="mlflow-tracking", daemon=True)
            _THREAD["t"].start()
    _QUEUE.put(fn)


def _reachable(uri: str) -> str | None:
    """None when an http(s) tracking server accepts a connection (or the URI is not http)."""
    u = urllib.parse.urlparse(uri)
    if u.scheme not in ("http", "https"):
        return None
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
        with socket.create_connection((u.hostname, port), timeout=3):
            return None
    except OSError as e:
        return f"{uri} does not answer ({e})"


_CLIENTS: dict[Target, tuple[Any, str]] = {}


def _client(target: Target) -> tuple[Any, str]:
    """The MLflow client and experiment id of ``target`` (worker thread only; made once)."""
    if target not in _CLIENTS:
        if why := _reachable(target.uri):
            raise ConnectionError(why)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=target.uri)
        exp = client.get_experiment_by_name(target.experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(target.experiment, artifact_location=target.artifacts)
        )
        _CLIENTS[target] = (client, exp_id)
    return _CLIENTS[target]


# --- runs ----------------------------------------------------------------------------------


class Tracker:
    """One MLflow run; every method is a queued call that cannot raise. ``Tracker(None)``
    (tracking off) does nothing."""

    def __init__(
        self, target: Target | None, parent: Tracker | None = None, what: str = "run"
    ) -> None:
        self.target, self.parent, self.what = target, parent, what
        self.run_id: str | None = None
        self.dead = target is None
        self.logged_epochs: set[int] = set()
        self._start_fn: Callable[[Any], None] | None = None
        self.closed = False

    @property
    def on(self) -> bool:
        return not self.dead

    def _do(self, fn: Callable[[Any], None]) -> None:
        if self.dead:
            return

        def call() -> None:
            if self.dead or (self.run_id is None and fn is not self._start_fn):
                return
            try:
                client, _ = _client(self.target)
                fn(client)
            except Exception as e:
                self.dead = True
                warn_once(f"{self.what} → {self.target.uri}", e)

        _submit(call)

    def start(self, kind: str, name: str, config: Any = None, tags: dict | None = None) -> None:
        run_tags = {**version_tags(), "dcesynth.kind": kind, **(tags or {})}

        def start(client) -> None:
            if self.parent is not None:
                if self.parent.run_id is None:
                    raise RuntimeError("its parent run did not start")
                run_tags["mlflow.parentRunId"] = self.parent.run_id
            _, exp = _client(self.target)
            self.run_id = client.create_run(exp, tags=run_tags, run_name=name).info.run_id

        self._start_fn = start
        self._do(start)
        if config is not None:
            self.params(config)

    # the public calls
    def params(self, config: Any) -> None:
        """The (resolved) config, flattened to dotted keys."""
        from_config = flatten(config)

        def go(client) -> None:
            from mlflow.entities import Param

            items = [Param(k, v) for k, v in sorted(from_config.items())]
            for i in range(0, len(items), 100):  # MLflow takes 100 params per batch
                client.log_batch(self.run_id, params=items[i : i + 100])

        self._do(go)

    def metrics(self, values: dict, step: int | None = None, prefix: str = "") -> None:
        """Numeric values (nested dicts: dotted keys after ``prefix``; NaN, ±inf left out)."""
        vals, ts = numeric(values, prefix), int(time.time() * 1000)

        def go(client) -> None:
            from mlflow.entities import Metric

            items = [Metric(k, v, ts, step or 0) for k, v in sorted(vals.items())]
            for i in range(0, len(items), 1000):
                client.log_batch(self.run_id, metrics=items[i : i + 1000])

        if vals:
            self._do(go)

    def epoch(self, row: dict) -> None:
        """One line of a run's metrics.jsonl: its numbers with ``step`` = its epoch."""
        e = row.get("epoch")
        if isinstance(e, int) and e not in self.logged_epochs:
            self.logged_epochs.add(e)
            self.metrics({k: v for k, v in row.items() if k != "epoch"}, step=e)

    def tags(self, values: dict) -> None:
        vals = {clean_key(k): str(v)[:MAX_PARAM_VALUE] for k, v in values.items()}
        self._do(lambda c: [c.set_tag(self.run_id, k, v) for k, v in vals.items()])

    def artifact(self, path: Path | str, where: str | None = None) -> None:
        """A file (or folder) as an artefact, under ``where`` in the run's artefacts."""
        p = Path(path)
        if not p.exists() or self.dead:
            return
        if p.is_dir():
            self._do(lambda c: c.log_artifacts(self.run_id, str(p), where or p.name))
        else:
            self._do(lambda c: c.log_artifact(self.run_id, str(p), where))

    def artifacts(self, paths: Iterable[Path | str], where: str | None = None) -> None:
        for p in paths:
            self.artifact(p, where)

    def table(self, csv_path: Path | str, keys: Iterable[str], prefix: str) -> None:
        """A results table: the CSV as an artefact (``tables/``), and each numeric cell as a
        metric ``<prefix>.<key values>.<column>`` (``table2.1.synthetic_vs_real.ssim_mean``).
        """
        p = Path(csv_path)
        if self.dead or not p.is_file():
            return
        self.artifact(p, "tables")
        keys, vals = list(keys), {}
        with contextlib.suppress(OSError, csv.Error):
            for row in csv.DictReader(p.open()):
                # "baseline: real pre vs real post" → baseline_real_pre_vs_real_post
                parts = (re.sub(r"[^A-Za-z0-9.-]+", "_", str(row.get(k) or "")) for k in keys)
                head = ".".join(p.strip("_") for p in parts if p.strip("_"))
                for col, v in row.items():
                    if col in keys:
                        continue
                    with contextlib.suppress(TypeError, ValueError):
                        vals[f"{prefix}.{head}.{col}"] = float(v)
        self.metrics(vals)

    def train_run(self, run_dir: Path | str) -> None:
        """A training run's epochs not yet logged, its config, metrics and loss curve."""
        run_dir = Path(run_dir)
        with contextlib.suppress(OSError):
            for ln in (run_dir / "metrics.jsonl").read_text().splitlines():
                with contextlib.suppress(ValueError):
                    self.epoch(json.loads(ln))
        for name in ("config.yaml", "metrics.jsonl", "loss_curve.png"):
            self.artifact(run_dir / name)

    def child(self, kind: str, name: str, config: Any = None, tags: dict | None = None) -> Tracker:
        """A nested run (tagged ``mlflow.parentRunId``); close it, or use it as a context."""
        t = Tracker(None if self.dead else self.target, self, f"{kind} {name}")
        if t.on:
            t.start(kind, name, config, tags)
        return t

    def close(self, status: str = "FINISHED", wait: bool = True) -> None:
        """End the run (FINISHED, FAILED or KILLED; a second close changes nothing);
        ``wait``: until the store has taken every call."""
        if not self.closed:
            self.closed = True
            self._do(lambda c: c.set_terminated(self.run_id, status))
        if wait and self.target is not None:
            flush()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, tp, exc, tb) -> None:
        status = "FINISHED" if tp is None else "KILLED" if tp is KeyboardInterrupt else "FAILED"
        self.close(status)


def flush(timeout: float = CLOSE_WAIT_S) -> None:
    """Wait (at most ``timeout``) until the background thread has made every queued call."""
    done = threading.Event()
    _submit(done.set)
    if not done.wait(timeout):
        warn_once("closing", f"the tracking store did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def track(
    kind: str,
    name: str,
    config: Any = None,
    root: Path | str | None = None,
    *,
    uri: str | None = None,
    settings: TrackingConfig | None = None,
    off: bool = False,
    parent: Tracker | None = None,
    tags: dict | None = None,
) -> Iterator[Tracker]:
    """An MLflow run for one command, closed as FINISHED, FAILED or KILLED; nothing in it
    raises (a failure of tracking is one warning, see :func:`warn_once`).

    Args:
        kind: the command (train, sweep, evaluate, trust, segment, study, demo, export).
        name: the run's name (the run folder's, sweep's or study's name).
        config: the resolved config, logged as flattened params.
        root: the command's output root (the default store: ``<root>/mlflow.db``).
        uri: ``--tracking-uri``.
        settings: the config's ``tracking`` section.
        off: ``--no-tracking``.
        parent: log as a nested run of this one (and to its store).
        tags: more tags (fingerprints…).
    """
    try:
        t = _open(kind, name, config, root, uri, settings, off, parent, tags)
    except Exception as e:  # tracking never fails a command
        warn_once(f"{kind} {name}", e)
        t = Tracker(None)
    with t:
        yield t


def _open(kind, name, config, root, uri, settings, off, parent, tags) -> Tracker:
    if parent is not None:
        return parent.child(kind, name, config, tags)
    if world_rank() != 0:  # multi-worker runs log from rank 0 only
        return Tracker(None)
    try:
        target = resolve(root, uri, settings, off)
    except ValueError as e:
        warn_once(kind, e)
        return Tracker(None)
    t = Tracker(target, what=f"{kind} {name}")
    if t.on:
        # an unreachable server fails in seconds, not after MLflow's minutes of retries (values
        # the user set win)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # imported here, not on the thread: a concurrent import could see half a module
        import mlflow.tracking  # noqa: F401

        t.start(kind, name, config, tags)
    return t
