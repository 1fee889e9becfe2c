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
* **Two scales.** The study's images, normalised per phase, and the same with each phase's
  normalisation window (recorded by ingest) undone. Per-phase min-max divides every phase by
  its own brightest voxel — in a DCE series the blood pool, whose signal falls after the first
  post phase — so it lifts late phases and can turn a wash-out curve into a plateau; curve
  types against the truth are meaningful only on the acquisition's scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dcesynth.evaluation.scoring import Pairs
from dcesynth.evaluation.tables import plt, save_figure


def box_curves(
    pairs: Pairs,
    real: np.ndarray,
    fake: np.ndarray,
    windows: dict[str, np.ndarray] | None = None,
) -> dict[str, dict]:
    """Per case with a box: {"real": (1+P, 2), "synthetic": (1+P, 2)} of (mean, std), "slices".

    Args:
        pairs: the split's slices (pre, boxes, case ids).
        real, fake: (N, P, S, S) real and synthetic post phases on [0, 255].
        windows: :func:`case_windows`; given, each phase's normalisation is undone first (the
            synthetic phase with its real phase's window), so the curves are on the
            acquisition's scale; cases without a window are left out.
    """
    from dcesynth.data.ingest.transforms import unnormalise

    out: dict[str, dict] = {}
    for cid in dict.fromkeys(pairs.case_id.tolist()):
        rows = [i for i in np.flatnonzero(pairs.case_id == cid) if pairs.box[i] is not None]
        if not rows or (windows is not None and cid not in windows):
            continue
        w = windows[cid] if windows is not None else None

        def scale(x: np.ndarray, k: int, w: np.ndarray | None = w) -> np.ndarray:
            """Phase k (0 = pre) of a box cut as float64, on the acquisition's scale if known."""
            return (unnormalise(x, w[k]) if w is not None else x.astype(np.float64)).ravel()

        px: dict[str, list[list[np.ndarray]]] = {"real": [], "synthetic": []}
        for i in rows:
            y0, y1, x0, x1 = pairs.box[i]
            cut = (slice(y0, y1 + 1), slice(x0, x1 + 1))
            pre = scale(pairs.pre[i][cut], 0)
            for kind, posts in (("real", real), ("synthetic", fake)):
                px[kind].append(
                    [pre, *(scale(posts[i, p][cut], p + 1) for p in range(posts.shape[1]))]
                )
        rec: dict = {"slices": len(rows)}
        for kind, per_slice in px.items():
            phases = [np.concatenate([s[k] for s in per_slice]) for k in range(len(per_slice[0]))]
            rec[kind] = np.array([[v.mean(), v.std()] for v in phases])
        out[cid] = rec
    return out


def case_windows(ds: Path, phases: list[int]) -> dict[str, np.ndarray]:
    """case → (1 + P, 2): the [lo, hi] window ingest normalised the pre phase and ``phases``
    with (cases.parquet ``intensity_window``; datasets ingested before it was stored: none)."""
    import pyarrow.parquet as pq

    t = pq.read_table(ds / "cases.parquet")
    if "intensity_window" not in t.column_names:
        return {}
    out = {}
    for r in t.to_pylist():
        kept, w = list(r["phases_kept"]), r["intensity_window"]
        if w and all(p in kept for p in phases):
            out[r["case_id"]] = np.array([w[kept.index(p)] for p in (0, *phases)], np.float64)
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


def truth_index_lesions(truth_dir: Path, salt: str, phases: list[int]) -> dict[str, dict]:
    """Phantom truth: per pseudonymous case id, the index lesion's Kuhl type at ``phases``,
    Ktrans and kep.

    The type is classified from the lesion's noise-free signal at the phases a run
    generates, not read from the lesion's drawn type: that one is over all the phantom's
    phases, and a plateau over four phases can be persistent over the first three.

    Args:
        truth_dir: the phantom's ``ground_truth/`` folder.
        salt: the pseudonym salt ingest used.
        phases: the post phases of the curve.
    """
    from dcesynth.data.ingest.transforms import pseudonym
    from dcesynth.data.phantom.kinetics import classify_curve

    out = {}
    for f in sorted(Path(truth_dir).glob("*.json")):
        rec = json.loads(f.read_text())
        if rec.get("index_lesion") is None:
            continue
        les = next(x for x in rec["lesions"] if x["index"] == rec["index_lesion"])
        sig = np.asarray(les["signal_noise_free"], np.float64)
        out[pseudonym(rec["case_id"], salt)] = {
            "curve_type": classify_curve(sig[list(phases)] - sig[0]),
            "ktrans": les["ktrans"],
            "kep": les["kep"],
        }
    return out


def truth_types(
    truth_dir: Path, salt: str, case_ids: list[str], phases: list[int]
) -> dict[str, str]:
    """Phantom truth: the index lesion's Kuhl type at ``phases`` for ``case_ids``
    (:func:`truth_index_lesions`); empty for one post phase, which has no curve shape."""
    if len(phases) < 2:
        return {}
    want = set(case_ids)
    return {
        c: t["curve_type"]
        for c, t in truth_index_lesions(truth_dir, salt, phases).items()
        if c in want
    }


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
