"""`dcectl cluster check`: a cluster file checked offline before `ray up` or `kubectl apply`.

For a Ray cluster-launcher file (``cluster.yaml``) the check runs Ray's own config preparation
(defaults merged from the provider's ``defaults.yaml``) and Ray's JSON schema — the same code
`ray up` runs, without cloud credentials — then what that schema does not check:

* provider keys and (for AWS) node-config keys: the schema lets any key through, so a typo
  (``avaliability_zone``, ``InstanceTyp``) would only fail in the cloud, or not at all;
* integer resources, ``min_workers`` ≤ ``max_workers``;
* the image's Ray version equal to the Ray installed here (a driver and a cluster of other Ray
  versions cannot talk to each other);
* setup commands present: left out, the launcher's defaults pip-install a nightly Ray on nodes
  without one; start commands present, with token authentication on;
* no public ingress on the dashboard (8265), Ray client (10001) or GCS (6379) ports: neither a
  security-group rule open to 0.0.0.0/0 over them nor ``--dashboard-host=0.0.0.0`` on the head;
* an MLflow tracking server on the head listens on 127.0.0.1 only, its store and artefacts on
  /shared.

KubeRay manifests (``kind: RayCluster`` / ``RayJob``) get the checks that apply to them.
Problems name the key and its line; placeholders such as ``<registry>`` are listed as to fill
in (warnings, not errors, so the shipped template passes).
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dcesynth.config import ConfigError, yaml_lines

RAY_PORTS = {6379: "GCS", 8265: "dashboard", 10001: "Ray client"}
AWS_PROVIDER_KEYS = {
    "type",
    "region",
    "availability_zone",
    "cache_stopped_nodes",
    "security_group",
    "use_internal_ips",
    "use_external_head_ip",
    "key_pair",
    "tags",
    "cloudwatch",
    "disable_node_updaters",
    "controlled_hash_whitelist",
}
# EC2 RunInstances parameters a node_config may carry (the AWS provider passes them through)
AWS_NODE_KEYS = {
    "InstanceType",
    "ImageId",
    "KeyName",
    "SubnetIds",
    "SubnetId",
    "SecurityGroupIds",
    "IamInstanceProfile",
    "BlockDeviceMappings",
    "InstanceMarketOptions",
    "Placement",
    "TagSpecifications",
    "NetworkInterfaces",
    "UserData",
    "MetadataOptions",
    "LaunchTemplate",
    "EbsOptimized",
    "CapacityReservationSpecification",
    "CpuOptions",
    "Monitoring",
    "HibernationOptions",
    "PrivateIpAddress",
    "InstanceInitiatedShutdownBehavior",
    "CreditSpecification",
    "ElasticGpuSpecification",
    "LicenseSpecifications",
}
PLACEHOLDER = re.compile(r"<[^<>\n]+>")


@dataclass
class CheckResult:
    path: Path
    kind: str  # "ray cluster launcher" | "KubeRay RayCluster" | …
    errors: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Reporter:
    """Collects problems as ``file:line: key: message``."""

    def __init__(self, path: Path, text: str, doc: int = 0) -> None:
        self.path, self.lines, self.errors = path, yaml_lines(text), []
        self.doc = doc

    def line(self, key: tuple) -> int | None:
        key = tuple(str(k) for k in key)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def __call__(self, key: tuple, message: str) -> None:
        line = self.line(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(str(k) for k in key) or "<top level>"
        self.errors.append(f"{where}: `{dotted}`: {message}")


def installed_ray() -> str:
    from importlib.metadata import version

    return version("ray")


def image_ray_version(image: str) -> str | None:
    """The Ray version an image tag says it holds: ``rayproject/ray:2.60.0-…`` or a tag
    containing ``ray2.60.0`` (this project's convention, see cluster/Dockerfile)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    if name.endswith("rayproject/ray") or name.endswith("rayproject/ray-ml"):
        m = re.match(r"(\d+\.\d+\.\d+)", tag)
        return m.group(1) if m else None
    m = re.search(r"ray-?(\d+\.\d+\.\d+)", tag)
    return m.group(1) if m else None


def _placeholders(data, path=()) -> list[str]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _placeholders(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _placeholders(v, (*path, i))
    elif isinstance(data, str) and PLACEHOLDER.search(data):
        out.append(f"{'.'.join(map(str, path))}: {data}")
    return out


def check_file(path: str | Path) -> CheckResult:
    """Check a cluster-launcher file or KubeRay manifest (see the module docstring).

    Raises:
        ConfigError: the file is missing or not YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such cluster file")
    text = path.read_text()
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if len(docs) == 1 and isinstance(docs[0], dict) and "kind" not in docs[0]:
        return _check_launcher(path, text, docs[0])
    from dcesynth.deploy.kuberay import check_manifests

    return check_manifests(path, text, docs)


def _check_launcher(path: Path, text: str, data: dict) -> CheckResult:
    from ray.autoscaler._private.util import prepare_config, validate_config

    res = CheckResult(path, "ray cluster launcher", placeholders=_placeholders(data))
    report = _Reporter(path, text)
    if "provider" not in data or "type" not in (data.get("provider") or {}):
        report(("provider",), "required, with a `type` (aws, gcp, azure, …)")
        res.errors = report.errors
        return res
    quiet = logging.getLogger("ray.autoscaler")  # Ray logs its defaults at INFO as it fills them
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        # exactly what `ray up` does before it talks to the cloud
        prepared = prepare_config(copy.deepcopy(data))
        validate_config(prepared)
    except Exception as e:  # jsonschema.ValidationError, ValueError from Ray's checks
        key = tuple(getattr(e, "path", ()) or ())
        msg = getattr(e, "message", None) or str(e).splitlines()[0]
        extra = re.findall(r"'([^']+)' (?:was|were) unexpected", msg)
        if extra:  # an unknown key: point at it rather than at its parent
            key = (*key, extra[0])
            msg += f"; allowed here: {', '.join(_allowed(e))}" if _allowed(e) else ""
        report(key, f"Ray's cluster schema: {msg}")
    finally:
        quiet.setLevel(level)
    _check_provider(data, report)
    _check_nodes(data, report)
    _check_image(data, report)
    _check_commands(data, report)
    res.errors = report.errors
    return res


def _allowed(err) -> list[str]:
    """The keys a schema object allows (for a helpful "unknown key" message)."""
    props = (getattr(err, "schema", None) or {}).get("properties") or {}
    return sorted(props)


def _check_provider(data: dict, report: _Reporter) -> None:
    provider = data["provider"]
    if provider.get("type") == "aws":
        for k in provider:
            if k not in AWS_PROVIDER_KEYS:
                report(
                    ("provider", k),
                    f"not a key of the AWS provider; known: {', '.join(sorted(AWS_PROVIDER_KEYS))}",
                )
        perms = (provider.get("security_group") or {}).get("IpPermissions") or []
        for i, rule in enumerate(perms):
            lo, hi = rule.get("FromPort", 0), rule.get("ToPort", 65535)
            if rule.get("IpProtocol") == "-1":
                lo, hi = 0, 65535
            ranges = [r.get("CidrIp") for r in rule.get("IpRanges") or []]
            ranges += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or []]
            public = [c for c in ranges if c in ("0.0.0.0/0", "::/0")]
            exposed = [f"{p} ({n})" for p, n in RAY_PORTS.items() if lo <= p <= hi]
            if public and exposed:
                report(
                    ("provider", "security_group", "IpPermissions", i),
                    f"opens {', '.join(exposed)} to {', '.join(public)}: anyone on the "
                    "internet could submit jobs; allow SSH only and use `ray dashboard`",
                )


def _check_nodes(data: dict, report: _Reporter) -> None:
    types = data.get("available_node_types") or {}
    aws = data["provider"].get("type") == "aws"
    for name, spec in types.items():
        if not isinstance(spec, dict):
            continue
        for res_name, v in (spec.get("resources") or {}).items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                report(
                    ("available_node_types", name, "resources", res_name),
                    f"{v!r}: a node offers whole, non-negative units (GPU: 1, not 0.5)",
                )
        lo, hi = spec.get("min_workers", 0), spec.get("max_workers")
        if isinstance(hi, int) and isinstance(lo, int) and lo > hi:
            report(
                ("available_node_types", name, "min_workers"),
                f"min_workers {lo} > max_workers {hi}",
            )
        if aws:
            for k in spec.get("node_config") or {}:
                if k not in AWS_NODE_KEYS:
                    report(
                        ("available_node_types", name, "node_config", k),
                        "not an EC2 RunInstances parameter the AWS provider passes on "
                        "(e.g. InstanceType, ImageId, BlockDeviceMappings, SubnetIds)",
                    )


def _check_image(data: dict, report: _Reporter) -> None:
    docker = data.get("docker") or {}
    here = installed_ray()
    for key in ("image", "head_image", "worker_image"):
        image = docker.get(key)
        if not image:
            continue
        v = image_ray_version(image)
        if v is None:
            report(
                ("docker", key),
                f"{image}: cannot tell its Ray version; tag it "
                f"`…-ray{here}-…` (see cluster/Dockerfile) or use rayproject/ray:{here}-…",
            )
        elif v != here:
            report(
                ("docker", key),
                f"{image} holds Ray {v}, this machine runs Ray {here}: "
                "drivers and clusters of different Ray versions cannot talk to each other",
            )


def mlflow_server_problem(cmd: str) -> str | None:
    """What is wrong with an ``mlflow server`` command on the head (None: fine, or not one):
    it must listen on the loopback only (reached by port forwarding, like the dashboard) and
    keep its store and artefacts on /shared, where they outlive the head."""
    if "mlflow server" not in cmd and "mlflow ui" not in cmd:
        return None
    words = cmd.replace("=", " ").split()
    host = words[words.index("--host") + 1] if "--host" in words[:-1] else "127.0.0.1"
    if host not in ("127.0.0.1", "localhost"):
        return (
            f"mlflow server --host {host} serves the tracking store (and lets anyone who reaches "
            "it write runs) beyond the head: use --host 127.0.0.1 and port forwarding"
        )
    for opt in ("--backend-store-uri", "--artifacts-destination"):
        value = words[words.index(opt) + 1] if opt in words[:-1] else ""
        if "/shared/" not in value:
            return f"mlflow server {opt} {value or '(default)'}: put it under /shared"
    return None


def _check_commands(data: dict, report: _Reporter) -> None:
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        if key not in data:
            why = (
                "the launcher's defaults would pip-install a nightly Ray on nodes without "
                "one; write `setup_commands: []` when the image has everything"
                if key == "setup_commands"
                else "the defaults start Ray without token authentication and, on the "
                "head, with the dashboard on every interface"
            )
            report((key,), f"missing: {why}")
    for i, cmd in enumerate(data.get("head_start_ray_commands") or []):
        if "dashboard-host=0.0.0.0" in str(cmd).replace(" ", "="):
            report(
                ("head_start_ray_commands", i),
                "--dashboard-host=0.0.0.0 serves the "
                "dashboard and job API on every interface; use 127.0.0.1 and "
                "`ray dashboard cluster.yaml`",
            )
    for i, cmd in enumerate(data.get("head_start_ray_commands") or []):
        if why := mlflow_server_problem(str(cmd)):
            report(("head_start_ray_commands", i), why)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in data.get(key) or [] if "ray start" in str(c)]
        if starts and not any("RAY_AUTH_MODE=token" in str(c) for c in starts):
            report(
                (key,),
                "starts Ray without RAY_AUTH_MODE=token: anyone who reaches a port "
                "could run code; prefix `ray start` with RAY_AUTH_MODE=token",
            )
