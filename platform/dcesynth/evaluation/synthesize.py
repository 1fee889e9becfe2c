"""Synthetic DCE volumes: every axial slice of every case of a split through the generator.

For each case the prepared pre-contrast volume (``volumes/<case>_0000.nii.gz``, native
resolution) is resized slice by slice exactly as ingest resized the training slices, translated
in batches, resized back (padding cropped) and stacked into volumes with the prepared volume's
affine — through :func:`dcesynth.inference.engine.translate`, the Ray Data path that
``dcectl predict`` uses too (cases are read by Ray Data tasks, slices stream into generator
actors, the driver reassembles and writes each case). Output in ``<run>/synthetic/<split>/``:

* ``<case>_000p.nii.gz`` — synthetic post phase p (uint8, the prepared dataset's scale);
* ``<case>_sub000p.nii.gz`` — synthetic subtraction: synthetic post p − real pre, negatives 0;
* ``synthesis.json`` — run, checkpoint, cases and the files.

The folder is built under a temporary name and renamed when complete, so an interrupted
synthesis never looks finished.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation.runs import Run


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


@dataclass(frozen=True)
class SplitSource:
    """The prepared pre-contrast volumes of a split's cases (a ``SliceSource``)."""

    dataset: Path
    rows: tuple[dict, ...]
    size: int
    phases: tuple[int, ...]
    tmp: Path

    def count(self) -> int:
        return len(self.rows)

    def _pre(self, i: int):
        import nibabel as nib

        img = nib.load(self.dataset / "volumes" / f"{self.rows[i]['case_id']}_0000.nii.gz")
        return img, np.asarray(img.dataobj, dtype=np.uint8).transpose(2, 1, 0)  # (z, y, x)

    def load(self, i: int):
        """Slices, plan, and the volume for ``finish`` (read once, in the reading task)."""
        rs = _resize_plan(self.rows[i], self.size)
        img, pre = self._pre(i)
        return rs.apply(pre[:, None])[:, 0], rs, (img.affine, pre)

    def finish(self, i: int, fake: np.ndarray, context=None) -> list[str]:
        import nibabel as nib

        if context is None:
            img, pre = self._pre(i)
            context = (img.affine, pre)
        affine, pre = context
        cid, files = self.rows[i]["case_id"], []
        for k, p in enumerate(self.phases):
            sub = np.clip(fake[k].astype(np.int16) - pre, 0, 255).astype(np.uint8)
            for name, vol in ((f"{cid}_{p:04d}", fake[k]), (f"{cid}_sub{p:04d}", sub)):
                nib.save(
                    nib.Nifti1Image(vol.transpose(2, 1, 0), affine), self.tmp / f"{name}.nii.gz"
                )
                files.append(f"{name}.nii.gz")
        return files


def synthesize(
    run_dir: Path,
    checkpoint: str | int = "best",
    split: str = "test",
    dataset: Path | None = None,
    device: str = "cpu",
    batch: int = 16,
    progress: bool | None = None,
    actors: int = 1,
    address: str | None = None,
) -> SynthesisResult:
    """Translate every slice of every case in ``split`` and write NIfTI volumes.

    Args:
        run_dir: a training run.
        checkpoint: ``best`` (from ``dcectl select``), ``last`` or an epoch.
        split: which cases.
        dataset: the prepared dataset, when it moved since training (default: the run's).
        device: where the generator runs (``cuda``: GPU actors, bf16).
        batch: slices per forward pass.
        actors: generator actors (GPUs with ``cuda``).
        address: a Ray cluster to join (default: the running instance, or a local one).

    Raises:
        ConfigError / ValueError: unknown checkpoint or split, naming what exists; a case that
            cannot be synthesised (the folder is then not published).
    """
    import pyarrow.parquet as pq

    from dcesynth.data.dataset import load_manifest
    from dcesynth.inference.engine import GeneratorSpec, translate
    from dcesynth.training.checkpoints import load_state
    from dcesynth.training.families import family

    run = Run.open(run_dir)
    epoch, ckpt = run.checkpoint(checkpoint)
    ds = Path(dataset or run.cfg.dataset)
    manifest = load_manifest(ds)
    rows = [r for r in pq.read_table(ds / "cases.parquet").to_pylist() if r["split"] == split]
    if not rows:
        splits = sorted(manifest["counts"]["slices"])
        raise ValueError(f"{ds}: no cases in split {split!r}; splits: {splits}")
    state = load_state(Path(ckpt) / "state.pt")
    spec = GeneratorSpec(
        run.cfg.model_dump(mode="json"), {k: v.numpy() for k, v in state["G"].items()}
    )
    out = Path(run_dir) / "synthetic" / split
    tmp = out.with_name(f".tmp-{split}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    source = SplitSource(ds, tuple(rows), int(manifest["image_size"]), run.cfg.phases, tmp)
    t0 = time.perf_counter()
    res = translate(
        spec,
        source,
        device=device,
        batch=batch,
        actors=actors,
        bf16=run.cfg.bf16,
        address=address,
        progress=progress,
        description=f"synthesize {split}",
    )
    if res.failed:
        shutil.rmtree(tmp, ignore_errors=True)
        why = "; ".join(f"{rows[i]['case_id']}: {e}" for i, e in sorted(res.failed.items()))
        raise ValueError(f"synthesize {split}: {len(res.failed)} case(s) failed: {why}")
    files = {rows[i]["case_id"]: res.done[i] for i in range(len(rows))}
    wall = time.perf_counter() - t0
    record = {
        "run": str(Path(run_dir).resolve()),
        "checkpoint_epoch": epoch,
        "checkpoint": str(ckpt),
        "split": split,
        "phases": list(run.cfg.phases),
        "dataset": str(ds),
        "files": files,
        # sampling cost beside the images (a family's cost is part of its result): the wall
        # time of the whole translation, pipeline start-up and volume writes included
        "sampling": {
            "slices": int(res.slices),
            "seconds": round(wall, 3),
            "s_per_slice": wall / max(1, int(res.slices)),
            "nfe_per_slice": family(run.cfg).evaluations_per_slice(run.cfg),
            "device": device,
        },
    }
    atomic_write_text(tmp / "synthesis.json", json.dumps(record, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return SynthesisResult(out, epoch, [r["case_id"] for r in rows], res.slices)
