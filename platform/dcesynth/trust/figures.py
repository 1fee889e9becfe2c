"""The trust report's figures (written atomically through the evaluation's save_figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcesynth.evaluation.tables import plt, save_figure

# the colours CAD software uses on DCE-MRI: persistent blue, plateau yellow, wash-out red
TYPE_COLOURS = {1: (0.2, 0.4, 1.0), 2: (1.0, 0.85, 0.1), 3: (0.95, 0.15, 0.1)}


def privacy_figure(space: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    p = space["privacy"]
    bins = np.linspace(0, max(max(p["synthetic_nn"]), max(p["heldout_nn"])) * 1.05, 30)
    ax.hist(p["heldout_nn"], bins=bins, alpha=0.6, label="real held-out")
    ax.hist(p["synthetic_nn"], bins=bins, alpha=0.6, label="synthetic")
    ax.axvline(p["bar"], color="k", ls="--", lw=1, label="closest real held-out")
    ax.set_xlabel("distance to the nearest training image")
    ax.set_title(
        f"memorisation: {100 * p['fraction_closer']:.1f} % of synthetic images closer", fontsize=9
    )
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def fairness_figure(rows: list[dict], path: Path, metric: str = "ssim") -> Path:
    keys = sorted({r["by"] for r in rows})
    fig, axes = plt.subplots(
        1,
        max(1, len(keys)),
        figsize=(3 * max(1, len(keys)), 3),
        squeeze=False,
        constrained_layout=True,
    )
    for ax, key in zip(axes[0], keys, strict=False):
        for off, where in ((-0.15, "whole slice"), (0.15, "tumour box")):
            sel = [
                r
                for r in rows
                if r["by"] == key
                and r["metric"] == metric
                and r["region"] == where
                and r["phase"] == rows[0]["phase"]
            ]
            x = np.arange(len(sel)) + off
            m = [r["mean"] for r in sel]
            err = np.array([[r["mean"] - r["ci"][0], r["ci"][1] - r["mean"]] for r in sel]).T
            ax.errorbar(x, m, yerr=err if len(sel) else None, fmt="o", capsize=3, label=where)
            ax.set_xticks(np.arange(len(sel)), [r["stratum"] for r in sel], fontsize=7, rotation=20)
        ax.set_title(key, fontsize=9)
    axes[0][0].set_ylabel(f"{metric} (95 % CI over cases)")
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)


def uncertainty_figure(pairs, real, mean, spread, unc: dict, path: Path, n: int = 3) -> Path:
    cases = sorted(unc["case_uncertainty"], key=unc["case_uncertainty"].get)
    picks = [cases[0], cases[-1]] if len(cases) > 1 else cases
    fig, axes = plt.subplots(
        len(picks), 4, figsize=(9, 2.4 * len(picks)), squeeze=False, constrained_layout=True
    )
    for row, c in zip(axes, picks, strict=True):
        idx = np.flatnonzero(pairs.case_id == c)
        j = idx[len(idx) // 2]
        for ax, img, title in zip(
            row,
            (pairs.pre[j], mean[j, 0], np.abs(mean[j, 0] - real[j, 0]), spread[j, 0]),
            # SD: the checkpoints' spread, with the generator's own samples' where it samples
            ("pre", "synthetic (ensemble mean)", "|error|", "uncertainty (SD)"),
            strict=True,
        ):
            ax.imshow(img, cmap="gray" if "|" not in title and "SD" not in title else "magma")
            ax.set_title(f"{title}\n{c}" if title == "pre" else title, fontsize=7)
            ax.axis("off")
    return save_figure(fig, path)


def curve_type_figure(pairs, lesions: dict, path: Path, n: int = 4) -> Path:
    """Per case: the pre image with the real and the synthetic curve-type map over it."""
    items = list(lesions.items())[:n]
    fig, axes = plt.subplots(
        max(1, len(items)),
        2,
        figsize=(5.2, 2.6 * max(1, len(items))),
        squeeze=False,
        constrained_layout=True,
    )
    for row, (c, rec) in zip(axes, items, strict=False):
        pre = pairs.pre[rec["slice"]].astype(float) / 255.0
        for ax, kind in zip(row, ("real", "synthetic"), strict=True):
            rgb = np.repeat(pre[..., None], 3, -1)
            types = rec[kind]["slice_types"]
            for code, colour in TYPE_COLOURS.items():
                rgb[types == code] = colour
            ax.imshow(rgb)
            ax.set_title(f"{c} {kind}: {rec[kind]['curve_type']}", fontsize=7)
            ax.axis("off")
    fig.suptitle(
        "Kuhl curve type: blue I persistent, yellow II plateau, red III wash-out", fontsize=8
    )
    return save_figure(fig, path)
