"""The state of a segmentation study, read from its folder (running or finished)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dcesynth.config import ConfigError

_EPOCH = re.compile(r": Epoch (\d+)\s*$", re.M)
_DICE = re.compile(r": Pseudo dice \[(?:np\.float32\()?([-\d.e]+)")


def fold_epoch(study: Path, dataset_id: int, name: str, k: int) -> tuple[int, float | None] | None:
    """A running nnU-Net fold's epoch (0-based) and last validation pseudo-Dice, read from
    nnU-Net's own training logs (a resumed fold starts a new log: the newest epoch wins).

    Args:
        study: the study folder.
        dataset_id: the set's nnU-Net dataset id.
        name: the set (``A`` …).
        k: the fold.
    """
    results = Path(study) / "nnunet" / "results" / f"Dataset{dataset_id:03d}_set{name}"
    epoch, dice = None, None
    for f in sorted(results.glob(f"nnUNetTrainer__*/fold_{k}/training_log_*.txt")):
        text = f.read_text(errors="replace")  # nnU-Net may be writing it: read what is there
        if (e := [int(x) for x in _EPOCH.findall(text)]) and (epoch is None or max(e) >= epoch):
            epoch = max(e)
            d = _DICE.findall(text)
            dice = float(d[-1]) if d else dice
    return None if epoch is None else (epoch, dice)


def _fold_state(study: Path, s: dict, name: str, k: int, epochs: int | None) -> str:
    folds = study / "folds"
    if (folds / f"{name}_fold{k}.json").is_file():
        return "done"
    starts = folds / f"{name}_fold{k}.starts.jsonl"
    if starts.is_file():
        n = len(starts.read_text().splitlines())
        state = f"started ×{n}"
        if (at := fold_epoch(study, s["dataset_id"], name, k)) is not None:
            e, dice = at
            state += f", epoch {e + 1}" + (f"/{epochs}" if epochs else "")
            state += f" (pseudo-Dice {dice:.2f})" if dice is not None else ""
        return state
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
    sets, running, n_done, n_folds, n_pred, n_pred_done = [], [], 0, 0, 0, 0
    for name, s in sorted(study["sets"].items()):
        n = len(s["splits"])
        epochs = study.get("nnunet", {}).get("epochs")
        states = [_fold_state(folder, s, name, k, epochs) for k in range(n)]
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
        running += [
            f"{name}/{k} {st.split(', ', 1)[1]}" for k, st in enumerate(states) if ", epoch" in st
        ]
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
        "running": running,  # "A/0 epoch 7/60 (pseudo-Dice 0.00)" per fold in training
        "predictions_done": n_pred_done,
        "predictions_total": n_pred,
        "sets": sets,
        "failures": failures,
        "results": table.is_file(),
        "table3": table.read_text() if table.is_file() else "",
    }
