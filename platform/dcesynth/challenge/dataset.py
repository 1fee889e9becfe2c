"""Training data in the challenge's contract: a prepared challenge folder → a dcesynth dataset.

``dcectl challenge prepare`` writes one z-scored 2D pre/target pair per case; this module turns
that folder into the prepared-dataset layout ``dcectl train`` and ``dcectl sweep`` read
(``manifest.json``, ``cases.parquet``, ``slices/<split>/*.parquet``), so our generators learn the
challenge's own task: its target phase (the peak-enhancement phase, stored as post phase 1), its
orientation (``rot90`` already applied) and its intensity scale.

**Intensities.** Our slices are uint8. The challenge's are z-scored floats whose *absolute*
level matters (the target's enhancement is measured against the input's scale), so a per-slice
min-max — what the entry point must do for a model trained on our own min-max data — would throw
away exactly what the generator should learn. Here one fixed window [lo, hi] of z-scores maps
affinely to [0, 255] for every slice and both phases (``normalisation: window`` in the manifest
and, through ``dcectl export``, in the model file); the entry point maps back with the same
window, so a prediction is on the challenge's scale. The window defaults to the training
split's range (min and max over its pre and target voxels: val/test never set it); values
outside are clipped. At the phantom's range (≈ 9 sd) a uint8 step is 0.035 sd, a quantisation
MSE of ~1e-4 against the identity baseline's ~0.8.

**Geometry.** Slices are padded/resized to one square (``image_size``, default the largest side
rounded up to a multiple of 16) with :class:`~dcesynth.data.ingest.transforms.SquareResize`
(spacing (1, 1), as the challenge writes it), as the entry point resizes at prediction time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

# the entry point's own mapping: training slices and prediction inputs are mapped by one function
from dcesynth.challenge.entrypoint import to_model_scale

log = logging.getLogger(__name__)

FORMAT = "dcesynth.challenge.prepare/"
SPLITS = ("train", "val", "test")


def default_size(shapes: list[tuple[int, int]], multiple: int = 16) -> int:
    """The largest side among ``shapes``, rounded up to a multiple of ``multiple``."""
    side = max(max(s) for s in shapes)
    return int(-(-side // multiple) * multiple)


def train_window(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """[min, max] over the training pairs' pre and target voxels.

    Raises:
        ValueError: no pairs, or a constant range (nothing to map).
    """
    if not pairs:
        raise ValueError("no training case to set the intensity window from; pass --window")
    lo = min(min(float(a.min()), float(b.min())) for a, b in pairs)
    hi = max(max(float(a.max()), float(b.max())) for a, b in pairs)
    if not hi > lo:
        raise ValueError(f"training slices are constant ({lo}); pass --window LO HI")
    return lo, hi


def box_of(mask: np.ndarray) -> list[int] | None:
    """Inclusive (y0, y1, x0, x1) of ``mask`` > 0, or None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return [int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())]


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    if not path.is_file():
        raise FileNotFoundError(f"{path}: listed in the challenge manifest but missing")
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2D slice, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: holds NaN or inf values")
    return arr


def load_prepared(folder: Path) -> dict:
    """The challenge folder's manifest, checked.

    Raises:
        FileNotFoundError / ValueError: not a ``dcectl challenge prepare`` folder.
    """
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no manifest.json (run `dcectl challenge prepare`)")
    manifest = json.loads(path.read_text())
    if not str(manifest.get("format", "")).startswith(FORMAT):
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}N")
    return manifest


def build(
    folder: Path,
    out: Path,
    image_size: int | None = None,
    window: tuple[float, float] | None = None,
    target_shard_mb: int = 256,
) -> dict:
    """Write the dataset ``out`` from the challenge folder ``folder``; returns its manifest.

    Args:
        folder: a ``dcectl challenge prepare`` output (manifest.json, mha/…).
        out: the dataset folder (written under a temporary sibling, renamed when complete; an
            existing dataset there is replaced only then).
        image_size: the square side; default the largest slice side rounded up to 16.
        window: z-score [lo, hi] mapped to [0, 255]; default the training split's range.
        target_shard_mb: Parquet shard size.

    Raises:
        FileNotFoundError / ValueError: a bad folder, a missing or non-2D file, no training
            case, or a window with hi <= lo.
    """
    from dcesynth.config import atomic_write_text
    from dcesynth.data.ingest.shards import ShardWriter, slice_schema, slices_table
    from dcesynth.data.ingest.transforms import SquareResize

    folder, out = Path(folder), Path(out)
    prepared = load_prepared(folder)
    splits = prepared.get("splits", {})
    cases = []
    for c in prepared["cases"]:
        pid, split = c["patient_id"], splits.get(c["patient_id"])
        if split not in SPLITS:
            raise ValueError(f"{folder}/manifest.json: case {pid} has split {split!r}; "
                             f"expected one of {list(SPLITS)}")  # fmt: skip
        files = {k: folder / c["files"][k] for k in ("input", "ground_truth", "mask")}
        pre, post, mask = (_read(files[k]) for k in ("input", "ground_truth", "mask"))
        if not pre.shape == post.shape == mask.shape:
            raise ValueError(f"{folder}: case {pid}: input {pre.shape}, ground truth "
                             f"{post.shape} and mask {mask.shape} differ")  # fmt: skip
        cases.append((c, split, pre, post, mask))
    if not cases:
        raise ValueError(f"{folder}: the manifest lists no prepared case")
    if window is None:
        window = train_window([(p, q) for _, s, p, q, _ in cases if s == "train"])
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise ValueError(f"window: hi ({hi}) must be above lo ({lo})")
    size = int(image_size or default_size([pre.shape for _, _, pre, _, _ in cases]))
    if size < 16:
        raise ValueError(f"image_size: {size} is below 16")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}.", dir=out.parent))
    try:
        schema = slice_schema(size, 1)
        rows, counts = [], {s: 0 for s in SPLITS}
        writers = {s: ShardWriter(tmp / "slices" / s, schema, target_shard_mb) for s in SPLITS}
        digest = hashlib.sha256(json.dumps([lo, hi, size]).encode())
        for c, split, pre, post, mask in cases:
            rs = SquareResize.plan(pre.shape[0], pre.shape[1], 1.0, 1.0, size)
            u8 = np.stack([to_model_scale(pre, lo, hi), to_model_scale(post, lo, hi)])
            img = rs.apply(u8[:, None])
            m = rs.apply((mask > 0).astype(np.uint8)[None, None], binary=True)[0, 0]
            box = box_of(m)
            s = {
                "slice_index": [int(c["slice_index"])],
                "pre": img[0:1, 0],
                "post": img[1:2],
                "mask": m[None],
                "tumour": [box is not None],
                "box": [box],
            }
            writers[split].write(slices_table(c["patient_id"], s, schema))
            counts[split] += 1
            for a in (img, m):
                digest.update(a.tobytes())
            rows.append({"case_id": c["patient_id"], "split": split, "n_slices": 1,
                         "n_tumour_slices": int(box is not None), "pre_phase": c["pre_phase"],
                         "target_phase": c["target_phase"], "shape": list(pre.shape)})  # fmt: skip
        for w in writers.values():
            w.close()
        present = {s: n for s, n in counts.items() if n}
        for s in SPLITS:
            if not counts[s]:
                shutil.rmtree(tmp / "slices" / s, ignore_errors=True)
        _write_cases(tmp / "cases.parquet", rows)
        manifest = {
            "kind": "dcesynth-dataset",
            "version": 1,
            "fingerprint": digest.hexdigest()[:16],
            "source_format": "mama-synth-challenge",
            "source_note": f"{folder.resolve()}: one 2D slice per case, z-scored "
            f"({prepared['zscore']['source']}); post phase 1 = the challenge target "
            "(peak enhancement inside the tumour, per case)",
            "options": {
                "normalisation": "window",
                "window": [lo, hi],
                "percentiles": [0.5, 99.5],
                "zscore_clip": 3.0,
                "image_size": size,
                "phases": [1],
                "challenge": {"folder": str(folder.resolve()), "zscore": prepared["zscore"]},
            },
            "split_seed": prepared.get("split_seed"),
            "image_size": size,
            "phases": [0, 1],
            "counts": {
                "cases": present,
                "slices": present,
                "tumour_slices": {
                    s: sum(r["n_tumour_slices"] for r in rows if r["split"] == s) for s in present
                },
                "skipped": len(prepared.get("skipped", [])),
            },
        }
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1))
        if out.exists():
            old = out.with_name(f".old-{out.name}")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("challenge dataset %s: %s, window [%.3f, %.3f], %d²", out, present, lo, hi, size)
    return manifest


def _write_cases(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
