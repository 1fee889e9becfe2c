"""Named Ray jobs for every stage: `dcectl submit STAGE [ARGS…] --address http://HEAD:8265`.

A thin layer over Ray's ``JobSubmissionClient`` that gives each job what the study needs:

* a name a person recognises: the submission id ``<name>-<YYYYmmdd-HHMMSS>`` (the dashboard's
  Jobs page and ``ray job list`` show it) and ``job_name`` / ``dcesynth_stage`` metadata;
* a runtime environment in which ``dcesynth`` imports: this checkout as the working directory
  and ``platform/`` on ``PYTHONPATH``, so the job runs the code you submitted even on an image
  with an older dcesynth; outputs, caches and the virtualenv are left behind;
* authentication against a token cluster: the token (``RAY_AUTH_TOKEN``, the file
  ``RAY_AUTH_TOKEN_PATH`` names, else ``~/.ray/auth_token``) goes in the request header.

The job's entrypoint is the same ``dcectl`` command you would type on the head node; inside
the job it joins the cluster through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from dcesynth.cluster import auth_token
from dcesynth.config import ConfigError

STAGES = (
    "phantom",
    "ingest",
    "train",
    "sweep",
    "select",
    "synthesize",
    "evaluate",
    "segment",
    "demo",
    "study",
)
EXCLUDES = [
    ".venv",
    ".git",
    "demo_out",
    "bench_out",
    "study_out",
    "runs",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "*.pth",
    "*.pt",
]


@dataclass(frozen=True)
class Submitted:
    submission_id: str
    name: str
    entrypoint: str


def job_name(stage: str, args: list[str], name: str | None) -> str:
    """``name``, or the stage and its first argument (``sweep-gan``): letters, digits, -."""
    if name is None:
        first = Path(args[0]).stem if args else ""
        name = f"{stage}-{first}" if first and not first.startswith("-") else stage
    clean = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")
    if not clean:
        raise ConfigError(f"--name {name!r}: use letters, digits and -")
    return clean


def submit(
    address: str,
    stage: str,
    args: list[str],
    name: str | None = None,
    gpus: float = 0,
    cpus: float | None = None,
    working_dir: Path = Path("."),
    token: str | None = None,
) -> Submitted:
    """Submit ``dcectl STAGE ARGS`` as a named Ray job.

    Args:
        address: the dashboard/job address (``http://127.0.0.1:8265``).
        stage: one of :data:`STAGES`.
        args: the command's own arguments.
        name: the job's name (default: stage and its first argument).
        gpus, cpus: resources of the job's driver (a GPU driver for ``evaluate``, say).
        working_dir: the checkout to ship (its ``platform/`` is imported).
        token: the cluster's token (default: :func:`auth_token`).

    Raises:
        ConfigError: an unknown stage or a working directory that is not a checkout.
    """
    from ray.job_submission import JobSubmissionClient

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")
    wd = Path(working_dir).resolve()
    if not (wd / "platform" / "dcesynth").is_dir():
        raise ConfigError(f"--working-dir {wd}: not a dcesynth checkout (no platform/dcesynth)")
    jname = job_name(stage, args, name)  # every refusal before the first request
    token = token if token is not None else auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    client = JobSubmissionClient(address, headers=headers)
    submission_id = f"{jname}-{time.strftime('%Y%m%d-%H%M%S')}"
    entrypoint = shlex.join(["python", "-m", "dcesynth.cli.app", stage, *args])
    _with_agent_retry(
        client.submit_job,
        entrypoint=entrypoint,
        submission_id=submission_id,
        runtime_env={
            "working_dir": str(wd),
            "excludes": EXCLUDES,
            "env_vars": {"PYTHONPATH": "platform"},  # the shipped code, not the image's
        },
        metadata={"job_name": jname, "dcesynth_stage": stage},
        entrypoint_num_gpus=gpus or None,
        entrypoint_num_cpus=cpus,
    )
    return Submitted(submission_id, jname, entrypoint)


def _with_agent_retry(call, *args, wait_s: float = 90.0, **kwargs):
    """A head whose Ray just started answers "No available agent to submit job" until its job
    agent is up (seconds): try again for a while instead of failing a fresh cluster's first
    submission."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return call(*args, **kwargs)
        except RuntimeError as e:
            if "No available agent" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{e}\nThe head's job agent did not start within {wait_s:.0f} s. On a machine "
                    "with several Ray instances, start each head with its own "
                    "--dashboard-agent-listen-port (the default, 52365, is taken by the first)."
                ) from None
            time.sleep(2.0)


def list_jobs(address: str, token: str | None = None) -> list[dict]:
    """dcesynth's jobs on a cluster, newest first: id, name, stage, status, start time."""
    from ray.job_submission import JobSubmissionClient

    token = token if token is not None else auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    jobs = JobSubmissionClient(address, headers=headers).list_jobs()
    rows = [
        {
            "submission_id": j.submission_id,
            "name": (j.metadata or {}).get("job_name", ""),
            "stage": (j.metadata or {}).get("dcesynth_stage", ""),
            "status": str(j.status.value if hasattr(j.status, "value") else j.status),
            "start_time": j.start_time,
        }
        for j in jobs
    ]
    return sorted(rows, key=lambda r: r["start_time"] or 0, reverse=True)
