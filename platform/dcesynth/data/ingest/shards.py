"""Slice shards: Parquet files of uint8 images as fixed-size binary columns.

Each image is one Parquet FIXED_LEN_BYTE_ARRAY value: reading is a memcpy and decoding a
zero-copy ``np.frombuffer(...).reshape(shape)`` (:func:`images`). We measured Arrow's canonical
``fixed_shape_tensor`` first: its storage is a ``fixed_size_list<uint8>``, which Parquet encodes
element by element with repetition/definition levels, and a 512² shard then read 8× slower
(88 vs 718 slices/s, zstd, one core). Shapes are in each field's metadata and in the manifest.
Files are written in case order, so the same input gives byte-identical shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _image_field(name: str, shape: list[int]) -> pa.Field:
    meta = {"shape": json.dumps(shape), "dtype": "uint8"}
    return pa.field(name, pa.binary(int(np.prod(shape))), metadata=meta)


def slice_schema(size: int, n_post: int) -> pa.Schema:
    return pa.schema(
        [
            ("case_id", pa.string()),
            ("slice_index", pa.int32()),
            _image_field("pre", [size, size]),
            _image_field("post", [n_post, size, size]),
            _image_field("mask", [size, size]),
            ("tumour", pa.bool_()),
            ("box", pa.list_(pa.int32(), 4)),  # y0, y1, x0, x1 inclusive; null off the tumour
        ]
    )


def image_shapes(schema: pa.Schema) -> dict[str, tuple[int, ...]]:
    return {
        f.name: tuple(json.loads(f.metadata[b"shape"]))
        for f in schema
        if f.metadata and b"shape" in f.metadata
    }


def _binary(a: np.ndarray) -> pa.FixedSizeBinaryArray:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    width = int(np.prod(a.shape[1:]))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(a), [None, pa.py_buffer(a)])


def images(table: pa.Table, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A binary image column as a ``(rows, *shape)`` uint8 array (a view when one chunk)."""
    if shape is None:
        shape = image_shapes(table.schema)[name]
    col = table.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    width = int(np.prod(shape))
    buf = np.frombuffer(
        arr.buffers()[1], np.uint8, count=len(arr) * width, offset=arr.offset * width
    )
    return buf.reshape(len(arr), *shape)


def slices_table(case_id: str, s: dict, schema: pa.Schema) -> pa.Table:
    n = len(s["slice_index"])
    cols = {
        "case_id": pa.array([case_id] * n, pa.string()),
        "slice_index": pa.array(s["slice_index"], pa.int32()),
        "pre": _binary(s["pre"]),
        "post": _binary(s["post"]),
        "mask": _binary(s["mask"]),
        "tumour": pa.array(np.asarray(s["tumour"], bool)),
        "box": pa.array(s["box"], pa.list_(pa.int32(), 4)),
    }
    return pa.table(cols, schema=schema)


class ShardWriter:
    """Appends tables to ``part-NNNNN.parquet`` files of about ``target_mb`` each."""

    def __init__(self, folder: Path, schema: pa.Schema, target_mb: int) -> None:
        self.folder, self.schema = folder, schema
        row_bytes = sum(int(np.prod(s)) for s in image_shapes(schema).values())
        self.rows_per_file = max(1, target_mb * 2**20 // row_bytes)
        # ~64 MB row groups: big enough for sequential reads, small enough to stream
        self.row_group = int(max(1, min(1024, 64 * 2**20 // row_bytes, self.rows_per_file)))
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0
        self.files: list[Path] = []
        self.total_rows = 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                path = self.folder / f"part-{len(self.files):05d}.parquet"
                self.folder.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
                self.files.append(path)
                self._rows = 0
            take = min(table.num_rows - start, self.rows_per_file - self._rows)
            self._writer.write_table(table.slice(start, take), row_group_size=self.row_group)
            self._rows += take
            self.total_rows += take
            start += take
            if self._rows >= self.rows_per_file:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
