"""A prepared dataset as Ray Data: streaming slices for training, and a description.

``read_split(dataset, "train")`` streams ``slices/train/*.parquet`` and applies the training
transforms in ``map_batches``; each Ray Train worker then iterates its shard with
``iter_torch_batches``. Batches hold ``pre`` (B, 1, H, W), ``post`` (B, P, H, W) and ``mask``
(B, 1, H, W) as float32, images in [-1, 1] — scaled in ``map_batches`` (``scale=True``) or, twice
as fast, by ``collate_fn=model_range_collate()`` on the consuming worker (``scale=False``).
"""

from __future__ import annotations

import json
import os
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def load_manifest(dataset: Path) -> dict:
    path = Path(dataset) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: not a prepared dataset (no manifest.json)")
    return json.loads(path.read_text())


class TrainTransform:
    """uint8 slices → float32 in [-1, 1], phase selection, random 90° rotation (study: p = 0.5).

    Args:
        phases: post phases to return, as numbers from the dataset's manifest (1-based).
        dataset_phases: the post phases stored in the dataset, in order.
        rotate_p: probability of rotating a slice (and its targets and mask) by 90°.
        seed: makes the rotations a function of (seed, the batch's slices), so they do not
            depend on which worker runs a batch; pass ``base_seed + epoch`` for new draws each
            epoch. None draws fresh randomness.
    """

    def __init__(
        self,
        phases: list[int],
        dataset_phases: list[int],
        rotate_p: float = 0.5,
        seed: int | None = None,
    ) -> None:
        missing = [p for p in phases if p not in dataset_phases]
        if missing:
            raise ValueError(f"phases {missing} not in the dataset; it has {dataset_phases}")
        if not 0 <= rotate_p <= 1:
            raise ValueError(f"rotate_p must be in [0, 1], got {rotate_p}")
        self.index = [dataset_phases.index(p) for p in phases]
        self.rotate_p = rotate_p
        self.seed = seed

    def _rng(self, batch: dict[str, np.ndarray]) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        ids = "|".join(
            f"{c}:{i}" for c, i in zip(batch["case_id"], batch["slice_index"], strict=True)
        )
        return np.random.default_rng([self.seed, zlib.crc32(ids.encode())])

    def __call__(self, batch: dict[str, np.ndarray], scale: bool = True) -> dict[str, np.ndarray]:
        """Phase selection and rotation on the uint8 slices; then, if ``scale``, float32."""
        rot = self._rng(batch).random(len(batch["pre"])) < self.rotate_p
        post = batch["post"]
        if self.index != list(range(post.shape[1])):
            post = post[:, self.index]  # fancy indexing: a copy
        pre, mask = batch["pre"][:, None], batch["mask"][:, None]
        if rot.any():  # same rotation for input, targets and mask of a slice
            # views of the (read-only) Arrow buffers until here: copy what is rotated in place
            pre, mask = pre.copy(), mask.copy()
            post = post.copy() if post is batch["post"] else post
            for a in (pre, post, mask):
                a[rot] = np.rot90(a[rot], k=1, axes=(2, 3))
        # Without rotation (validation, and training, which rotates on the device) the arrays
        # stay views: Ray copies them once into its block, no need for a copy before that.
        out = {
            "pre": pre,
            "post": post,
            "mask": mask,
            "slice_index": batch["slice_index"],
            "rotated": rot,
        }
        return to_model_range(out, as_torch=False) if scale else out


def to_model_range(batch: dict, as_torch: bool = True, device: str | None = None) -> dict:
    """uint8 slices → float32: images to [-1, 1], mask to {0, 1}; other entries unchanged.

    For ``iter_torch_batches`` use :func:`model_range_collate` (Ray ≥ 2.47 wants a collate class).
    """
    out = dict(batch)
    for k, offset in (("pre", 1.0), ("post", 1.0), ("mask", 0.0)):
        if as_torch:
            import torch

            # in-memory blocks arrive read-only: torch wants writable memory (copied if not)
            t = torch.as_tensor(np.require(batch[k], requirements="W"), device=device).float()
            out[k] = t.div_(127.5).sub_(offset) if offset else t
        else:
            a = batch[k].astype(np.float32)
            out[k] = a / np.float32(127.5) - np.float32(offset) if offset else a
    if as_torch:
        import torch

        for k in ("slice_index", "rotated"):
            if k in out:
                out[k] = torch.as_tensor(np.asarray(out[k]), device=device)
    return out


def model_range_collate(device: str | None = None):
    """``collate_fn`` for a ``read_split(scale=False)`` dataset: scale on the consuming worker.

    uint8 crosses Ray's object store (4× fewer bytes than float32; measured ~1.6× the slices/s)
    and, with ``device="cuda"``, the host→GPU copy too; the scaling then runs on the GPU.
    """
    from ray.data.collate_fn import NumpyBatchCollateFn

    class ModelRange(NumpyBatchCollateFn):
        def __call__(self, batch: dict[str, np.ndarray]) -> dict:
            return to_model_range(batch, as_torch=True, device=device)

    return ModelRange()


@contextmanager
def _footer_readers(n_files: int):
    """Ray Data ≥ 2.60 lists Parquet files by reading their footers on a pool of actors,
    ``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` (default 32), started afresh for every execution,
    i.e. every epoch, and killed after it. Each actor reads the footers of 10 files at a time
    (``RAY_DATA_PARQUET_FOOTER_BATCH_SIZE``), so a split of a few shards keeps one busy and
    the other 31 only start Python processes: on a small machine that start-up took the CPUs
    the read needed (1.8 s of listing for 2 files). Ask for as many actors as there are
    batches of files; a user's own setting wins. The footers, hence the read's blocks (and
    the rotations drawn per block), are the same whatever the count.

    Read by ``read_parquet`` on the calling process (the indexer is built there), so set only
    around that call.
    """
    key = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
    if key in os.environ:
        yield
        return
    per_actor = int(os.environ.get("RAY_DATA_PARQUET_FOOTER_BATCH_SIZE", 10))
    os.environ[key] = str(min(32, max(1, -(-n_files // per_actor))))
    try:
        yield
    finally:
        os.environ.pop(key, None)


def read_split(
    dataset: Path,
    split: str,
    phases: list[int] | None = None,
    rotate_p: float = 0.5,
    seed: int | None = None,
    transform: bool = True,
    scale: bool = True,
):
    """A ``ray.data.Dataset`` streaming one split of a prepared dataset.

    Args:
        dataset: the prepared dataset directory.
        split: "train", "val", "test" or any split the dataset has.
        phases: post phases to return (default: all stored).
        rotate_p: rotation probability (use 0 for validation and test).
        seed: transform seed (reproducible augmentation).
        transform: False returns the stored rows (images as fixed-size binary; see
            :func:`decode`).
        scale: True: float32 in [-1, 1] straight from ``map_batches``. False: uint8 through the
            pipeline, scaled by ``iter_torch_batches(collate_fn=model_range_collate())`` on the
            consuming worker — twice the throughput, the training loop's choice.

    Raises:
        ValueError: for an unknown split or phase, naming what the dataset has.
    """
    import ray.data

    manifest = load_manifest(dataset)
    splits = sorted(manifest["counts"]["slices"])
    folder = Path(dataset) / "slices" / split
    if split not in splits or not folder.is_dir():
        raise ValueError(f"{dataset}: no split {split!r}; it has {splits}")
    with _footer_readers(sum(1 for _ in folder.glob("*.parquet"))):
        ds = ray.data.read_parquet(str(folder)).select_columns(
            ["case_id", "slice_index", "pre", "post", "mask"]
        )
    if not transform:
        return ds
    stored = list(manifest["phases"][1:])
    fn = TrainTransform(phases or stored, stored, rotate_p, seed)  # validates before any reading
    size = int(manifest["image_size"])
    shapes = {"pre": (size, size), "post": (len(stored), size, size), "mask": (size, size)}
    # A plain function (not a class): stateless tasks, no actor pool to size or restart. Arrow
    # batches in, so that the binary image columns decode without a copy.
    return ds.map_batches(
        _apply,
        fn_kwargs={"transform": fn, "shapes": shapes, "scale": scale},
        batch_format="pyarrow",
    )


def read_slices(
    dataset: Path,
    split: str,
    limit: int | None = None,
    seed: int | None = None,
    tumour_only: bool = False,
) -> tuple[dict[str, np.ndarray], object]:
    """A split's slices without Ray (pyarrow): small reads on the driver, where starting a Ray
    Data pipeline would cost seconds. ``limit`` keeps the first slices in file order, or with a
    ``seed`` a seeded subset kept in file order; ``tumour_only`` reads only the slices flagged
    as holding tumour (a Parquet filter: the others are never decoded).

    Returns:
        The decoded arrays (uint8 ``pre`` (N, S, S), ``post`` (N, P, S, S) of the stored
        phases, ``mask``; ``case_id``, ``slice_index``) and the Arrow table they view.

    Raises:
        ValueError: naming the split and the splits the dataset has.
    """
    import pyarrow.parquet as pq

    manifest = load_manifest(dataset)
    folder = Path(dataset) / "slices" / split
    if split not in manifest["counts"]["slices"] or not folder.is_dir():
        raise ValueError(
            f"{dataset}: no split {split!r}; it has {sorted(manifest['counts']['slices'])}"
        )
    table = pq.read_table(folder, filters=[("tumour", "==", True)] if tumour_only else None)
    n = table.num_rows
    if n == 0:
        raise ValueError(
            f"{dataset}: split {split!r} has no {'tumour ' if tumour_only else ''}slices"
        )
    if limit is not None and n > limit:
        if seed is None:
            table = table.slice(0, limit)
        else:
            table = table.take(np.sort(np.random.default_rng(seed).choice(n, limit, replace=False)))
    size = int(manifest["image_size"])
    stored = len(manifest["phases"]) - 1
    shapes = {"pre": (size, size), "post": (stored, size, size), "mask": (size, size)}
    return decode(table, shapes), table


def decode(table, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """An Arrow batch of slice rows → numpy arrays (uint8 images as views of the buffers)."""
    from dcesynth.data.ingest.shards import images

    out = {k: images(table, k, shape) for k, shape in shapes.items()}
    out["case_id"] = np.asarray(table.column("case_id").to_pylist(), dtype=object)
    out["slice_index"] = table.column("slice_index").to_numpy()
    return out


def _apply(table, transform: TrainTransform, shapes: dict, scale: bool) -> dict[str, np.ndarray]:
    return transform(decode(table, shapes), scale=scale)


def describe(dataset: Path) -> dict:
    """Counts per split, slices per case, phases, image size and the manifest."""
    import pyarrow.parquet as pq

    manifest = load_manifest(dataset)
    cases = pq.read_table(Path(dataset) / "cases.parquet").to_pylist()
    per_split: dict[str, dict] = {}
    for r in cases:
        s = per_split.setdefault(r["split"], {"cases": 0, "slices": 0, "tumour_slices": 0})
        s["cases"] += 1
        s["slices"] += r["n_slices"]
        s["tumour_slices"] += r["n_tumour_slices"]
    n = np.array([r["n_slices"] for r in cases])
    return {
        "splits": per_split,
        "slices_per_case": {
            "min": int(n.min()),
            "median": float(np.median(n)),
            "max": int(n.max()),
        },
        "phases": manifest["phases"],
        "image_size": manifest["image_size"],
        "skipped": manifest["counts"]["skipped"],
        "manifest": manifest,
    }
