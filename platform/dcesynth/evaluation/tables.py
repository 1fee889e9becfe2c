"""Tables (CSV + Markdown) and figures of the evaluation, written atomically."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dcesynth.config import atomic_write_text

LABEL = {
    "mae": "MAE ↓",
    "mse": "MSE ↓",
    "psnr": "PSNR ↑",
    "ssim": "SSIM ↑",
    "ms_ssim": "MS-SSIM ↑",
    "lpips": "LPIPS ↓",
    "fid_img": "FID_Img ↓",
    "fid_rad": "FID_Rad ↓",
    "fid_img_split": "FID_Img by-patient split",
    "fid_rad_split": "FID_Rad by-patient split",
    "same": "SAMe ↓",
}


def fmt_p(p: float | None) -> str:
    """A p-value for a table: 4 decimals, "< 0.0001" below that, "–" when not computed."""
    if p is None or math.isnan(p):
        return "–"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt(v: float, std: float | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    digits = 4 if abs(v) < 10 else 2
    s = f"{v:.{digits}f}"
    if std is not None and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s


def write_table(
    rows: Sequence[dict], keys: Sequence[str], metrics: Sequence[str], stem: Path, title: str = ""
) -> tuple[Path, Path]:
    """Rows of {key columns…, metric: {mean, std, n} or float} → ``stem.csv`` and ``stem.md``.

    The CSV has ``<metric>_mean`` and ``<metric>_std`` columns; the Markdown ``mean ± std``.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*keys, *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))])
    md = [
        f"**{title}**\n" if title else "",
        "| " + " | ".join([*keys, *(LABEL.get(m, m) for m in metrics)]) + " |",
    ]
    md.append("|" + "---|" * (len(keys) + len(metrics)))
    for r in rows:
        cells, mcells = [r.get(k, "") for k in keys], []
        for m in metrics:
            v = r.get(m)
            mean, std = (v["mean"], v["std"]) if isinstance(v, dict) else (v, math.nan)
            mean = math.nan if mean is None else mean
            cells += [mean, std]
            mcells.append(fmt(mean, std))
        w.writerow(cells)
        md.append("| " + " | ".join([*(str(r.get(k, "")) for k in keys), *mcells]) + " |")
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(md_path, "\n".join(md) + "\n")
    return csv_path, md_path


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=90, format=path.suffix.lstrip("."))
    plt.close(fig)
    tmp.replace(path)
    return path


def same_bar_chart(
    scaled: dict[str, dict[str, float]], same: dict[str, float], selected: str, path: Path
) -> Path:
    """Figure 4a: per checkpoint, the scaled metrics (0 best) and SAMe; the selection marked."""
    ckpts = list(scaled)
    metrics = list(next(iter(scaled.values())))
    series = [*metrics, "same"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(ckpts) + 2), 3.6), constrained_layout=True)
    x = np.arange(len(ckpts))
    for j, m in enumerate(series):
        vals = [same[c] if m == "same" else scaled[c][m] for c in ckpts]
        ax.bar(
            x + (j - (len(series) - 1) / 2) * width,
            vals,
            width,
            label=LABEL.get(m, m),
            color="black" if m == "same" else None,
        )
    ax.set_xticks(x, [f"{c}{' ★' if c == selected else ''}" for c in ckpts])
    ax.set_xlabel("checkpoint (epoch); ★ selected (lowest SAMe)")
    ax.set_ylabel("min-max scaled (0 = best in set)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=len(series), loc="upper center", bbox_to_anchor=(0.5, 1.18))
    return save_figure(fig, path)


def montage(rows: list[dict], columns: Sequence[str], path: Path, title: str = "") -> Path:
    """One row per case of grey images: ``rows[i][column]`` (H, W) arrays on [0, 255]."""
    n, m = len(rows), len(columns)
    fig, axes = plt.subplots(
        n, m, figsize=(1.9 * m, 1.9 * n + 0.4), squeeze=False, constrained_layout=True
    )
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            ax = axes[i, j]
            # subtractions are faint on the [0, 255] scale: share the real one's 99.5th pct
            vmax = 1 if c == "mask" else 255
            if "sub" in c:
                vmax = max(1.0, float(np.percentile(r.get("real sub", r[c]), 99.5)))
            ax.imshow(r[c], cmap="gray", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(c, fontsize=8)
            if j == 0:
                ax.set_ylabel(r.get("label", ""), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
