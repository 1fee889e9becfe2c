"""`dcectl cluster check`: the shipped files pass; each kind of mistake is refused, naming the
key and its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.deploy.check import check_file, image_ray_version, installed_ray

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "cluster.yaml", *sorted((ROOT / "cluster" / "kuberay").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_pass(path: Path) -> None:
    res = check_file(path)
    assert res.ok, res.errors
    assert all("<" in p for p in res.placeholders)  # only the marked values are left to fill


def test_cli_passes_the_shipped_files() -> None:
    out = CliRunner().invoke(app, ["cluster", "check", *map(str, SHIPPED)])
    assert out.exit_code == 0, out.output
    assert out.output.count(": ok (") == len(SHIPPED) and "to fill in: docker.image" in out.output


def _edit(tmp_path: Path, text: str, old: str, new: str) -> Path:
    assert old in text, old
    p = tmp_path / "cluster.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


LAUNCHER = (ROOT / "cluster.yaml").read_text()
RAY = installed_ray()


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        (
            "max_workers: 8\nupscaling",
            "max_worker: 8\nupscaling",
            "max_worker",
            "Additional properties are not allowed ('max_worker'",
        ),
        (
            "    min_workers: 0\n    max_workers: 8\n",
            "    min_worker: 0\n    max_workers: 8\n",
            "available_node_types.gpu_1x.min_worker",
            "'min_worker' was unexpected",
        ),
        (
            "resources: {CPU: 8, GPU: 1}",
            "resources: {CPU: 8, GPU: 0.5}",
            "available_node_types.gpu_1x.resources.GPU",
            "0.5",
        ),
        (
            f"ray{RAY}-gpu\n  container_name",
            "ray2.40.0-gpu\n  container_name",
            "docker.image",
            f"holds Ray 2.40.0, this machine runs Ray {RAY}",
        ),
        (
            "<your-public-ip>/32",
            "0.0.0.0/0\n      - FromPort: 8265\n        ToPort: 8265\n"
            "        IpProtocol: tcp\n        IpRanges:\n          - CidrIp: 0.0.0.0/0",
            "provider.security_group.IpPermissions.1",
            "opens 8265 (dashboard) to 0.0.0.0/0",
        ),
        (
            "--dashboard-host=127.0.0.1",
            "--dashboard-host=0.0.0.0",
            "head_start_ray_commands.1",
            "on every interface",
        ),
        ("setup_commands: []\nhead_setup", "head_setup", "setup_commands", "nightly Ray"),
        (
            "  cache_stopped_nodes: false",
            "  cache_stoped_nodes: false",
            "provider.cache_stoped_nodes",
            "not a key of the AWS provider",
        ),
        (
            "      InstanceType: g5.2xlarge",
            "      InstanceTyp: g5.2xlarge",
            "available_node_types.gpu_1x.node_config.InstanceTyp",
            "not an EC2 RunInstances",
        ),
        (
            "    min_workers: 0\n    max_workers: 2",
            "    min_workers: 3\n    max_workers: 2",
            "available_node_types.gpu_4x.min_workers",
            "min_workers 3 > max_workers 2",
        ),
        (
            "RAY_AUTH_MODE=token ray start --address",
            "ray start --address",
            "worker_start_ray_commands",
            "without RAY_AUTH_MODE=token",
        ),
    ],
    ids=[
        "top-level typo",
        "node-type typo",
        "fractional GPU",
        "Ray version",
        "open dashboard",
        "public dashboard host",
        "no setup commands",
        "provider typo",
        "node_config typo",
        "min > max",
        "no token",
    ],
)
def test_launcher_mistakes_name_key_and_line(tmp_path, old, new, key, needle) -> None:
    path = _edit(tmp_path, LAUNCHER, old, new)
    res = check_file(path)
    assert not res.ok
    hit = [e for e in res.errors if f"`{key}`" in e and needle in e]
    assert hit, res.errors
    line = r"" if "missing" in hit[0] else r":\d+"  # a missing key has no line
    assert re.match(rf"{re.escape(str(path))}{line}: `", hit[0]), hit[0]
    out = CliRunner().invoke(app, ["cluster", "check", str(path)])
    assert out.exit_code == 2 and key in out.output


KUBE = (ROOT / "cluster" / "kuberay" / "raycluster.yaml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("serviceType: ClusterIP", "serviceType: LoadBalancer", "exposes the dashboard"),
        (f'rayVersion: "{RAY}"', 'rayVersion: "2.40.0"', "'2.40.0', this machine runs"),
        (
            "nvidia.com/gpu: 1}\n                requests",
            "nvidia.com/gpu: 0.5}\n                requests",
            "GPUs are whole devices",
        ),
        ("                value: token", "                value: disabled", "RAY_AUTH_MODE=token"),
    ],
)
def test_kuberay_mistakes(tmp_path, old, new, needle) -> None:
    res = check_file(_edit(tmp_path, KUBE, old, new))
    assert any(needle in e for e in res.errors), res.errors


def test_rayjob_needs_name_and_cluster(tmp_path: Path) -> None:
    job = yaml.safe_load((ROOT / "cluster" / "kuberay" / "rayjob-sweep.yaml").read_text())
    del job["spec"]["metadata"], job["spec"]["clusterSelector"]
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(job))
    errors = " | ".join(check_file(p).errors)
    assert "job_name" in errors and "clusterSelector" in errors


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("rayproject/ray:2.60.0-py311-gpu", "2.60.0"),
        ("reg.io/x/dcesynth:0.1.0-ray2.60.0-gpu", "2.60.0"),
        ("rayproject/ray:latest", None),
        ("dcesynth:0.1.0", None),
        ("host:5000/img", None),
    ],
)
def test_image_ray_version(image: str, version: str | None) -> None:
    assert image_ray_version(image) == version


def test_shipped_files_start_mlflow_on_the_heads_loopback_with_its_store_on_shared() -> None:
    head = yaml.safe_load(LAUNCHER)["head_start_ray_commands"]
    (server,) = [c for c in head if "mlflow server" in c]
    assert "--host 127.0.0.1" in server and "sqlite:////shared/mlflow/mlflow.db" in server
    assert "--artifacts-destination /shared/mlflow/mlartifacts" in server
    (start,) = [c for c in head if "ray start" in c]
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in start  # jobs' drivers log there
    pod = yaml.safe_load(KUBE)["spec"]["headGroupSpec"]["template"]["spec"]
    (mlflow,) = [c for c in pod["containers"] if c["name"] == "mlflow"]
    command = " ".join(mlflow["command"])
    assert "--host 127.0.0.1" in command and "sqlite:////shared/mlflow/mlflow.db" in command
    assert "ports" not in mlflow  # reached by port-forward only
    (ray_head,) = [c for c in pod["containers"] if c["name"] == "ray-head"]
    env = {e["name"]: e.get("value") for e in ray_head["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("text", "old", "new", "needle"),
    [
        (LAUNCHER, "mlflow server --host 127.0.0.1", "mlflow server --host 0.0.0.0", "0.0.0.0"),
        (KUBE, "mlflow server --host 127.0.0.1", "mlflow server --host 0.0.0.0", "0.0.0.0"),
        (
            LAUNCHER,
            "sqlite:////shared/mlflow/mlflow.db",
            "sqlite:////tmp/mlflow.db",
            "--backend-store-uri sqlite:////tmp/mlflow.db: put it under /shared",
        ),
    ],
    ids=["launcher public mlflow", "kuberay public mlflow", "store off /shared"],
)
def test_mlflow_server_mistakes(tmp_path: Path, text: str, old: str, new: str, needle: str):
    res = check_file(_edit(tmp_path, text, old, new))
    assert not res.ok and any(needle in e and "mlflow server" in e for e in res.errors), res.errors
