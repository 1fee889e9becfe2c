"""From one machine to a cluster, on this machine: a named job that needs a GPU makes the
autoscaler add a GPU worker node (Ray's fake multi-node provider), the job succeeds and writes
to the shared path, and the job API lists it by name; a token cluster refuses clients without
its token and accepts `dcectl` with it; the dashboard's Jobs page, opened in headless
Chromium, shows the jobs (with the token as a cookie on the token cluster)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.phantom import PhantomConfig, generate_cohort

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dcectl(*args: str, env: dict | None = None, timeout: int = 300):
    full = {**os.environ, "CI": "1", **(env or {})}
    full.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "dcesynth.cli.app", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _client(cluster, token: str | None = None):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(
        cluster.dashboard, headers={"Authorization": f"Bearer {token}"} if token else None
    )


def _wait(client, submission_id: str, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_job_status(submission_id)
        if status.is_terminal():
            return status.value
        time.sleep(2)
    raise AssertionError(f"{submission_id} still running after {timeout} s")


def _nodes(cluster) -> list[dict]:
    """Alive nodes and their resources, from the cluster's state API (HTTP)."""
    with urllib.request.urlopen(f"{cluster.dashboard}/api/v0/nodes?limit=100", timeout=30) as r:
        rows = json.load(r)["data"]["result"]["result"]
    return [n for n in rows if n["state"] == "ALIVE"]


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory) -> Path:
    """The 'shared storage' of the test cluster: a prepared phantom dataset in a folder every
    node (all on this machine) reads."""
    root = tmp_path_factory.mktemp("shared")
    cohort = PhantomConfig(
        cases=8, matrix=48, slices=12, seed=4, multifocal_fraction=0.0, formats=("nifti",)
    )
    generate_cohort(cohort, root / "cohort", workers=2, progress=False)
    split = {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}
    ingest(
        root / "cohort" / "nifti" / "images",
        root / "dataset",
        IngestConfig(image_size=48, phases=(1,), split=split),
        progress=False,
    )
    return root


def test_gpu_job_scales_a_worker_from_zero(autoscaling_cluster, shared: Path) -> None:
    cluster = autoscaling_cluster
    assert len(_nodes(cluster)) == 1  # the CPU-only head: no GPU worker before the job
    cfg = {
        "name": "gpujob",
        "out": str(shared / "segmentation"),
        "dataset": str(shared / "dataset"),
        "scenarios": [3],
        "sets": ["D"],
        "folds": 2,
        "backend": "threshold",
        "gpus_per_fold": 1,
        "cpus_per_fold": 1,
    }
    (shared / "segment.yaml").write_text(yaml.safe_dump(cfg))
    sub = _dcectl(
        "submit",
        "segment",
        str(shared / "segment.yaml"),
        "--address",
        cluster.dashboard,
        "--name",
        "seg-gpu",
    )
    assert sub.returncode == 0, sub.stderr[-2000:]
    submission_id = sub.stdout.split()[1]
    assert submission_id.startswith("seg-gpu-")
    client = _client(cluster)
    status = _wait(client, submission_id)
    logs = client.get_job_logs(submission_id)
    assert status == "SUCCEEDED", logs[-3000:]
    # the autoscaler added the GPU worker type the folds asked for, and they trained there
    nodes = _nodes(cluster)
    gpu_nodes = [n for n in nodes if (n.get("resources_total") or {}).get("GPU", 0) >= 1]
    assert len(nodes) == 2 and len(gpu_nodes) == 1, nodes
    study = shared / "segmentation" / "gpujob"
    for f in (0, 1):
        rec = json.loads((study / "folds" / f"D_fold{f}.json").read_text())
        assert rec["node"] == gpu_nodes[0]["node_id"] and rec["device"] == "cpu"
    assert json.loads((study / "results" / "table3.json").read_text())[0]["n"] >= 1
    # the GPU node unpacked the job's code into its own folder, not under the head's workers
    session = cluster.temp_dir / "session_latest"
    assert list((session / "runtime_resources_node1" / "working_dir_files").glob("_ray_pkg_*"))
    # the job API lists it under its name
    listed = {j.submission_id: j for j in client.list_jobs()}
    assert listed[submission_id].metadata["job_name"] == "seg-gpu"
    assert listed[submission_id].metadata["dcesynth_stage"] == "segment"
    jobs = _dcectl("jobs", "--address", cluster.dashboard)
    assert jobs.returncode == 0 and "seg-gpu" in jobs.stdout and "SUCCEEDED" in jobs.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_dashboard_jobs_page_in_chromium(autoscaling_cluster, tmp_path: Path) -> None:
    """The Jobs page as a browser renders it (the dashboard is a JavaScript application)."""
    url = f"{autoscaling_cluster.dashboard}/#/jobs"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,900",
        "--virtual-time-budget=20000",
    ]
    dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    # the Name column shows the job's job_name; the submission id begins with it
    assert ">seg-gpu<" in dom.stdout and "seg-gpu-20" in dom.stdout, dom.stdout[-2000:]
    shot = tmp_path / "jobs.png"
    subprocess.run([*args, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, DOCS / "dashboard_jobs.png")


def test_token_cluster_refuses_without_and_accepts_with_the_token(token_cluster, shared):
    token = token_cluster.env["RAY_AUTH_TOKEN"]
    no_token = {"RAY_AUTH_TOKEN_PATH": str(shared / "no-token-here")}  # hide ~/.ray/auth_token
    env = {**os.environ, **no_token}
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        env.pop(k, None)
    # the job API: no token → refused (in a process that has none); a wrong one → refused
    code = (
        "from ray.job_submission import JobSubmissionClient; "
        f"JobSubmissionClient({token_cluster.dashboard!r}).list_jobs()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "Missing authentication token" in out.stderr, out.stderr
    with pytest.raises(Exception, match=r"403|Forbidden|Invalid"):
        _client(token_cluster, "0" * 32).list_jobs()
    refused = _dcectl("submit", "phantom", "--address", token_cluster.dashboard, env=no_token)
    assert refused.returncode != 0
    # a driver joining by address: refused without the token, joins with it (init_ray turns
    # Ray's token mode on when a token is at hand)
    code = (
        f"from dcesynth.cluster import init_ray; init_ray({token_cluster.gcs!r}); "
        "import ray; print('CPUs', ray.cluster_resources()['CPU'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "CPUs" not in out.stdout
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "RAY_AUTH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "CPUs 2.0" in out.stdout, out.stderr[-2000:]
    # `dcectl submit` with the token: accepted, and the job (a small phantom) succeeds
    out_dir = shared / "phantom_job"
    sub = _dcectl(
        "submit",
        "phantom",
        "--out",
        str(out_dir),
        "--cases",
        "2",
        "--matrix",
        "32",
        "--slices",
        "8",
        "--address",
        token_cluster.dashboard,
        "--name",
        "phantom-tiny",
        env={"RAY_AUTH_TOKEN": token},
    )
    assert sub.returncode == 0, sub.stderr[-2000:]
    submission_id = sub.stdout.split()[1]
    assert _wait(_client(token_cluster, token), submission_id) == "SUCCEEDED"
    assert (out_dir / "cohort.json").is_file()  # the job's output on the shared path


@pytest.mark.skipif(
    CHROMIUM is None or shutil.which("chromedriver") is None,
    reason="chromium/chromium-driver not installed (make test installs them where it can)",
)
def test_token_dashboard_in_a_browser_with_the_token_cookie(token_cluster, tmp_path) -> None:
    """Selenium drives the system Chromium; the token goes in Ray's dashboard cookie."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(f"{token_cluster.dashboard}/api/version")  # a page of the origin first
        assert "Unauthorized" in driver.page_source or "401" in driver.page_source
        driver.add_cookie(
            {"name": "ray-authentication-token", "value": token_cluster.env["RAY_AUTH_TOKEN"]}
        )
        driver.get(f"{token_cluster.dashboard}/#/jobs")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "phantom-tiny-" not in driver.page_source:
            time.sleep(1)
        assert ">phantom-tiny<" in driver.page_source and "phantom-tiny-20" in driver.page_source
        shot = tmp_path / "jobs_token.png"
        driver.save_screenshot(str(shot))
        shutil.copy(shot, DOCS / "dashboard_jobs_token.png")
    finally:
        driver.quit()
