"""Which checkpoint a run continues from: the newest one that loads, never a damaged one.

A checkpoint can be damaged although every write is atomic: Ray Train copies the worker's
checkpoint into ``checkpoints/epoch_NNN/`` itself, and a full disk or a killed process can cut
that copy short at the final path. Such a checkpoint is *set aside* (renamed
``checkpoints/broken-epoch_NNN``, kept for inspection, no longer matching ``epoch_*``) with a
warning naming it and why it does not load, and the run falls back to the previous one:

* after a run fails (``train`` calls :func:`set_aside_broken`), so that no checkpoint that does
  not load is left looking like one;
* before a resume (:func:`prepare_resume`), which also cuts metrics.jsonl back to the epochs
  of the checkpoint it resumes from (and drops a line a full disk cut short).

Ray Train's own record of reported checkpoints (``checkpoint_manager_snapshot.json``) would
hand the damaged checkpoint back to the loop; it is removed whenever a checkpoint is set aside
or it does not parse, and the resume then goes through the loop's ``resume_dir``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from dcesynth.durable import atomic_write_text, complete_lines
from dcesynth.training.checkpoints import BrokenCheckpointError, UnsafeCheckpointError, load_state

log = logging.getLogger(__name__)

RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train V2's checkpoint bookkeeping
EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoint directories that hold a state file, oldest first."""
    return sorted(p.parent for p in (Path(run_dir) / "checkpoints").glob("epoch_*/state.pt"))


def why_not_loading(ckpt: Path) -> str | None:
    """Why ``ckpt/state.pt`` does not load (None: it loads). Errors of the machine (an
    ``OSError`` such as EIO) propagate: they say nothing about the file."""
    path = Path(ckpt) / "state.pt"
    if not path.is_file():
        return "no state.pt (the copy never finished)"
    try:
        state = load_state(path)
    except (BrokenCheckpointError, UnsafeCheckpointError) as e:
        return str(e)
    if "epoch" not in state:
        return f"{path}: no epoch recorded (not a dcesynth checkpoint)"
    return None


def _set_aside(ckpt: Path, why: str) -> Path:
    dest = ckpt.with_name(f"broken-{ckpt.name}")
    n = 1
    while dest.exists():  # an earlier failure at the same epoch
        n += 1
        dest = ckpt.with_name(f"broken-{ckpt.name}.{n}")
    ckpt.rename(dest)
    log.warning("checkpoint %s does not load (%s): set aside as %s", ckpt, why, dest.name)
    return dest


def _snapshot_ok(run_dir: Path) -> bool:
    path = Path(run_dir) / RAY_SNAPSHOT
    if not path.is_file():
        return True
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def set_aside_broken(run_dir: Path) -> Path | None:
    """Set aside every checkpoint newer than the newest one that loads; returns that one
    (None: no checkpoint loads, or there is none).

    Args:
        run_dir: the run directory.
    """
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints"
    dirs = sorted(
        (p for p in folder.glob("epoch_*") if p.is_dir() and EPOCH_DIR.match(p.name)),
        key=lambda p: int(EPOCH_DIR.match(p.name).group(1)),
    )
    good, moved = None, False
    for ckpt in reversed(dirs):
        why = why_not_loading(ckpt)
        if why is None:
            good = ckpt
            break
        _set_aside(ckpt, why)
        moved = True
    if moved or not _snapshot_ok(run_dir):
        # Ray's bookkeeping may name what was set aside: resume through resume_dir instead
        (run_dir / RAY_SNAPSHOT).unlink(missing_ok=True)
    return good


def prepare_resume(run_dir: Path) -> Path | None:
    """The checkpoint to resume from (the newest that loads; None: start from epoch 1), with
    broken ones set aside and metrics.jsonl cut back to its epoch.

    Args:
        run_dir: the run directory.
    """
    run_dir = Path(run_dir)
    newest = (checkpoint_dirs(run_dir) or [None])[-1]
    good = set_aside_broken(run_dir)
    if good != newest:
        if good is None:
            log.warning("%s: no checkpoint loads; training starts again from epoch 1", run_dir)
        else:
            log.warning("%s: resuming from %s, the newest checkpoint that loads", run_dir, good)
    done = int(EPOCH_DIR.match(good.name).group(1)) if good is not None else 0
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        keep = []
        for ln in complete_lines(metrics):
            try:
                row = json.loads(ln)
            except ValueError:  # a line cut short by a full disk or a kill
                continue
            if row.get("epoch", 0) <= done:
                keep.append(ln)
        text = "".join(ln + "\n" for ln in keep)
        if text != metrics.read_text():
            atomic_write_text(metrics, text)
    return good
