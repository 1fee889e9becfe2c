"""Synthetic DCE volumes: every axial slice of every case of a split through the generator.

For each case the prepared pre-contrast volume (``volumes/<case>_0000.nii.gz``, native
resolution) is resized slice by slice exactly as ingest resized the training slices, translated
in batches, resized back (padding cropped) and stacked into volumes with the prepared volume's
affine. Output in ``<run>/synthetic/<split>/``:

* ``<case>_000p.nii.gz`` — synthetic post phase p (uint8, the prepared dataset's scale);
* ``<case>_sub000p.nii.gz`` — synthetic subtraction: synthetic post p − real pre, negatives 0;
* ``synthesis.json`` — run, checkpoint, cases and the files.

One case is in memory at a time; the folder is built under a temporary name and renamed when
complete, so an interrupted synthesis never looks finished.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation.runs import Run, generate
from dcesynth.progress import progress_bar


@dataclass
class SynthesisResult:
    out: Path
    epoch: int
    cases: list[str]
    slices: int


def _resize_plan(row: dict, size: int):
    from dcesynth.data.ingest.transforms import SquareResize

    rs = SquareResize.plan(
        row["shape"][1], row["shape"][2], row["spacing"][1], row["spacing"][0], size
    )
    stored = [rs.scale_y, rs.scale_x, rs.pad_y, rs.pad_x, rs.out_h, rs.out_w]
    if not np.allclose(stored, row["resize"]):
        raise ValueError(f"case {row['case_id']}: resize plan {stored} ≠ ingest's {row['resize']}")
    return rs


def synthesize(
    run_dir: Path,
    checkpoint: str | int = "best",
    split: str = "test",
    dataset: Path | None = None,
    device: str = "cpu",
    batch: int = 16,
    progress: bool | None = None,
) -> SynthesisResult:
    """Translate every slice of every case in ``split`` and write NIfTI volumes.

    Args:
        run_dir: a training run.
        checkpoint: ``best`` (from ``dcectl select``), ``last`` or an epoch.
        split: which cases.
        dataset: the prepared dataset, when it moved since training (default: the run's).
        device: where the generator runs.
        batch: slices per forward pass.

    Raises:
        ConfigError / ValueError: unknown checkpoint or split, naming what exists.
    """
    import nibabel as nib
    import pyarrow.parquet as pq

    from dcesynth.data.dataset import load_manifest

    run = Run.open(run_dir)
    epoch, ckpt = run.checkpoint(checkpoint)
    ds = Path(dataset or run.cfg.dataset)
    manifest = load_manifest(ds)
    rows = [r for r in pq.read_table(ds / "cases.parquet").to_pylist() if r["split"] == split]
    if not rows:
        splits = sorted(manifest["counts"]["slices"])
        raise ValueError(f"{ds}: no cases in split {split!r}; splits: {splits}")
    size = int(manifest["image_size"])
    G = run.generator(ckpt, device)
    out = Path(run_dir) / "synthetic" / split
    tmp = out.with_name(f".tmp-{split}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files, total = {}, sum(r["shape"][0] for r in rows)
    with progress_bar(total, f"synthesize {split}", progress) as advance:
        for r in rows:
            cid = r["case_id"]
            img = nib.load(ds / "volumes" / f"{cid}_0000.nii.gz")
            pre = np.asarray(img.dataobj, dtype=np.uint8).transpose(2, 1, 0)  # (z, y, x)
            rs = _resize_plan(r, size)
            fake = np.empty((len(run.cfg.phases), *pre.shape), np.uint8)
            for z0 in range(0, len(pre), batch):  # stream: one batch of slices at a time
                sq = rs.apply(pre[z0 : z0 + batch, None])[:, 0]
                g = generate(G, sq, run.cfg, device, batch)  # (b, P, S, S) on [0, 255]
                fake[:, z0 : z0 + batch] = rs.invert(g).transpose(1, 0, 2, 3)
                advance(len(sq))
            files[cid] = []
            for i, p in enumerate(run.cfg.phases):
                sub = np.clip(fake[i].astype(np.int16) - pre, 0, 255).astype(np.uint8)
                for name, vol in ((f"{cid}_{p:04d}", fake[i]), (f"{cid}_sub{p:04d}", sub)):
                    nii = nib.Nifti1Image(vol.transpose(2, 1, 0), img.affine)
                    nib.save(nii, tmp / f"{name}.nii.gz")
                    files[cid].append(f"{name}.nii.gz")
    record = {
        "run": str(Path(run_dir).resolve()),
        "checkpoint_epoch": epoch,
        "checkpoint": str(ckpt),
        "split": split,
        "phases": list(run.cfg.phases),
        "dataset": str(ds),
        "files": files,
    }
    atomic_write_text(tmp / "synthesis.json", json.dumps(record, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return SynthesisResult(out, epoch, [r["case_id"] for r in rows], total)
