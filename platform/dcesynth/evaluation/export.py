"""``dcectl export RUN``: a run's chosen generator as one self-describing model artefact.

What prediction for a new patient needs, and what a reader of the file must be able to check,
taken from the run (config, checkpoint), its prepared dataset (slice size, normalisation,
fingerprint) and its evaluation report (Table 1, the selection). The file format and its
checksums: :mod:`dcesynth.inference.artifact`.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import dcesynth
from dcesynth.config import ConfigError
from dcesynth.evaluation.runs import SELECTION, Run
from dcesynth.inference.artifact import FORMAT, FORMAT_VERSION, save_artifact

RESIZE = (
    "square, physical aspect ratio kept, zero padding; bilinear with antialiasing "
    "(SquareResize), inverted on output"
)
ORIENTATION = "canonical axial: slices inferior→superior, anterior up, patient left on the right"


WINDOW_SCOPE = (
    "challenge z-scores in the fixed window, to uint8 [0, 255]; the generator sees x / 127.5 - 1"
)


def _selection(run: Run, epoch: int) -> dict | None:
    """The selection record and this epoch's Table 1 row, when ``dcectl select`` ran."""
    sel_path = run.path / SELECTION
    if not sel_path.is_file():
        return None
    sel = json.loads(sel_path.read_text())
    row = None
    table = run.path / "report" / "table1.csv"
    if table.is_file():
        with table.open() as f:
            # rows are named "epoch N" or "epoch N (selected)"; the first row is the baseline
            name = f"epoch {epoch}"
            row = next(
                (r for r in csv.DictReader(f) if r["checkpoint"].split(" (")[0] == name), None
            )
    same = sel.get("same", {}).get(str(epoch))
    return {
        "selected_epoch": sel.get("selected_epoch"),
        "exported_is_selected": sel.get("selected_epoch") == epoch,
        "same": same,
        "same_metrics": sel.get("same_metrics"),
        "not_computed": sel.get("not_computed"),
        "pairs": sel.get("pairs"),
        "split": "val",
        "table1_row": row,
        "metrics": (sel.get("metrics") or {}).get(str(epoch)),
        "baseline": sel.get("baseline"),
    }


def export_run(
    run_dir: Path, out: Path, checkpoint: str | int = "best", dataset: Path | None = None
) -> dict:
    """Write ``out``: the checkpoint's generator and its description. Returns the description.

    Raises:
        ConfigError: no such run, checkpoint or dataset (naming what exists / ``--dataset``).
    """
    from dcesynth.data.dataset import load_manifest
    from dcesynth.training.checkpoints import load_state
    from dcesynth.training.families import family

    run = Run.open(run_dir)
    epoch, ckpt = run.checkpoint(checkpoint)
    ds = Path(dataset or run.cfg.dataset or "")
    try:
        manifest = load_manifest(ds)
    except FileNotFoundError:
        raise ConfigError(
            f"{run.path}: its prepared dataset {ds} is not there (it says how inputs are "
            "normalised and resized); pass --dataset where it is now"
        ) from None
    state = load_state(Path(ckpt) / "state.pt")
    weights = {k: v.detach().cpu().contiguous().numpy() for k, v in state["G"].items()}
    opts = manifest["options"]
    cfg = run.cfg
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "platform_version": dcesynth.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": {"name": cfg.name, "epoch": epoch, "checkpoint": str(checkpoint)},
        "phases": list(cfg.phases),
        "train_config": cfg.model_dump(mode="json"),
        "generator": {
            "family": cfg.family,
            **family(cfg).describe(cfg),  # architecture, channels, sampling cost
            "parameters": int(sum(w.size for w in weights.values())),
        },
        "input": {
            "modality": "pre-contrast T1-weighted fat-suppressed breast MRI, one 3-D volume",
            "image_size": int(manifest["image_size"]),
            "normalisation": {
                "method": opts["normalisation"],
                "percentiles": list(opts["percentiles"]),
                "zscore_clip": float(opts["zscore_clip"]),
                "scope": "per volume, to uint8 [0, 255]; the generator sees x / 127.5 - 1",
                # a challenge-prepared dataset: one fixed z-score window for every slice
                **(
                    {"window": list(opts["window"]), "scope": WINDOW_SCOPE}
                    if opts["normalisation"] == "window"
                    else {}
                ),
            },
            "resize": RESIZE,
            "orientation": ORIENTATION,
        },
        "output": {
            "scale": "uint8 [0, 255] of the normalised pre-contrast scale, not scanner units",
            "subtraction": "synthetic post - normalised pre, negatives set to 0",
        },
        "selection": _selection(run, epoch),
        "training_data": {
            "fingerprint": manifest["fingerprint"],
            "dataset_version": manifest.get("version"),
            "source_format": manifest.get("source_format"),
            "cases": manifest["counts"]["cases"],
            "phases": manifest["phases"],
        },
    }
    written = save_artifact(Path(out), description, weights)
    _track_export(run, Path(out), written)
    return written


def _track_export(run: Run, out: Path, desc: dict) -> None:
    """`dcectl export` in MLflow: an ``export`` run with the model file as its artefact, in
    the store of the run folder's parent, as `dcectl train` logs (docs/tracking.md; off with
    the run's ``tracking.enabled: false`` or DCESYNTH_TRACKING=off). Never raises."""
    from dcesynth.tracking import track

    params = {"run": desc["run"], "phases": desc["phases"], "family": desc["generator"]["family"]}
    tags = {
        "dataset_fingerprint": desc["training_data"]["fingerprint"],
        "weights_sha256": desc["checksums"]["weights_sha256"],
        "run_dir": str(run.path.resolve()),
    }
    root = run.path.resolve().parent
    with track("export", run.path.name, params, root, settings=run.cfg.tracking, tags=tags) as t:
        t.artifact(out, "model")
