"""Where dcesynth's MLflow runs log and what they record, as plain functions of their inputs
(no MLflow, no Ray imported): the ``tracking:`` config section and the URI it resolves to, keys
MLflow accepts, configs flattened to params, numeric leaves as metrics, the dataset's and
phantom's fingerprints and the versions as tags, the Ray Train rank that decides who logs.
:mod:`dcesynth.tracking` re-exports them."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import numbers
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dcesynth.config import StrictModel

MAX_PARAM_VALUE, MAX_KEY = 6000, 250  # MLflow's limits on a param's value and a key
OFF_ENV = "DCESYNTH_TRACKING"  # "off" (or 0/false/no): no tracking, e.g. in tests and scripts
OFF_VALUES = ("off", "0", "false", "no")
DB_NAME, ARTIFACTS_NAME = "mlflow.db", "mlartifacts"


class TrackingConfig(StrictModel):
    """The ``tracking:`` section of a config (train, segment, study preset)."""

    enabled: bool = Field(True, description="false: log nothing to MLflow")
    uri: str | None = Field(
        None,
        description="MLflow tracking URI (http://127.0.0.1:5000, sqlite:///…); None: "
        "MLFLOW_TRACKING_URI, else sqlite:///<output root>/mlflow.db",
    )
    experiment: str = Field("dcesynth", min_length=1, description="MLflow experiment name")


@dataclass(frozen=True)
class Target:
    """Where a run logs: the tracking URI, the experiment and (for SQLite) the artefact root."""

    uri: str
    experiment: str
    artifacts: str | None


def default_uri(root: Path) -> str:
    """The local store of an output root: ``sqlite:///<root>/mlflow.db``."""
    return f"sqlite:///{Path(root).resolve() / DB_NAME}"


def resolve(
    root: Path | str | None,
    cli_uri: str | None = None,
    settings: TrackingConfig | None = None,
    off: bool = False,
    env: dict | None = None,
) -> Target | None:
    """Where to log, or None when tracking is off.

    Args:
        root: the command's output root (the default store lives there).
        cli_uri: ``--tracking-uri``; wins over everything else.
        settings: the config's ``tracking`` section.
        off: ``--no-tracking``.
        env: the environment (default ``os.environ``).

    Raises:
        ValueError: no URI given anywhere and no output root to put the default store in.
    """
    env = os.environ if env is None else env
    settings = settings or TrackingConfig()
    if off or not settings.enabled or env.get(OFF_ENV, "").strip().lower() in OFF_VALUES:
        return None
    uri = cli_uri or settings.uri or env.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        if root is None:
            raise ValueError("tracking: no --tracking-uri, `tracking.uri` or output root")
        uri = default_uri(Path(root))
    artifacts = None
    if uri.startswith("sqlite:///"):  # artefacts beside the database, never in the cwd
        db = Path(uri[len("sqlite:///") :])
        artifacts = (db.parent / ARTIFACTS_NAME).as_uri()
    return Target(uri, settings.experiment, artifacts)


_BAD = re.compile(r"[^A-Za-z0-9_\-./ ]")


def clean_key(key: str) -> str:
    """A key MLflow accepts: letters, digits, ``_-./`` and spaces; others become ``_``."""
    return _BAD.sub("_", str(key))[:MAX_KEY]


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """A (nested) config → ``{"loss.lambda_fm": "10.0", …}``: dotted keys, values as text cut to
    MLflow's 6000 characters. Pydantic models are dumped as JSON values first."""
    if isinstance(config, BaseModel):
        config = config.model_dump(mode="json")
    out: dict[str, str] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(config, list | tuple):
        text = json.dumps(list(config), default=str)
    else:
        text = str(config)
    if len(text) > MAX_PARAM_VALUE:
        text = text[: MAX_PARAM_VALUE - 1] + "…"
    return {clean_key(prefix or "value"): text}


def numeric(values: dict, prefix: str = "") -> dict[str, float]:
    """The finite numeric leaves of a (nested) dict as metrics, dotted keys (lists skipped)."""
    out: dict[str, float] = {}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(numeric(v, key))
        elif isinstance(v, numbers.Real) and math.isfinite(float(v)):
            out[clean_key(key)] = float(v)
    return out


def fingerprints(dataset: Path | str | None = None, phantom: Path | str | None = None) -> dict:
    """Tags from what the folders record: ingest's ``manifest.json`` and the phantom's
    ``phantom.json`` fingerprints (absent where there is no such file)."""
    out = {}
    for tag, folder, name in (
        ("dataset_fingerprint", dataset, "manifest.json"),
        ("phantom_fingerprint", phantom, "phantom.json"),
    ):
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            fp = json.loads((Path(folder) / name).read_text()).get("fingerprint")
            if fp:
                out[tag] = str(fp)
    return out


@functools.cache  # once per process: a sweep's every trial asks
def version_tags() -> dict[str, str]:
    """dcesynth and Ray versions, and the git commit when the package is in a git checkout."""
    from importlib.metadata import PackageNotFoundError, version

    import dcesynth

    tags = {"dcesynth.version": dcesynth.__version__}
    with contextlib.suppress(PackageNotFoundError):
        tags["ray.version"] = version("ray")  # the installed Ray, without importing it
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["git", "-C", str(Path(dcesynth.__file__).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if r.returncode == 0 and r.stdout.strip():
            tags["mlflow.source.git.commit"] = r.stdout.strip()
    return tags


def world_rank() -> int:
    """This process's Ray Train rank; 0 outside a Ray Train worker (a driver, a Tune trial)."""
    import sys

    if "ray.train" not in sys.modules:  # never import Ray just to ask
        return 0
    try:
        return int(sys.modules["ray.train"].get_context().get_world_rank())
    except Exception:  # not in a Train worker
        return 0
