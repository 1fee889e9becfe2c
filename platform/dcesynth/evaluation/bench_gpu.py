"""``dcectl bench gpu``: one run that says what a GPU machine does with the study's workloads.

Sections, each built from the benchmark that owns the measurement (nothing is re-implemented):

* ``matmul`` — a square fp32 and bf16 matmul, timed briefly: the device's measured ceiling,
  against which the training steps are also given (on a CPU the only ceiling there is);
* ``train`` — the study's pix2pixHD step (:mod:`dcesynth.training.bench`) at 256² and 512²
  in fp32, bf16, bf16 + channels-last and bf16 + channels-last + ``torch.compile``: s/step,
  images/s, peak memory, FLOPs counted by torch's FLOP counter, achieved FLOP/s against the
  data-sheet peak of the device (:data:`PEAKS`; ``unknown`` for a device not in it);
* ``sample`` — sampling cost per slice, the rectified flow per step count against pix2pixHD
  (:mod:`dcesynth.inference.bench_sample`);
* ``predict`` — ``dcectl predict``'s local engine over phantom DICOM patients: slices/s end to
  end and in the generator (:mod:`dcesynth.inference.bench`);
* ``metrics`` — the paired metric suite (:func:`~dcesynth.evaluation.metrics.paired_metrics`)
  on the GPU against the CPU path, pairs/s and the largest difference.

``--cpu`` runs the same sections on the CPU with smaller sizes (no compile, no GPU column);
``--quick`` shrinks every size to what a CI job affords. The result is one JSON file and one
Markdown table (:mod:`dcesynth.evaluation.bench_gpu_report`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Dense (no sparsity) peak FLOP/s from the vendors' data sheets, by a fragment of
# torch.cuda.get_device_name(); the first fragment found wins, so the more specific come first
# (fp32: plain FP32, not TF32 — the study's fp32 runs do not enable TF32).
PEAKS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51e12),
    ("H100", 989e12, 67e12),
    ("A100", 312e12, 19.5e12),
    ("L40S", 362e12, 91.6e12),
    ("L4", 121e12, 30.3e12),
    ("A10", 125e12, 31.2e12),
)
TRAIN_BUDGET_S = 330  # the train section's share of `bench gpu`'s 8 minutes on one GPU
VARIANTS = {  # ours → the training benchmark's variant of the same step
    "fp32": "ours fp32",
    "bf16": "ours no channels-last",
    "bf16 + channels-last": "ours",
    "bf16 + channels-last + compile": "ours compiled",
}


@dataclass(frozen=True)
class Sizes:
    """What each section measures; :func:`sizes` picks them for the device and mode."""

    arch: str  # the training benchmark's architecture: study or small
    train: tuple[tuple[int, int], ...]  # (side, batch)
    variants: tuple[str, ...]
    steps: int
    in_process: bool  # train in this process (quick) rather than a fresh one per variant
    matmul: int
    sample_size: int
    sample_slices: int
    sample_steps: tuple[int, ...]
    patients: int
    matrix: int
    slices: int
    predict_arch: str  # bench (tiny) or study
    pairs: int
    pair_size: int


def sizes(cpu: bool, quick: bool) -> Sizes:
    if quick:
        return Sizes("small", ((32, 1),), ("fp32", "bf16"), 1, True, 512, 32, 2, (1, 2),
                     1, 32, 4, "bench", 4, 192)  # fmt: skip
    if cpu:
        return Sizes("small", ((64, 2), (128, 2)), ("fp32", "bf16"), 2, False, 2048, 64, 4,
                     (1, 4, 8), 2, 64, 16, "bench", 8, 256)  # fmt: skip
    return Sizes("study", ((256, 8), (512, 4)), tuple(VARIANTS), 5, False, 8192, 256, 32,
                 (1, 4, 8, 16), 2, 512, 32, "study", 64, 512)  # fmt: skip


def device_peaks(device: str) -> dict:
    """Name and data-sheet peaks of ``device`` (None where unknown: every CPU)."""
    import platform

    import torch

    if device == "cuda":
        name = torch.cuda.get_device_name()
        hit = next((p for p in PEAKS if p[0] in name), None)
        return {
            "name": name,
            "peak_bf16_flops": hit[1] if hit else None,
            "peak_fp32_flops": hit[2] if hit else None,
            "peak_source": f"data sheet ({hit[0]}, dense)" if hit else "unknown",
        }
    return {
        "name": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "peak_bf16_flops": None,
        "peak_fp32_flops": None,
        "peak_source": "unknown (CPU: see the measured matmul)",
    }


def matmul_flops(device: str, n: int = 2048, seconds: float = 1.0) -> dict:
    """FLOP/s of an ``n × n`` matmul in fp32 and bf16 on ``device``, each repeated for about
    ``seconds`` after one warm-up call (2n³ FLOPs a call)."""
    import torch

    out = {"n": n}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b  # warm-up: kernel choice, allocations
        calls, t0 = 0, time.perf_counter()
        while True:
            a @ b
            calls += 1
            if device == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        out[f"{name}_s"] = elapsed / calls
        out[f"{name}_flops"] = 2 * n**3 / out[f"{name}_s"]
    return out


def _train_one(size: int, batch: int, variant: str, device: str, sz: Sizes) -> dict:
    """One variant of the training step (the training benchmark's measurement)."""
    from dcesynth.training import bench as B

    s = B.Setting(sz.arch, size, batch, VARIANTS[variant])
    threads = (os.cpu_count() or 1) if device == "cpu" else 1
    if not sz.in_process:
        return B.run(s, device, sz.steps, threads, timeout=200 if "compile" in variant else 120)

    class _Box(list):  # the measurement reports through a queue's put
        put = list.append

    box = _Box()
    torch_threads = _torch_threads()
    try:
        B._measure(s, device, sz.steps, threads, box)  # quick: no process start per variant
    finally:
        _torch_threads(torch_threads)
    return box[0]


def _torch_threads(n: int | None = None) -> int:
    import torch

    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def train_section(device: str, sz: Sizes, peaks: dict, matmul: dict) -> list[dict]:
    """Rows per (side, batch, variant): times, FLOPs, achieved FLOP/s vs peak and vs matmul."""
    from dcesynth.training.step import cpu_has_bf16

    rows, t0 = [], time.perf_counter()
    for size, batch in sz.train:
        flops = None
        for variant in VARIANTS:
            row = {"size": size, "batch": batch, "variant": variant}
            if variant not in sz.variants:
                rows.append(row | {"status": "skipped", "why": "not on CPU (--cpu)"})
                continue
            if time.perf_counter() - t0 > TRAIN_BUDGET_S:  # the whole run must fit 8 minutes
                rows.append(row | {"status": "skipped", "why": f"over {TRAIN_BUDGET_S} s"})
                continue
            bf16 = variant != "fp32" and (device == "cuda" or cpu_has_bf16())
            log.info("bench gpu: train %d² × %d, %s", size, batch, variant)
            r = _train_one(size, batch, variant, device, sz)
            if "error" in r:
                rows.append(row | {"status": "error", "why": r["error"]})
                continue
            flops = r["flops"] or flops  # a compiled step does the eager step's arithmetic
            prec = "bf16" if bf16 else "fp32"
            peak = peaks[f"peak_{prec}_flops"]
            achieved = flops / r["s_per_step"] if flops else None
            row |= {
                "status": "ok",
                "precision": prec,  # what ran: bf16 falls back to fp32 on a CPU without it
                "s_per_step": r["s_per_step"],
                "images_s": r["images_s"],
                "peak_mib": r["peak_mib"],
                "flops_per_step": flops,
                "achieved_flops": achieved,
                "fraction_of_peak": achieved / peak if achieved and peak else None,
                "fraction_of_matmul": achieved / matmul[f"{prec}_flops"] if achieved else None,
            }
            rows.append(row)
        base = next((r for r in rows[-len(VARIANTS) :] if r["variant"] == "fp32"), None)
        for r in rows[-len(VARIANTS) :]:
            if r.get("status") == "ok" and base and base.get("status") == "ok":
                r["speedup_vs_fp32"] = base["s_per_step"] / r["s_per_step"]
    return rows


def sample_section(device: str, sz: Sizes) -> dict:
    """The flow per step count against pix2pixHD (the study's size on a GPU; on a CPU the
    small benchmark generator, so that the flow's steps are what the section times)."""
    from dcesynth.inference.bench import bench_artifact
    from dcesynth.inference.bench_sample import bench_sample

    with tempfile.TemporaryDirectory(prefix="dcesynth-bench-gpu-") as tmp:
        gan = None
        if sz.predict_arch == "bench":
            gan = bench_artifact(Path(tmp) / "gan.dcem", None, sz.sample_size)[0]
        steps = list(sz.sample_steps)
        r = bench_sample(sz.sample_size, sz.sample_slices, steps, 1, device, 4, None, gan)
    for row in r["rows"]:
        row["slices_s"] = 1 / row["s_per_slice"]
    return r | {"slices": sz.sample_slices}


def predict_section(device: str, sz: Sizes) -> dict:
    """The local engine over phantom patients: end to end and in the generator."""
    from dcesynth.inference.bench import _predict, bench_artifact, phantom_patients

    arch = None
    if sz.predict_arch == "study":
        from dcesynth.training.bench import STUDY

        arch = {k: v for k, v in STUDY.items() if k != "ndf"}
    with tempfile.TemporaryDirectory(prefix="dcesynth-bench-gpu-") as tmp:
        root = Path(tmp)
        src = phantom_patients(root / "cohort", sz.patients, sz.matrix, sz.slices)
        art, label, _ = bench_artifact(root / "model.dcem", None, sz.matrix, arch)
        _predict(art, src, root / "warm", device, 16, "local")  # warm-up: allocator, kernels
        r = _predict(art, src, root / "out", device, 16, "local")
    return {
        "generator": label,
        "patients": sz.patients,
        "matrix": sz.matrix,
        "slices_per_patient": sz.slices,
        "wall_s": r["s"],
        "compute_s": r["compute"],
        "slices_s": r["slices"] / r["s"],
        "generator_slices_s": r["slices"] / r["compute"] if r["compute"] else None,
    }


def metrics_section(device: str, sz: Sizes) -> dict:
    """The paired suite on ``device`` against the CPU path (the same pairs, values compared)."""
    import numpy as np

    from dcesynth.evaluation.bench import _timed, test_pairs
    from dcesynth.evaluation.metrics import PAIRED, paired_metrics

    real, fake = test_pairs(sz.pairs, sz.pair_size)
    rows = []
    for name in PAIRED:
        row = {"metric": name}
        values = {}
        for dev in ("cpu", "cuda") if device == "cuda" else ("cpu",):
            fn = lambda d=dev, m=name: paired_metrics(real, fake, names=(m,), device=d)[m]  # noqa: E731
            t, values[dev] = _timed(fn, 1)
            row |= {f"{dev}_s": t, f"{dev}_pairs_s": sz.pairs / t}
        if "cuda" in values:
            row["speedup"] = row["cpu_s"] / row["cuda_s"]
            row["max_diff"] = float(np.max(np.abs(values["cuda"] - values["cpu"])))
        rows.append(row)
    return {"pairs": sz.pairs, "size": sz.pair_size, "devices": list(values), "rows": rows}


def bench_gpu(out: Path, cpu: bool = False, quick: bool = False) -> dict:
    """Every section on the GPU (or the CPU with ``cpu``); writes ``out/bench_gpu.json`` and
    ``out/bench_gpu.md``. Returns the JSON's content.

    Raises:
        ValueError: no GPU without ``cpu``.
    """
    import torch

    from dcesynth.config import atomic_write_text
    from dcesynth.evaluation.bench_gpu_report import markdown, write_json

    if not cpu and not torch.cuda.is_available():
        raise ValueError("bench gpu: torch sees no GPU here; run with --cpu for the CPU form")
    device = "cpu" if cpu else "cuda"
    sz = sizes(cpu, quick)
    t0 = time.perf_counter()
    peaks = device_peaks(device)
    r: dict = {"device": {"kind": device, **peaks}, "quick": quick, "sections": {}}
    timings = r["section_s"] = {}

    def timed(name: str, fn):
        t = time.perf_counter()
        log.info("bench gpu: %s …", name)
        r["sections"][name] = fn()
        timings[name] = time.perf_counter() - t

    timed("matmul", lambda: matmul_flops(device, sz.matmul, 0.3 if quick else 1.0))
    timed("train", lambda: train_section(device, sz, peaks, r["sections"]["matmul"]))
    timed("sample", lambda: sample_section(device, sz))
    timed("predict", lambda: predict_section(device, sz))
    timed("metrics", lambda: metrics_section(device, sz))
    r["wall_s"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench_gpu.json", r)
    atomic_write_text(out / "bench_gpu.md", markdown(r))
    return r
