"""`dcectl bench sample` times both families through the one generate path: the flow costs its
steps × K network evaluations per slice, pix2pixHD one."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcesynth.inference.bench_sample import bench_sample


def test_sampling_cost_per_step_count(model_file: Path, flow_model_file: Path) -> None:
    r = bench_sample(32, 2, [1, 3], 2, "cpu", 2, flow_model_file, model_file)
    assert [row["nfe"] for row in r["rows"]] == [1, 2, 6]
    assert r["rows"][0]["generator"] == "pix2pixHD" and r["rows"][0]["vs_pix2pixhd"] == 1
    assert all(row["s_per_slice"] > 0 for row in r["rows"])
    with pytest.raises(ValueError, match="holds a pix2pixhd generator"):
        bench_sample(32, 2, [1], 1, "cpu", 2, model_file, model_file)
