"""``dcectl bench gpu``'s outputs: the JSON file and the Markdown tables (one per section)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def write_json(path: Path, r: dict) -> None:
    """``r`` as indented JSON, written atomically (NaN and infinities as null)."""
    from dcesynth.config import atomic_write_text

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    atomic_write_text(path, json.dumps(clean(r), indent=1))


def _f(v, fmt: str = ".3g", unit: str = "") -> str:
    return "" if v is None else f"{v:{fmt}}{unit}"


def _flops(v) -> str:
    return "" if v is None else f"{v / 1e12:.3g} TFLOP/s" if v >= 1e12 else f"{v / 1e9:.3g} GFLOP/s"


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f} %"


def _table(head: tuple[str, ...], rows: list[tuple]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def markdown(r: dict) -> str:
    """Every section of a ``bench_gpu`` result as Markdown tables."""
    d, s = r["device"], r["sections"]
    mm = s["matmul"]
    lines = [
        f"# dcectl bench gpu — {d['name']} ({d['kind']}{', quick' if r['quick'] else ''})",
        "",
        f"Total {r['wall_s']:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in r["section_s"].items())
        + f"). Peaks: {d['peak_source']}; bf16 {_flops(d['peak_bf16_flops']) or 'unknown'}, "
        f"fp32 {_flops(d['peak_fp32_flops']) or 'unknown'}. Measured {mm['n']}² matmul: fp32 "
        f"{_flops(mm['fp32_flops'])}, bf16 {_flops(mm['bf16_flops'])}.",
        "",
        "## Training step (pix2pixHD: G and D, LSGAN + feature matching + VGG19)",
        "",
    ]
    rows = []
    for t in s["train"]:
        if t["status"] != "ok":
            rows.append((f"{t['size']}² ×{t['batch']}", t["variant"], t["status"], t.get("why", ""),
                         "", "", "", "", "", ""))  # fmt: skip
            continue
        rows.append(
            (
                f"{t['size']}² ×{t['batch']}",
                t["variant"],
                t["precision"],
                _f(t["s_per_step"], ".4f"),
                _f(t["images_s"], ".2f"),
                _f(t["peak_mib"], ".0f"),
                _flops(t["achieved_flops"]),
                _pct(t["fraction_of_peak"]) or "unknown",
                _pct(t["fraction_of_matmul"]),
                _f(t.get("speedup_vs_fp32"), ".2f", "×"),
            )
        )
    lines += _table(
        ("setting", "variant", "ran in", "s/step", "images/s", "peak MiB", "achieved",
         "of peak", "of matmul", "vs fp32"),
        rows,
    )  # fmt: skip
    sm = s["sample"]
    lines += [f"## Sampling ({sm['slices']} slices of {sm['size']}², {sm['device']}, fp32)", ""]
    lines += _table(
        ("generator", "evaluations / slice", "s / slice", "slices / s", "× pix2pixHD"),
        [
            (x["generator"], x["nfe"], _f(x["s_per_slice"], ".4f"), _f(x["slices_s"], ".2f"),
             _f(x["vs_pix2pixhd"], ".2f"))
            for x in sm["rows"]
        ],
    )  # fmt: skip
    p = s["predict"]
    lines += [
        f"## Prediction (`dcectl predict --engine local`, {p['generator']})",
        "",
        *_table(
            ("patients", "volume", "wall s", "generator s", "slices / s", "generator slices / s"),
            [
                (p["patients"], f"{p['matrix']}² × {p['slices_per_patient']}", _f(p["wall_s"]),
                 _f(p["compute_s"]), _f(p["slices_s"]), _f(p["generator_slices_s"]))
            ],
        ),
    ]  # fmt: skip
    m = s["metrics"]
    gpu = "cuda" in m["devices"]
    lines += [f"## Paired metrics ({m['pairs']} pairs of {m['size']}²)", ""]
    lines += _table(
        ("metric", "CPU pairs/s", "GPU pairs/s", "GPU / CPU", "max |GPU − CPU|"),
        [
            (x["metric"], _f(x["cpu_pairs_s"], ".1f"),
             _f(x.get("cuda_pairs_s"), ".1f") if gpu else "no GPU",
             _f(x.get("speedup"), ".2f", "×"), _f(x.get("max_diff"), ".2e"))
            for x in m["rows"]
        ],
    )  # fmt: skip
    return "\n".join(lines)
