"""What a sweep folder says about its trials, finished or running (``dcectl sweep status``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml


def sweep_status(sweep_dir: Path) -> dict:
    """{"name", "finished", "trials": [{trial, epochs, anchored_same, status, params…}]}.

    Raises:
        ValueError: when ``sweep_dir`` is not a sweep folder.
    """
    sweep_dir = Path(sweep_dir)
    space_file = sweep_dir / "space.yaml"
    if not space_file.is_file():
        raise ValueError(f"{sweep_dir}: not a sweep folder (no space.yaml)")
    space = yaml.safe_load(space_file.read_text())
    results = sweep_dir / "sweep_results.csv"
    if results.is_file():
        rows = list(csv.DictReader(results.open()))
        sel = json.loads((sweep_dir / "selection.json").read_text())
        return {"name": space["name"], "finished": True, "trials": rows, "best": sel.get("best")}
    rows = []
    for starts in sorted((sweep_dir / "runs").glob("*.starts.jsonl")):
        trial = starts.name.split(".")[0]
        first = json.loads(starts.read_text().splitlines()[0])
        metrics_file = sweep_dir / "runs" / trial / "metrics.jsonl"
        lines = metrics_file.read_text().splitlines() if metrics_file.is_file() else []
        last = json.loads(lines[-1]) if lines else {}
        rows.append(
            {
                "trial": trial,
                "status": "running or interrupted",
                "epochs": last.get("epoch", 0),
                "anchored_same_last": last.get("anchored_same", math.nan),
                "starts": len(starts.read_text().splitlines()),
                **{k: json.dumps(v) for k, v in first["params"].items()},
            }
        )
    return {"name": space["name"], "finished": False, "trials": rows, "best": None}
