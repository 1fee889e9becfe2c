"""Ray Data: a prepared split streams into torch batches with the right shapes and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcesynth.data.dataset import TrainTransform, decode, describe, model_range_collate, read_split
from dcesynth.data.ingest import IngestConfig, ingest

SIZE = 32


@pytest.fixture(scope="module")
def dataset(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rd") / "ds"
    cfg = IngestConfig(
        image_size=SIZE,
        phases=(1, 2, 3),
        selection="all",
        split={"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
    )
    ingest(phantom_source / "nifti" / "images", out, cfg, progress=False)
    return out


@pytest.mark.parametrize(("phases", "n_out"), [([1], 1), ([1, 2, 3], 3), ([2, 3], 2)])
def test_stream_split_into_torch_batches(dataset: Path, phases: list[int], n_out: int) -> None:
    info = describe(dataset)
    n_train = info["splits"]["train"]["slices"]
    seen = 0
    for b in read_split(dataset, "train", phases=phases, seed=1).iter_torch_batches(batch_size=8):
        bs = b["pre"].shape[0]
        assert b["pre"].shape == (bs, 1, SIZE, SIZE) and b["pre"].dtype == torch.float32
        assert b["post"].shape == (bs, n_out, SIZE, SIZE) and b["post"].dtype == torch.float32
        assert b["mask"].shape == (bs, 1, SIZE, SIZE)
        for k in ("pre", "post"):
            assert b[k].min() >= -1.0 and b[k].max() <= 1.0
        assert set(torch.unique(b["mask"]).tolist()) <= {0.0, 1.0}
        seen += bs
    assert seen == n_train  # every slice of the split, once


def test_values_are_the_stored_bytes_scaled(dataset: Path) -> None:
    table = read_split(dataset, "val", transform=False).take_batch(64, batch_format="pyarrow")
    shapes = {"pre": (SIZE, SIZE), "post": (3, SIZE, SIZE), "mask": (SIZE, SIZE)}
    raw = decode(table, shapes)
    out = read_split(dataset, "val", phases=[2], rotate_p=0.0).take_batch(64, batch_format="numpy")
    np.testing.assert_allclose(out["pre"][:, 0], raw["pre"] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(out["post"][:, 0], raw["post"][:, 1] / 127.5 - 1.0, atol=1e-6)
    assert raw["pre"].dtype == np.uint8 and raw["pre"].max() > 128  # min-max to [0, 255]


def test_rotation_is_shared_seeded_and_about_half() -> None:
    rng = np.random.default_rng(0)
    n = 400
    batch = {
        "case_id": np.array([f"c{i % 7}" for i in range(n)], dtype=object),
        "slice_index": np.arange(n, dtype=np.int32),
        "pre": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
        "post": rng.integers(0, 256, (n, 2, 8, 8), dtype=np.uint8),
        "mask": rng.integers(0, 2, (n, 8, 8), dtype=np.uint8),
    }
    t = TrainTransform([1, 2], [1, 2], rotate_p=0.5, seed=3)
    a, b = t(batch), t(batch)
    np.testing.assert_array_equal(a["rotated"], b["rotated"])  # a function of seed and slices
    assert 0.4 < a["rotated"].mean() < 0.6
    r = a["rotated"]
    expect = np.rot90(batch["pre"][r][:, None] / 127.5 - 1.0, k=1, axes=(2, 3))
    np.testing.assert_allclose(a["pre"][r], expect, atol=1e-6)
    np.testing.assert_array_equal(a["mask"][r][:, 0], np.rot90(batch["mask"][r], 1, axes=(1, 2)))
    np.testing.assert_allclose(a["post"][~r], batch["post"][~r] / 127.5 - 1.0, atol=1e-6)
    c = TrainTransform([1, 2], [1, 2], rotate_p=0.5, seed=4)(batch)
    assert (c["rotated"] != a["rotated"]).any()  # another epoch's seed, other draws


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "holdout"}, "no split 'holdout'"),
        ({"split": "train", "phases": [4]}, "phases [4] not in the dataset"),
        ({"split": "train", "rotate_p": 1.5}, "rotate_p"),
    ],
)
def test_read_split_rejects_bad_requests(dataset: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_split(dataset, **kwargs)


def test_describe(dataset: Path) -> None:
    info = describe(dataset)
    assert sum(s["cases"] for s in info["splits"].values()) == 4
    assert info["phases"] == [0, 1, 2, 3] and info["image_size"] == SIZE
    assert info["slices_per_case"] == {"min": 16, "median": 16.0, "max": 16}
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        describe(dataset / "volumes")


def test_uint8_pipeline_with_collate_equals_float_pipeline(dataset: Path) -> None:
    """scale=False + model_range_collate() gives the same tensors as scaling in map_batches."""
    a = read_split(dataset, "test", rotate_p=0.5, seed=7)
    b = read_split(dataset, "test", rotate_p=0.5, seed=7, scale=False)
    xs = list(a.iter_torch_batches(batch_size=16))
    ys = list(b.iter_torch_batches(batch_size=16, collate_fn=model_range_collate()))
    assert sum(len(x["pre"]) for x in xs) == sum(len(y["pre"]) for y in ys) > 0
    for x, y in zip(xs, ys, strict=True):
        for k in ("pre", "post", "mask"):
            assert y[k].dtype == torch.float32 and y[k].shape == x[k].shape
            torch.testing.assert_close(y[k], x[k], rtol=0, atol=1e-6)
        assert torch.equal(x["rotated"], y["rotated"])  # same seeded rotations
    raw = next(iter(b.iter_batches(batch_size=4, batch_format="numpy")))
    assert raw["pre"].dtype == np.uint8  # what crosses the object store


def test_read_slices_tumour_only_reads_exactly_the_tumour_slices(dataset: Path) -> None:
    """The Parquet filter keeps the flagged slices and nothing else, in the same order."""
    from dcesynth.data.dataset import read_slices

    full, table = read_slices(dataset, "train")
    flagged = np.asarray(table.column("tumour").to_pylist(), bool)
    assert 0 < flagged.sum() < len(flagged)  # the fixture has both kinds
    only, t2 = read_slices(dataset, "train", tumour_only=True)
    assert t2.num_rows == flagged.sum()
    np.testing.assert_array_equal(only["pre"], full["pre"][flagged])
    np.testing.assert_array_equal(only["slice_index"], full["slice_index"][flagged])
