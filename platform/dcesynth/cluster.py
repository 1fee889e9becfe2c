"""Start or join Ray: the one way every command does it.

Why not a plain ``ray.init()``: Ray Train V2 leaves each run's worker placement group to a
detached ``PlacementGroupCleaner`` actor, which finds its cluster through the State API with no
address. On a machine where a second Ray instance runs (a test session beside a CLI, two users'
sweeps on one workstation) that lookup fails with "Found multiple active Ray instances", the
cleaner's thread dies and every finished trial keeps its workers' CPUs reserved: after a few
trials nothing is left for Ray Data and the next trial waits forever. A local instance started
here therefore gets a known GCS port, and every worker is told its address (``RAY_ADDRESS`` in
the job's runtime environment), so such lookups find this instance and no other.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def joins_cluster(address: str | None) -> bool:
    """Whether a command joins an existing cluster (``--address`` or a Ray job's
    ``RAY_ADDRESS``) rather than starting its own instance: a joined cluster may have an
    autoscaler that adds the nodes a job asks for, so missing resources are not final there."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


ENGINES = ("auto", "ray", "local")


def check_engine(engine: str, address: str | None) -> None:
    """The ``--engine`` choice of commands that can run without Ray (ingest, predict).

    Raises:
        ValueError: an unknown engine, or ``local`` with a cluster address.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if engine == "local" and address:
        raise ValueError(f"engine local runs on this machine: it cannot use --address {address}")


def short_of_resources(missing: str, address: str | None, log_: logging.Logger) -> None:
    """Raise ``ConfigError(missing)`` on a local instance; on a joined cluster log a warning
    (an autoscaler may add the nodes; without one the work waits)."""
    from dcesynth.config import ConfigError

    if not joins_cluster(address):
        raise ConfigError(missing)
    log_.warning(
        "%s: waiting for the autoscaler to add nodes (a cluster without one would wait for ever)",
        missing,
    )


def auth_token() -> str | None:
    """The Ray token this machine would present: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH's file,
    else ~/.ray/auth_token (what any earlier ``ray.init()`` left); None when there is none."""
    if tok := os.environ.get("RAY_AUTH_TOKEN"):
        return tok.strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def _token_mode() -> None:
    """RAY_AUTH_MODE=token for this process. Ray reads the variable into a cached config when
    it is first imported, so setting it later needs Ray's own refresh as well."""
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
    except ImportError:  # another Ray layout: the variable alone (enough before Ray's import)
        os.environ["RAY_AUTH_MODE"] = "token"
        return
    _enable_token_auth()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> None:
    """Join ``address`` or start a local Ray whose workers know its address.

    Does nothing when Ray is already initialised in this process.

    Args:
        address: a cluster (``auto``, ``host:port`` or ``ray://…``); None: ``RAY_ADDRESS``
            if set (as in a Ray job), else a new local instance.
        num_cpus: logical CPUs of a local instance (ignored when joining a cluster).
        kwargs: passed to ``ray.init`` (``log_to_driver``, ``include_dashboard``…).
    """
    import ray

    # Train's controller polls its workers this often (default 2 s): a finished run otherwise
    # waits up to that long to be noticed, then again for its shutdown. Read by Train, and
    # passed on by Tune, from this process's environment; a user's own value wins.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")  # e.g. set by `ray job submit`
    if address:
        # Ray turns token authentication on for a cluster it finds by itself, never for an
        # explicit address: a token cluster would refuse us. With a token at hand, present it
        # (a cluster without authentication accepts a client that has one).
        if "RAY_AUTH_MODE" not in os.environ and auth_token() is not None:
            _token_mode()
        ray.init(address=address, **kwargs)
        return
    port = _free_port()
    here = f"{ray.util.get_node_ip_address()}:{port}"
    env = dict(kwargs.pop("runtime_env", None) or {})
    env["env_vars"] = {**env.get("env_vars", {}), "RAY_ADDRESS": here}
    before = os.environ.get("RAY_GCS_SERVER_PORT")
    os.environ["RAY_GCS_SERVER_PORT"] = str(port)  # read by the head node as it starts
    try:
        ray.init(num_cpus=num_cpus, runtime_env=env, **kwargs)
    finally:
        if before is None:
            os.environ.pop("RAY_GCS_SERVER_PORT", None)
        else:
            os.environ["RAY_GCS_SERVER_PORT"] = before
    started = ray.get_runtime_context().gcs_address
    if started != here:  # a Ray without the port variable: lookups may still be ambiguous
        log.warning("local Ray started at %s, not the requested %s", started, here)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:")


def error_line(error: str | None) -> str:
    """The root cause of a task's or trial's error in one line: Ray wraps a worker's exception
    in RayTaskError/WorkerGroupError text, whose first line names only the actor."""
    if not error:
        return ""
    lines = [ln.strip() for ln in _ANSI.sub("", error).splitlines() if ln.strip()]
    raised = [ln for ln in lines if _RAISED.match(ln)]
    return (raised[-1] if raised else lines[0])[:300]
