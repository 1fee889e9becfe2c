"""`dcectl bench gpu --cpu --quick`: every section measured, one JSON and one Markdown table,
figures that agree with each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.evaluation.bench_gpu import PEAKS, VARIANTS


def close(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=1e-6)


def test_bench_gpu_quick_on_cpu(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "gpu", "--cpu", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "bench_gpu.json").read_text())
    md = (tmp_path / "bench_gpu.md").read_text()
    s = r["sections"]
    assert set(s) == {"matmul", "train", "sample", "predict", "metrics"} == set(r["section_s"])
    assert r["device"]["kind"] == "cpu" and r["quick"] is True
    assert r["device"]["peak_bf16_flops"] is None  # a CPU has no data-sheet peak here
    assert all(t > 0 for t in r["section_s"].values()) and r["wall_s"] >= sum(
        r["section_s"].values()
    )
    mm = s["matmul"]
    for prec in ("fp32", "bf16"):
        assert mm[f"{prec}_s"] > 0 and close(
            mm[f"{prec}_flops"], 2 * mm["n"] ** 3 / mm[f"{prec}_s"]
        )
    ok = [t for t in s["train"] if t["status"] == "ok"]
    assert {t["variant"] for t in s["train"]} == set(VARIANTS)
    assert {t["variant"] for t in ok} == {"fp32", "bf16"}
    fp32 = next(t for t in ok if t["variant"] == "fp32")
    for t in ok:
        assert t["s_per_step"] > 0 and t["peak_mib"] > 0 and t["flops_per_step"] > 0
        assert close(t["images_s"], t["batch"] / t["s_per_step"])
        assert close(t["achieved_flops"], t["flops_per_step"] / t["s_per_step"])
        assert close(t["fraction_of_matmul"], t["achieved_flops"] / mm[f"{t['precision']}_flops"])
        assert close(t["speedup_vs_fp32"], fp32["s_per_step"] / t["s_per_step"])
        assert t["fraction_of_peak"] is None  # unknown on a CPU
    rows = s["sample"]["rows"]
    assert rows[0]["generator"] == "pix2pixHD" and len(rows) == 3
    for row in rows:
        assert row["s_per_slice"] > 0 and close(row["slices_s"], 1 / row["s_per_slice"])
        assert close(row["vs_pix2pixhd"], row["s_per_slice"] / rows[0]["s_per_slice"])
    p = s["predict"]
    n = p["patients"] * p["slices_per_patient"]
    assert 0 < p["compute_s"] < p["wall_s"] and close(p["slices_s"], n / p["wall_s"])
    assert close(p["generator_slices_s"], n / p["compute_s"])
    m = s["metrics"]
    assert [x["metric"] for x in m["rows"]] == ["mae", "mse", "psnr", "ssim", "ms_ssim"]
    for x in m["rows"]:
        assert x["cpu_s"] > 0 and close(x["cpu_pairs_s"], m["pairs"] / x["cpu_s"])
    for head in ("## Training step", "## Sampling", "## Prediction", "## Paired metrics"):
        assert head in md
    assert "bench_gpu.json" in res.output


def test_known_peaks_match_specific_names_first() -> None:
    from dcesynth.evaluation.bench_gpu import device_peaks

    names = [p[0] for p in PEAKS]
    assert names.index("H100 PCIe") < names.index("H100") and names.index("L40S") < names.index(
        "L4"
    )
    assert device_peaks("cpu")["peak_source"].startswith("unknown")
