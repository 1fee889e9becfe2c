"""Shared fixtures: one local Ray instance per test session (a start costs ~8 s here), a small
phantom cohort in both layouts for the ingest, dataset and CLI tests, and a prepared dataset
with a hand-made run and its exported model for the inference tests.

Seed 12 gives, among 4 cases: one stored as a single multiphase series, one with a typo in a
series description, and both InstanceNumber directions — what the DICOM reader must cope with.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dcesynth.data.phantom import PhantomConfig, generate_cohort
from dcesynth.data.phantom.case import PhantomCase, generate_case


@pytest.fixture(scope="session", autouse=True)
def tracking_off() -> Iterator[None]:
    """No MLflow tracking in the suite (a fresh SQLite store costs ~7 s, importing mlflow ~4 s):
    the switch scripts use too. tests/test_tracking.py turns it back on where it tests it.
    Session-scoped, so it holds before any session fixture runs a command."""
    old = os.environ.get("DCESYNTH_TRACKING")
    os.environ["DCESYNTH_TRACKING"] = "off"
    yield
    if old is None:
        os.environ.pop("DCESYNTH_TRACKING", None)
    else:
        os.environ["DCESYNTH_TRACKING"] = old


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from dcesynth.cluster import init_ray

    # 4 logical CPUs on 2 cores: two Ray Train workers leave room for Ray Data tasks; the
    # dashboard stays on (Train's placement-group cleaner asks its State API)
    init_ray(num_cpus=4, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_training() -> dict:
    """Training settings shared by the end-to-end tests: the smallest pix2pixHD that still runs
    every stage (seconds per epoch on 32² phantom slices). Tests add dataset, epochs, workers."""
    return {
        "batch_size": 4,
        "checkpoint_every": 1,
        "val_slices": 8,
        "max_failures": 0,
        "model": {"ngf": 8, "n_downsample": 2, "n_blocks": 1, "ndf": 8},
        "loss": {"perceptual_network": "vgg19_random"},
    }


SOURCE_CFG = PhantomConfig(
    cases=4,
    matrix=48,
    slices=16,
    seed=12,
    multiphase_series_fraction=0.4,
    typo_fraction=0.4,
    multifocal_fraction=0.0,
)


@pytest.fixture(scope="session")
def phantom_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest_src") / "cohort"
    records = generate_cohort(SOURCE_CFG, out, workers=2, progress=False)
    protos = [r["protocol"] for r in records]
    assert sum(p["multiphase_series"] for p in protos) == 1
    assert any(p["typo"] for p in protos) and {p["instance_order"] for p in protos} == {1, -1}
    return out


@pytest.fixture(scope="session")
def phantom_cases() -> dict[str, PhantomCase]:
    cases = [generate_case(SOURCE_CFG, i) for i in range(SOURCE_CFG.cases)]
    return {c.case_id: c for c in cases}


@pytest.fixture
def source_copy(phantom_source: Path, tmp_path: Path) -> Path:
    """A private copy of the cohort that a test may damage."""
    dst = tmp_path / "cohort"
    shutil.copytree(phantom_source, dst)
    return dst


# --- a prepared dataset and a run made by hand (the inference and predict CLI tests) ---------
# An untrained tiny generator with a recorded selection, exported once: enough for every test
# that does not need a trained generator, in seconds. Ingest reads the shared cohort's NIfTI
# tree; prediction reads its DICOM tree, so round trips cross formats as a user's would.
INFERENCE_PHASES = (1, 2, 3)
INFERENCE_SPLIT = {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}


@pytest.fixture(scope="session")
def prepared(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    from dcesynth.data.ingest import IngestConfig, ingest

    out = tmp_path_factory.mktemp("inference") / "ds"
    icfg = IngestConfig(
        image_size=32, phases=INFERENCE_PHASES, split=INFERENCE_SPLIT, selection="all"
    )
    ingest(phantom_source / "nifti" / "images", out, icfg, progress=False)
    return out


@pytest.fixture(scope="session")
def joint_dataset(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    """The phantom source ingested at 32² with phases 1–3 (the study's tumour-slice selection):
    what the evaluation and trust end-to-end tests train their tiny joint runs on."""
    from dcesynth.data.ingest import IngestConfig, ingest

    out = tmp_path_factory.mktemp("joint") / "ds"
    icfg = IngestConfig(image_size=32, phases=INFERENCE_PHASES, split=INFERENCE_SPLIT)
    ingest(phantom_source / "nifti" / "images", out, icfg, progress=False)
    return out


def make_run(root: Path, dataset: Path, tiny_training: dict, seed: int = 0) -> Path:
    """A run directory as training leaves one: config.yaml, one checkpoint, a selection."""
    import json

    import torch
    import yaml

    from dcesynth.config import build_config
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    cfg = build_config(
        TrainConfig,
        None,
        {
            **tiny_training,
            "dataset": str(dataset),
            "runs_dir": str(root),
            "name": "hand",
            "phases": INFERENCE_PHASES,
            "epochs": 1,
            "seed": seed,
        },
    )
    run = root / "hand"
    (run / "checkpoints" / "epoch_001").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    torch.manual_seed(seed)
    G = build_generator(cfg)
    torch.save({"G": G.state_dict(), "epoch": 1}, run / "checkpoints/epoch_001/state.pt")
    (run / "report").mkdir()
    sel = {"selected_epoch": 1, "same": {"1": 0.25}, "same_metrics": ["mae", "ssim"]}
    (run / "report" / "selection.json").write_text(json.dumps(sel))
    return run


@pytest.fixture(scope="session")
def hand_run(prepared: Path, tmp_path_factory, tiny_training: dict) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), prepared, tiny_training)


@pytest.fixture(scope="session")
def model_file(hand_run: Path, tmp_path_factory) -> Path:
    from dcesynth.evaluation.export import export_run

    out = tmp_path_factory.mktemp("model") / "model.dcem"
    export_run(hand_run, out)
    return out


@pytest.fixture(scope="session")
def tiny_flow_training() -> dict:
    """The smallest rectified flow (the second generator family) that runs every stage: two
    UNet levels, two Euler steps, K = 2 averaged samples. Tests add dataset, epochs, workers."""
    return {
        "batch_size": 4,
        "checkpoint_every": 1,
        "val_slices": 8,
        "max_failures": 0,
        "lr": 1e-3,
        "beta1": 0.9,
        "model": {
            "family": "rectified_flow",
            "channels": [8, 16],
            "norm_num_groups": 8,
            "num_head_channels": 8,
            "num_res_blocks": 1,
            "sampling_steps": 2,
            "samples": 2,
        },
    }


@pytest.fixture(scope="session")
def flow_model_file(prepared: Path, tmp_path_factory, tiny_flow_training: dict) -> Path:
    """A hand-made rectified-flow run (untrained), exported: the flow's model artefact."""
    from dcesynth.evaluation.export import export_run

    run = make_run(tmp_path_factory.mktemp("flow_runs"), prepared, tiny_flow_training)
    out = tmp_path_factory.mktemp("flow_model") / "model.dcem"
    export_run(run, out)
    return out


# --- a weights server on the loopback interface (the `weights fetch` tests) -------------------

MAX_REQUESTS_PER_TEST = 20  # a fetch loop gone wrong fails fast instead of hammering


@dataclass
class WeightsServer:
    """Serves files by path; ``serve`` sets how: whole (``ok``), with a Content-Length 1000
    bytes over what is sent before closing (``truncate``), or headers then silence (``stall``,
    until the test ends). Any other path is a 404. ``requests`` lists the paths asked for."""

    base: str
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def serve(self, name: str, body: bytes, how: str = "ok") -> str:
        assert how in ("ok", "truncate", "stall"), how
        self.routes[f"/{name}"] = (how, body)
        return f"{self.base}/{name}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: WeightsServer = self.server.state  # type: ignore[attr-defined]
        state.requests.append(self.path)
        if self.path not in state.routes:
            self.send_error(404)
            return
        how, body = state.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if how == "truncate" else 0)))
        self.end_headers()
        if how == "stall":
            state.release.wait(10)
            return
        self.wfile.write(body)  # then the handler returns and the server closes the socket

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every urlopen in the test must go to 127.0.0.1, at most MAX_REQUESTS_PER_TEST times: the
    registry's real URLs are never contacted. Yields the URLs opened."""
    real = urllib.request.urlopen
    opened: list[str] = []

    def guarded(req, *args, **kwargs):
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        host = urllib.parse.urlparse(url).hostname
        assert host == "127.0.0.1", f"a test tried to reach {url}"
        assert "timeout" in kwargs or len(args) >= 2, "an urlopen without a timeout"
        opened.append(url)
        assert len(opened) <= MAX_REQUESTS_PER_TEST, opened
        return real(req, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    return opened


@pytest.fixture
def weights_server(loopback_only: list[str]):
    """A local HTTP server on 127.0.0.1 and a free port, stopped after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = WeightsServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()  # a stalled handler ends
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def closed_port_url(loopback_only: list[str]) -> str:
    """A loopback URL where nothing listens (the port was free a moment ago): offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- faults of the machine (issue 23): a nearly full disk, a second process on one folder -----

HOLDER = textwrap.dedent(
    """
    import sys
    from dcesynth.locks import folder_lock
    with folder_lock(sys.argv[1], sys.argv[2]):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes stdin
    """
)


@pytest.fixture
def held_by_other() -> Iterator[Callable[..., subprocess.Popen]]:
    """``hold(folder, what)`` → another process holding ``folder``'s lock until the test ends."""
    procs: list[subprocess.Popen] = []

    def hold(folder: Path, what: str = "ingest") -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder), what],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield hold
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
            p.wait(timeout=30)


@dataclass
class SmallDisk:
    """A private tmpfs: ``fill(leave)`` leaves about ``leave`` bytes free, ``free()`` undoes it."""

    root: Path

    def fill(self, leave: int) -> None:
        free = shutil.disk_usage(self.root).free
        with open(self.root / "filler", "ab") as f:
            f.write(b"\0" * max(0, free - leave))

    def free(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 64 MB tmpfs mounted for the test (root only; skipped where mounting is refused — the
    patched-writer tests cover the same paths there)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield SmallDisk(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
