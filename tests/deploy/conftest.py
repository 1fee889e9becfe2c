"""Local multi-node Ray clusters for the cluster tests, started and stopped by the tests alone.

Other Ray instances run on this machine (the session's, a user's), so every cluster here gets
free ports and its own temp dir, is joined by explicit address, and is stopped by ending the
processes of that temp dir — never `ray stop`, which would end everyone's.

``autoscaling_cluster``: a CPU-only head and a worker type advertising one GPU that scales from
zero, through Ray's fake multi-node provider (`ray start --head --autoscaling-config=…` with
``RAY_FAKE_CLUSTER=1``): the autoscaler starts real raylets on this machine as "nodes", each
with its own runtime_env folder (separate_disks.py says why).
``token_cluster``: a plain head with token authentication and a test token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

TOKEN = "dcesynth0test0token0000000000000"
RAY = str(Path(sys.executable).parent / "ray")
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


@dataclass
class LocalCluster:
    gcs: str  # host:port
    dashboard: str  # http://127.0.0.1:port
    temp_dir: Path
    env: dict  # what a client needs (RAY_AUTH_MODE/RAY_AUTH_TOKEN for the token cluster)


def _processes() -> dict[int, tuple[int, str]]:
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(p)] = (ppid, cmd)
    return out


def _tree(marker: str) -> set[int]:
    """Processes whose command line names ``marker`` (our temp dir), and their descendants."""
    procs = _processes()
    me = {os.getpid(), os.getppid()}
    found = {p for p, (_, cmd) in procs.items() if marker in cmd and p not in me}
    grew = True
    while grew:
        grew = False
        for p, (pp, _) in procs.items():
            if pp in found and p not in found and p not in me:
                found.add(p)
                grew = True
    return found


def stop_cluster(temp_dir: Path) -> None:
    """End exactly the processes of the cluster started with ``temp_dir``."""
    marker = str(temp_dir)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = _tree(marker)
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _tree(marker):
            time.sleep(0.3)


def _start(
    extra_args: list[str], env: dict, temp_dir: Path, port: int | None = None
) -> LocalCluster:
    port, dport = port or _free_port(), _free_port()
    cmd = [RAY, "start", "--head", f"--port={port}", f"--dashboard-port={dport}",
           "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}", "--disable-usage-stats",
           f"--ray-client-server-port={_free_port()}",
           # fixed by default (52365): taken by the first Ray on the machine, and without it
           # the head cannot take jobs ("No available agent to submit job")
           f"--dashboard-agent-listen-port={_free_port()}", *extra_args]  # fmt: skip
    # jobs run `python -m dcesynth…` with the nodes' PATH: this interpreter's folder first
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    client_env = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN") if k in env}
    return LocalCluster(f"{_ip()}:{port}", f"http://127.0.0.1:{dport}", temp_dir, client_env)


def _temp_dir() -> Path:
    # short: Ray's unix sockets live under it (108-character limit)
    return Path(tempfile.mkdtemp(prefix="dcs-", dir="/tmp"))


@pytest.fixture(scope="module")
def autoscaling_cluster():
    temp_dir = _temp_dir()
    gcs_port = _free_port()
    config = {
        "cluster_name": "dcesynth-test",
        "max_workers": 1,
        # Ray's fake provider, each node with its own runtime_env folder (separate_disks.py)
        "provider": {"type": "external", "module": "separate_disks.SeparateDisksFakeProvider",
                     "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "gcs_address": f"{_ip()}:{gcs_port}"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 2}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 2, "GPU": 1}, "node_config": {},
                           "min_workers": 0, "max_workers": 1},
        },
        "head_node_type": "ray.head.default",
        "auth": {}, "docker": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [],
        "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }  # fmt: skip
    cfg = temp_dir / "autoscaling.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_AUTH_MODE": "disabled",  # the autoscaler imports separate_disks from HERE
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.getenv("PYTHONPATH")])),
    }
    env.pop("RAY_ADDRESS", None)
    args = [f"--autoscaling-config={cfg}", "--num-cpus=2", "--num-gpus=0"]
    try:  # the fake provider starts worker raylets against the GCS address in its config
        yield _start(args, env, temp_dir, port=gcs_port)
    finally:
        stop_cluster(temp_dir)


@pytest.fixture(scope="module")
def token_cluster():
    temp_dir = _temp_dir()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    env.pop("RAY_ADDRESS", None)
    try:
        yield _start(["--num-cpus=2"], env, temp_dir)
    finally:
        stop_cluster(temp_dir)
