"""Dice per test case and the study's Table 3: scenario × training set × test domain.

Each cell gives the mean ± SD (population SD), median and n of the per-case Dice, the global
Dice (2ΣTP / (2ΣTP + ΣFP + ΣFN) over the cell's cases) and a two-sided paired Wilcoxon
signed-rank test against its scenario's baseline (the first set listed: A in scenarios 1–2, D
in 3–4) on the cases both cells scored.

**Undefined Dice.** Dice is 0/0 when neither the reference nor the prediction holds a voxel.
Test patients with an empty reference mask are left out of the study up front (``study.json``
lists them), so every test case has a defined Dice; an empty prediction scores 0. With
``crop: both_halves`` a patient's counts are summed over both halves before Dice is taken.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation.stats import wilcoxon_p
from dcesynth.segmentation.config import SCENARIOS, STUDY_DICE, SegmentConfig
from dcesynth.segmentation.splits import PARTS, identifier


def confusion(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) voxel counts of two masks of the same shape.

    Raises:
        ValueError: shapes differ.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction of shape {pred.shape} for a reference of {ref.shape}")
    p, r = pred > 0, ref > 0
    return int((p & r).sum()), int((p & ~r).sum()), int((~p & r).sum())


def dice(tp: int, fp: int, fn: int) -> float:
    """2TP / (2TP + FP + FN); NaN when both masks are empty (undefined)."""
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else math.nan


def score_prediction(
    study_dir: Path, cfg: SegmentConfig, tests: list[str], name: str, domain: str
) -> list[dict]:
    """Per-case counts and Dice of one ensemble prediction of the test patients."""
    import nibabel as nib

    pred_dir = study_dir / "predictions" / f"{name}_{domain}"
    rows = []
    for cid in tests:
        tp = fp = fn = 0
        for part in PARTS[cfg.crop]:
            ref = np.asarray(
                nib.load(study_dir / "prepared" / cid / f"{part}_label.nii.gz").dataobj
            )
            pred = np.asarray(
                nib.load(pred_dir / f"{identifier(cid, part, domain)}.nii.gz").dataobj
            )
            a, b, c = confusion(pred, ref)
            tp, fp, fn = tp + a, fp + b, fn + c
        rows.append(
            {
                "set": name,
                "domain": domain,
                "case_id": cid,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "dice": dice(tp, fp, fn),
            }
        )
    return rows


def table3(
    cfg: SegmentConfig, per_case: dict[tuple[str, str], list[dict]], failures: dict[str, str]
) -> list[dict]:
    """The study's cells from per-case Dice of each (set, domain) prediction.

    Args:
        cfg: which cells the study fills.
        per_case: (set, domain) → per-case rows (``case_id``, ``dice``, ``tp``, ``fp``, ``fn``).
        failures: (set, domain) label ``"<set>_<domain>"`` → error, for cells without Dice.
    """
    cells = []
    for scenario, name, domain in cfg.cells():
        base = SCENARIOS[scenario][0][0]
        row = {
            "scenario": scenario,
            "set": name,
            "test": f"real {domain}",
            "baseline": base,
            "study_mean": STUDY_DICE.get((scenario, name)),
        }
        rows = per_case.get((name, domain))
        if rows is None:
            row["error"] = failures.get(f"{name}_{domain}", "not run")
            cells.append(row)
            continue
        d = np.array([r["dice"] for r in rows], float)
        tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
        row.update(
            n=len(d),
            mean=float(d.mean()),
            sd=float(d.std()),
            median=float(np.median(d)),
            global_dice=dice(tp, fp, fn),
            **_how_it_fails(rows),
        )
        ref = per_case.get((base, domain))
        if name == base:
            row["p_vs_baseline"] = None
        elif ref is not None:
            mine = {r["case_id"]: r["dice"] for r in rows}
            theirs = {r["case_id"]: r["dice"] for r in ref}
            common = sorted(set(mine) & set(theirs))
            row["p_vs_baseline"] = wilcoxon_p(
                [mine[c] for c in common], [theirs[c] for c in common]
            )
        cells.append(row)
    return cells


def _how_it_fails(rows: list[dict]) -> dict[str, float]:
    """Median over patients of the share of lesion voxels found and of predicted / true volume.

    A low Dice alone does not say whether a set misses lesions or calls too much: on the
    90-case preset set C found 93 % of the lesion on real post but predicted 6.8× its volume,
    while set E on real pre predicted nothing (docs/study.md). Patients without lesion voxels
    are left out (NaN if none has any).
    """
    found, volume = [], []
    for r in rows:
        true = r["tp"] + r["fn"]
        if true > 0:
            found.append(r["tp"] / true)
            volume.append((r["tp"] + r["fp"]) / true)
    med = lambda v: float(np.median(v)) if v else math.nan  # noqa: E731
    return {"found_median": med(found), "volume_ratio_median": med(volume)}


# Within this Dice difference of its scenario's baseline a set is "similar" (the study's
# scenarios 1 and 3 claim no more than that); beyond it, "higher" or "lower".
SIMILAR_DICE = 0.05


def _direction(delta: float) -> str:
    return "similar" if abs(delta) < SIMILAR_DICE else ("higher" if delta > 0 else "lower")


def claims(cells: list[dict]) -> list[dict]:
    """The study's claim for every non-baseline cell, and whether this study reproduces it.

    The claim is the direction of the study's own mean Dice against its scenario's baseline
    (``SIMILAR_DICE``); here the same rule on this study's means, with the paired test's p.
    Verdicts: ``reproduced``, ``same direction, p ≥ 0.05`` (a difference the test cannot
    confirm), ``not reproduced``, and ``no signal`` where both cells score Dice 0 on every
    patient (nothing was learnt, so a "similar" there says nothing).

    Returns:
        one row per cell compared: ``scenario``, ``set``, ``baseline``, ``study_delta``,
        ``claim``, ``delta``, ``found``, ``p``, ``verdict``.
    """
    base = {(c["scenario"], c["set"]): c for c in cells}
    out = []
    for c in cells:
        ref = base.get((c["scenario"], c["baseline"]))
        if c["set"] == c["baseline"] or ref is None or c["study_mean"] is None:
            continue
        study_delta = c["study_mean"] - ref["study_mean"]
        row = {
            "scenario": c["scenario"],
            "set": c["set"],
            "baseline": c["baseline"],
            "study_delta": study_delta,
            "claim": _direction(study_delta),
        }
        if "mean" not in c or "mean" not in ref:
            out.append(row | {"verdict": "not run"})
            continue
        delta, p = c["mean"] - ref["mean"], c.get("p_vs_baseline")
        found = _direction(delta)
        if c["mean"] == 0 and ref["mean"] == 0:
            verdict = "no signal"
        elif found != row["claim"]:
            verdict = "not reproduced"
        elif found != "similar" and (p is None or p >= 0.05):
            verdict = "same direction, p ≥ 0.05"
        else:
            verdict = "reproduced"
        out.append(row | {"delta": delta, "found": found, "p": p, "verdict": verdict})
    return out


def claims_markdown(rows: list[dict]) -> str:
    lines = [
        "**The study's claims** (each set against its scenario's first set; "
        f'"similar": |Δ Dice| < {SIMILAR_DICE})\n',
        "| scenario | set vs baseline | the study: Δ, claim | here: Δ, found | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        here = f"{r['delta']:+.3f}, {r['found']}" if "delta" in r else "–"
        lines.append(
            f"| {r['scenario']} | {r['set']} vs {r['baseline']} | {r['study_delta']:+.3f}, "
            f"{r['claim']} | {here} | {cell(r.get('p'), '.4f')} | {r['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def cell(v: float | None, spec: str = ".3f") -> str:
    """A table cell: ``v`` in ``spec``, or a dash where it is missing or NaN (a failed or absent
    cell). The segmentation tables (Table 3, calibration, conspicuity) all write numbers so."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def markdown(cells: list[dict], title: str) -> str:
    lines = [
        f"**{title}**\n",
        "| scenario | train | test | Dice mean ± SD | median | n | global Dice | p vs baseline "
        "| found | predicted / true volume | study |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        if "error" in c:
            body = f"failed: {c['error']} | | | | | | |"
        else:
            p = "baseline" if c["set"] == c["baseline"] else cell(c.get("p_vs_baseline"), ".4f")
            body = (
                f"{cell(c['mean'])} ± {cell(c['sd'])} | {cell(c['median'])} | {c['n']} | "
                f"{cell(c['global_dice'])} | {p} | {cell(c.get('found_median'), '.2f')} | "
                f"{cell(c.get('volume_ratio_median'), '.2f')}"
            )
        lines.append(
            f"| {c['scenario']} | {c['set']} | {c['test']} | {body} | {cell(c['study_mean'])} |"
        )
    lines.append(
        "\nDice per test patient (ensemble of the folds, no post-processing); SD over patients; "
        "p: two-sided paired Wilcoxon signed-rank test against the scenario's first set; "
        "found: median share of a patient's lesion voxels predicted; predicted / true volume: "
        "its median (< 1: misses, > 1: calls tissue outside the lesion); "
        "study: the reference study's mean Dice (Duke, 191 cases)."
    )
    return "\n".join(lines) + "\n"


def figure(cells: list[dict], per_case: dict[tuple[str, str], list[dict]], path: Path) -> Path:
    """Per-case Dice of every cell as points with the mean bar, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = sorted({c["scenario"] for c in cells})
    fig, axes = plt.subplots(1, len(scen), figsize=(max(5.0, 3.2 * len(scen)), 3.6), squeeze=False)
    for ax, s in zip(axes[0], scen, strict=True):
        mine = [c for c in cells if c["scenario"] == s]
        for i, c in enumerate(mine):
            rows = per_case.get((c["set"], c["test"].split()[-1])) or []
            d = [r["dice"] for r in rows]
            jitter = np.linspace(-0.12, 0.12, len(d)) if d else []
            ax.scatter(i + np.asarray(jitter), d, s=12, alpha=0.7, color="tab:blue")
            if d:
                ax.hlines(np.mean(d), i - 0.3, i + 0.3, color="k", lw=2)
            if c["study_mean"] is not None:
                ax.scatter([i], [c["study_mean"]], marker="x", color="tab:red", zorder=3)
            if "error" in c:
                ax.text(i, 0.5, "failed", ha="center", color="tab:red", rotation=90)
        ax.set_xticks(range(len(mine)), [c["set"] for c in mine])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"scenario {s}: test {mine[0]['test']}", fontsize=9)
        ax.set_ylabel("Dice" if s == scen[0] else "")
    fig.suptitle("Table 3: Dice per test patient (bar: mean; ×: the study's mean)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def write_results(
    folder: Path, cells: list[dict], per_case: dict[tuple[str, str], list[dict]], title: str
) -> list[Path]:
    """``table3.{csv,md,json}``, ``claims.json`` (the study's claims, also in table3.md),
    ``dice_per_case.csv`` and ``table3.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cols = [
        "scenario",
        "set",
        "test",
        "n",
        "mean",
        "sd",
        "median",
        "global_dice",
        "p_vs_baseline",
        "found_median",
        "volume_ratio_median",
        "baseline",
        "study_mean",
        "error",
    ]
    atomic_write_text(folder / "table3.csv", _csv(cells, cols))
    found = claims(cells)
    atomic_write_text(folder / "table3.md", markdown(cells, title) + "\n" + claims_markdown(found))
    atomic_write_text(folder / "table3.json", json.dumps(cells, indent=1))
    atomic_write_text(folder / "claims.json", json.dumps(found, indent=1))
    rows = [r for k in sorted(per_case) for r in per_case[k]]
    atomic_write_text(
        folder / "dice_per_case.csv",
        _csv(rows, ["set", "domain", "case_id", "dice", "tp", "fp", "fn"]),
    )
    png = figure(cells, per_case, folder / "table3.png")
    names = ("table3.csv", "table3.md", "table3.json", "claims.json", "dice_per_case.csv")
    return [folder / f for f in names] + [png]


def _csv(rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return buf.getvalue()
