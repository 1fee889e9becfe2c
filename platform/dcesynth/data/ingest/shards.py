"""Slice shards: Parquet files of uint8 images as Arrow ``fixed_shape_tensor`` columns.

The canonical Arrow tensor type is read by Ray Data straight into ``(batch, …)`` uint8 numpy
arrays without copies, and by any Arrow reader (``FixedShapeTensorArray.to_numpy_ndarray``).
Files are written in case order, so the same input gives byte-identical shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def slice_schema(size: int, n_post: int) -> pa.Schema:
    img = pa.fixed_shape_tensor(pa.uint8(), [size, size])
    return pa.schema(
        [
            ("case_id", pa.string()),
            ("slice_index", pa.int32()),
            ("pre", img),
            ("post", pa.fixed_shape_tensor(pa.uint8(), [n_post, size, size])),
            ("mask", img),
            ("tumour", pa.bool_()),
            ("box", pa.list_(pa.int32(), 4)),  # y0, y1, x0, x1 inclusive; null off the tumour
        ]
    )


def slices_table(case_id: str, s: dict, schema: pa.Schema) -> pa.Table:
    n = len(s["slice_index"])
    cols = {
        "case_id": pa.array([case_id] * n, pa.string()),
        "slice_index": pa.array(s["slice_index"], pa.int32()),
        "pre": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(s["pre"])),
        "post": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(s["post"])),
        "mask": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(s["mask"])),
        "tumour": pa.array(np.asarray(s["tumour"], bool)),
        "box": pa.array(s["box"], pa.list_(pa.int32(), 4)),
    }
    return pa.table(cols, schema=schema)


class ShardWriter:
    """Appends tables to ``part-NNNNN.parquet`` files of about ``target_mb`` each."""

    def __init__(self, folder: Path, schema: pa.Schema, target_mb: int) -> None:
        self.folder, self.schema = folder, schema
        row_bytes = sum(
            int(np.prod(f.type.shape))
            for f in schema
            if isinstance(f.type, pa.FixedShapeTensorType)
        )
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
