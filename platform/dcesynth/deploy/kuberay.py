"""KubeRay manifests (RayCluster, RayJob): the checks of `dcectl cluster check` that apply.

KubeRay validates its custom resources in the cluster (the operator's webhook and CRD
schema); offline we check what decides whether the cluster works for dcesynth and is safe:
the Ray version (``rayVersion`` and every image tag) equal to the Ray installed here, whole GPU
counts, a head service that is not public, token authentication, an MLflow sidecar on the
loopback with its store on /shared, and that a RayJob names its entrypoint, its cluster and
its ``job_name``.
"""

from __future__ import annotations

from pathlib import Path

from dcesynth.deploy.check import (
    CheckResult,
    _placeholders,
    _Reporter,
    image_ray_version,
    installed_ray,
    mlflow_server_problem,
)

KINDS = ("RayCluster", "RayJob")


def _containers(pod: dict) -> list[dict]:
    return ((pod or {}).get("spec") or {}).get("containers") or []


def _check_pod(template: dict, where: tuple, report: _Reporter, here: str) -> None:
    for i, c in enumerate(_containers(template)):
        key = (*where, "spec", "containers", i)
        image = c.get("image", "")
        v = image_ray_version(image)
        if v is None:
            report(
                (*key, "image"),
                f"{image}: cannot tell its Ray version; tag it "
                f"`…-ray{here}-…` (see cluster/Dockerfile)",
            )
        elif v != here:
            report((*key, "image"), f"{image} holds Ray {v}, this machine runs Ray {here}")
        limits = (c.get("resources") or {}).get("limits") or {}
        gpus = limits.get("nvidia.com/gpu")
        if gpus is not None and (not isinstance(gpus, int) or gpus < 0):
            report(
                (*key, "resources", "limits", "nvidia.com/gpu"), f"{gpus!r}: GPUs are whole devices"
            )
        server = " ".join(str(w) for w in [*(c.get("command") or []), *(c.get("args") or [])])
        if why := mlflow_server_problem(server):
            report((*key, "command"), why)
        if "mlflow server" in server:
            continue  # a tracking-server sidecar runs no Ray: no Ray token to present
        env = {e.get("name"): e for e in c.get("env") or []}
        if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
            report((*key, "env"), "no RAY_AUTH_MODE=token: the cluster would accept any client")
        elif "RAY_AUTH_TOKEN" not in env and "RAY_AUTH_TOKEN_PATH" not in env:
            report((*key, "env"), "RAY_AUTH_MODE=token without RAY_AUTH_TOKEN (from a Secret)")


def _check_cluster_spec(spec: dict, where: tuple, report: _Reporter, here: str) -> None:
    if str(spec.get("rayVersion")) != here:
        report((*where, "rayVersion"), f"{spec.get('rayVersion')!r}, this machine runs Ray {here}")
    head = spec.get("headGroupSpec") or {}
    if head.get("serviceType") in ("LoadBalancer", "NodePort"):
        report(
            (*where, "headGroupSpec", "serviceType"),
            f"{head['serviceType']} exposes the dashboard, client and GCS ports outside the "
            "cluster; use ClusterIP and `kubectl port-forward`",
        )
    _check_pod(head.get("template"), (*where, "headGroupSpec", "template"), report, here)
    for i, g in enumerate(spec.get("workerGroupSpecs") or []):
        gw = (*where, "workerGroupSpecs", i)
        lo, hi = g.get("minReplicas", 0), g.get("maxReplicas", 0)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            report((*gw, "minReplicas"), f"minReplicas {lo} > maxReplicas {hi}")
        _check_pod(g.get("template"), (*gw, "template"), report, here)


def check_manifests(path: Path, text: str, docs: list) -> CheckResult:
    report = _Reporter(path, text)
    here = installed_ray()
    kinds = []
    multi = len(docs) > 1
    for n, doc in enumerate(docs):
        base = (n,) if multi else ()
        if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
            report((*base, "kind"), f"{(doc or {}).get('kind')!r}: not one of {', '.join(KINDS)}")
            continue
        kinds.append(doc["kind"])
        spec = doc.get("spec") or {}
        if doc["kind"] == "RayCluster":
            _check_cluster_spec(spec, (*base, "spec"), report, here)
            continue
        if not spec.get("entrypoint"):
            report((*base, "spec", "entrypoint"), "required: the command the job runs")
        if not (spec.get("metadata") or {}).get("job_name"):
            report((*base, "spec", "metadata"), "a `job_name` is what the dashboard shows")
        if "clusterSelector" not in spec and "rayClusterSpec" not in spec:
            report(
                (*base, "spec"), "needs clusterSelector (an existing RayCluster) or rayClusterSpec"
            )
        if "rayClusterSpec" in spec:
            _check_cluster_spec(
                spec["rayClusterSpec"], (*base, "spec", "rayClusterSpec"), report, here
            )
        if "submitterPodTemplate" in spec:
            _check_pod(
                spec["submitterPodTemplate"], (*base, "spec", "submitterPodTemplate"), report, here
            )
    res = CheckResult(path, "KubeRay " + " + ".join(kinds or ["?"]))
    res.errors = report.errors
    res.placeholders = [p for d in docs for p in _placeholders(d)]
    return res
