"""Contrast kinetics of real and synthetic phases inside the tumour box.

Per case: the mean ± std intensity of the box's pixels over the case's tumour slices, for the
pre-contrast phase and each generated post phase, real and synthetic (the synthetic curve starts
from the real pre image, the generator's input). Over the cohort: the mean ± std of the case
means (the study's Figure 7); per case: Figure 8.

* **Phase order kept**: the synthetic curve ranks the phases (pre included) the same way as the
  real curve — i.e. synthetic enhancement keeps the real ordering of phases.
* **Curve type** (with ≥ 2 post phases): the Kuhl type (I persistent, II plateau, III wash-out,
  ``dcesynth.data.phantom.kinetics.classify_curve``) of the box-mean enhancement curve, real vs
  synthetic; on the phantom, also against the truth — the type of the index lesion's noise-free
  signal at the same phases. A box holds more than the lesion, so even the real curve need not
  match the truth; both agreements are reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dcesynth.evaluation.scoring import Pairs
from dcesynth.evaluation.tables import plt, save_figure


def box_curves(pairs: Pairs, real: np.ndarray, fake: np.ndarray) -> dict[str, dict]:
    """Per case with a box: {"real": (1+P, 2), "synthetic": (1+P, 2)} of (mean, std), "slices".

    Args:
        pairs: the split's slices (pre, boxes, case ids).
        real, fake: (N, P, S, S) real and synthetic post phases on [0, 255].
    """
    out: dict[str, dict] = {}
    for cid in dict.fromkeys(pairs.case_id.tolist()):
        rows = [i for i in np.flatnonzero(pairs.case_id == cid) if pairs.box[i] is not None]
        if not rows:
            continue
        px: dict[str, list[list[np.ndarray]]] = {"real": [], "synthetic": []}
        for i in rows:
            y0, y1, x0, x1 = pairs.box[i]
            cut = (slice(y0, y1 + 1), slice(x0, x1 + 1))
            pre = pairs.pre[i][cut].astype(np.float64).ravel()
            px["real"].append([pre, *(real[i, p][cut].ravel() for p in range(real.shape[1]))])
            px["synthetic"].append([pre, *(fake[i, p][cut].ravel() for p in range(fake.shape[1]))])
        rec: dict = {"slices": len(rows)}
        for kind, per_slice in px.items():
            phases = [np.concatenate([s[k] for s in per_slice]) for k in range(len(per_slice[0]))]
            rec[kind] = np.array([[v.mean(), v.std()] for v in phases])
        out[cid] = rec
    return out


def order_kept(curves: dict[str, dict]) -> dict[str, bool]:
    """Per case: does the synthetic curve rank the phases as the real one does?"""
    return {
        c: bool(
            np.array_equal(
                np.argsort(r["real"][:, 0], kind="stable"),
                np.argsort(r["synthetic"][:, 0], kind="stable"),
            )
        )
        for c, r in curves.items()
    }


def curve_types(curves: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Per case: Kuhl type of the real and of the synthetic box-mean curve (≥ 2 post phases)."""
    from dcesynth.data.phantom.kinetics import classify_curve

    out = {}
    for c, r in curves.items():
        if len(r["real"]) < 3:
            return {}
        out[c] = {k: classify_curve(r[k][1:, 0] - r[k][0, 0]) for k in ("real", "synthetic")}
    return out


def truth_types(
    truth_dir: Path, salt: str, case_ids: list[str], phases: list[int]
) -> dict[str, str]:
    """Phantom truth: the index lesion's Kuhl type at ``phases``, by pseudonymous case id.

    Args:
        truth_dir: the phantom's ``ground_truth/`` folder.
        salt: the pseudonym salt ingest used.
        case_ids: pseudonymous ids to look up.
        phases: the post phases of the curve.
    """
    from dcesynth.data.ingest.transforms import pseudonym
    from dcesynth.data.phantom.kinetics import classify_curve

    if len(phases) < 2:
        return {}  # one post phase has no curve shape to classify
    want = set(case_ids)
    out = {}
    for f in sorted(Path(truth_dir).glob("*.json")):
        rec = json.loads(f.read_text())
        cid = pseudonym(rec["case_id"], salt)
        if cid not in want or rec.get("index_lesion") is None:
            continue
        les = next(x for x in rec["lesions"] if x["index"] == rec["index_lesion"])
        s = np.asarray(les["signal_noise_free"])
        out[cid] = classify_curve(s[list(phases)] - s[0])
    return out


def summary(
    curves: dict[str, dict], types: dict[str, dict[str, str]], truth: dict[str, str] | None
) -> dict:
    kept = order_kept(curves)
    out: dict = {
        "cases": len(curves),
        "order_kept": kept,
        "order_kept_fraction": float(np.mean(list(kept.values()))) if kept else float("nan"),
    }
    if types:
        out["curve_types"] = types
        out["type_agreement_real_vs_synthetic"] = float(
            np.mean([t["real"] == t["synthetic"] for t in types.values()])
        )
    if truth and types:
        common = [c for c in types if c in truth]
        out["truth_types"] = {c: truth[c] for c in common}
        out["truth_cases"] = len(common)
        for k in ("real", "synthetic"):
            out[f"type_agreement_{k}_vs_truth"] = (
                float(np.mean([types[c][k] == truth[c] for c in common]))
                if common
                else float("nan")
            )
    return out


def _labels(phases: list[int]) -> list[str]:
    return ["pre", *(f"post {p}" for p in phases)]


def cohort_figure(curves: dict[str, dict], phases: list[int], path: Path) -> Path:
    """Figure 7: mean ± std over cases of the box-mean intensity per phase, real vs synthetic."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4), constrained_layout=True)
    x = np.arange(len(phases) + 1)
    for kind, style in (("real", "-o"), ("synthetic", "--s")):
        m = np.array([r[kind][:, 0] for r in curves.values()])
        ax.errorbar(x, m.mean(0), yerr=m.std(0), fmt=style, capsize=3, label=kind)
    ax.set_xticks(x, _labels(phases))
    ax.set_ylabel("intensity in tumour box [0, 255]")
    ax.set_title(f"cohort kinetics ({len(curves)} cases)", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def case_figure(
    curves: dict[str, dict], phases: list[int], path: Path, max_cases: int = 24
) -> Path:
    """Figure 8: one panel per case, mean ± std inside the box per phase, real vs synthetic."""
    items = list(curves.items())[:max_cases]
    cols = min(4, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False, constrained_layout=True
    )
    x = np.arange(len(phases) + 1)
    for ax, (cid, r) in zip(axes.flat, items, strict=False):
        for kind, style in (("real", "-o"), ("synthetic", "--s")):
            ax.errorbar(x, r[kind][:, 0], yerr=r[kind][:, 1], fmt=style, capsize=2, label=kind)
        ax.set_xticks(x, _labels(phases), fontsize=7)
        ax.set_title(cid, fontsize=8)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return save_figure(fig, path)
