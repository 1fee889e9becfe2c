"""The state of a segmentation study, read from its folder (running or finished)."""

from __future__ import annotations

import json
from pathlib import Path

from dcesynth.config import ConfigError


def _fold_state(folds: Path, name: str, k: int) -> str:
    if (folds / f"{name}_fold{k}.json").is_file():
        return "done"
    starts = folds / f"{name}_fold{k}.starts.jsonl"
    if starts.is_file():
        n = len(starts.read_text().splitlines())
        return f"started ×{n}"
    return "waiting"


def study_status(folder: Path) -> dict:
    """Counts and per-set states of a study folder.

    Raises:
        ConfigError: ``folder`` is not a study (no ``study.json``).
    """
    folder = Path(folder)
    rec = folder / "study.json"
    if not rec.is_file():
        raise ConfigError(f"{folder}: not a segmentation study (no study.json)")
    study = json.loads(rec.read_text())
    cases = list(study["cases"])
    prepared = sum((folder / "prepared" / c / "case.json").is_file() for c in cases)
    failures = {}
    tasks = folder / "results" / "tasks.json"
    if tasks.is_file():
        failures = json.loads(tasks.read_text()).get("failures", {})
    cells = study["cells"]
    sets, n_done, n_folds, n_pred, n_pred_done = [], 0, 0, 0, 0
    for name, s in sorted(study["sets"].items()):
        n = len(s["splits"])
        states = [_fold_state(folder / "folds", name, k) for k in range(n)]
        for k in range(n):
            if states[k] != "done" and f"set {name} fold {k}" in failures:
                states[k] = "failed"
        domains = sorted({d for _, t, d in cells if t == name})
        preds = []
        for d in domains:
            ok = (folder / "predictions" / f"{name}_{d}" / "prediction.json").is_file()
            preds.append(
                f"{d}: " + ("done" if ok else "failed" if f"{name}_{d}" in failures else "waiting")
            )
            n_pred_done += ok
        n_pred += len(domains)
        n_done += states.count("done")
        n_folds += n
        plan = folder / "nnunet" / "preprocessed" / f"Dataset{s['dataset_id']:03d}_set{name}"
        sets.append(
            {
                "set": name,
                "plan": "done" if (plan / "dcesynth_plan.json").is_file() else "waiting",
                "folds": ", ".join(f"{k}: {st}" for k, st in enumerate(states)),
                "predictions": "; ".join(preds),
            }
        )
    table = folder / "results" / "table3.md"
    return {
        "name": folder.name,
        "cases": len(cases),
        "prepared": prepared,
        "folds_done": n_done,
        "folds_total": n_folds,
        "predictions_done": n_pred_done,
        "predictions_total": n_pred,
        "sets": sets,
        "failures": failures,
        "results": table.is_file(),
        "table3": table.read_text() if table.is_file() else "",
    }
