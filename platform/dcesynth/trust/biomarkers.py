"""Kinetic biomarkers of a run's test cases: voxel maps real vs synthetic, agreement per
lesion, and (on the phantom) agreement with the truth (see :mod:`dcesynth.trust.kinetic`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcesynth.trust import kinetic as K
from dcesynth.trust.measures import spearman

BIOMARKERS = ("peak_enhancement", "time_to_peak_s", "wash_in_per_min", "ser")


def case_times(ds: Path, phases: list[int]) -> dict[str, list[float]]:
    """case → acquisition times (s) of the pre phase and ``phases``."""
    import pyarrow.parquet as pq

    out = {}
    for r in pq.read_table(ds / "cases.parquet").to_pylist():
        kept = list(r["phases_kept"])
        if all(p in kept for p in phases) and r.get("acquisition_s"):
            out[r["case_id"]] = [float(r["acquisition_s"][kept.index(p)]) for p in (0, *phases)]
    return out


def lesion_biomarkers(
    pairs,
    real: np.ndarray,
    synthetic: np.ndarray,
    times: dict[str, list[float]],
    min_enhancement: float,
    windows: dict[str, np.ndarray] | None = None,
) -> dict:
    """Per case with lesion pixels: the mean of each map over them and the majority curve
    type, real and synthetic; plus one slice's type maps for the figure.

    Args:
        pairs: the split's slices (pre, lesion masks, case ids).
        real, synthetic: (N, P, S, S) post phases on [0, 255].
        times: :func:`case_times`.
        min_enhancement: relative peak enhancement below which a voxel has no curve type.
        windows: :func:`dcesynth.evaluation.kinetics.case_windows`; given, each phase's
            normalisation is undone first (the synthetic phase with its real phase's window:
            the generator only ever saw normalised images), so phases compare on the
            acquisition's scale; cases without a window are left out.
    """
    from dcesynth.data.ingest.transforms import unnormalise

    out = {}
    for c in dict.fromkeys(pairs.case_id.tolist()):
        if c not in times or (windows is not None and c not in windows):
            continue
        idx = np.flatnonzero(pairs.case_id == c)
        mask = pairs.mask[idx] > 0
        if not mask.any():
            continue
        rec: dict = {}
        for kind, posts in (("real", real), ("synthetic", synthetic)):
            pre, post = pairs.pre[idx], np.moveaxis(posts[idx], 1, 0)
            if windows is not None:
                w = windows[c]
                pre = unnormalise(pre, w[0])
                post = np.stack([unnormalise(x, wk) for x, wk in zip(post, w[1:], strict=True)])
            maps = K.kinetic_maps(pre, post, times[c], min_enhancement)
            rec[kind] = {b: float(maps[b][mask].mean()) for b in BIOMARKERS}
            rec[kind]["curve_type"] = K.majority_type(maps["curve_type"][mask])
            j = int(np.argmax(mask.reshape(len(idx), -1).sum(1)))  # the slice with most lesion
            rec[kind]["slice_types"] = maps["curve_type"][j]
        rec["slice"] = int(idx[int(np.argmax(mask.reshape(len(idx), -1).sum(1)))])
        out[c] = rec
    return out


def agreement(lesions: dict, truth: dict[str, dict] | None) -> dict:
    """Bland–Altman and ICC per biomarker, the curve-type confusion matrix, and the truth."""
    cases = sorted(lesions)
    out: dict = {"lesions": len(cases), "biomarkers": {}}
    for b in BIOMARKERS:
        a = [lesions[c]["real"][b] for c in cases]
        s = [lesions[c]["synthetic"][b] for c in cases]
        out["biomarkers"][b] = {**K.bland_altman(a, s), "icc": K.icc_2_1(a, s)}
    real_t = [lesions[c]["real"]["curve_type"] for c in cases]
    syn_t = [lesions[c]["synthetic"]["curve_type"] for c in cases]
    out["confusion"] = K.confusion(real_t, syn_t)
    out["type_agreement"] = float(np.mean([r == s for r, s in zip(real_t, syn_t, strict=True)]))
    if truth:
        common = [c for c in cases if c in truth]
        out["truth_cases"] = len(common)
        for kind in ("real", "synthetic"):
            got = [lesions[c][kind] for c in common]
            out[f"{kind}_vs_truth_type"] = (
                float(
                    np.mean(
                        [
                            g["curve_type"] == truth[c]["curve_type"]
                            for g, c in zip(got, common, strict=True)
                        ]
                    )
                )
                if common
                else float("nan")
            )
            for b in ("wash_in_per_min", "peak_enhancement"):
                for k in ("ktrans", "kep"):
                    out[f"{kind}_{b}_spearman_{k}"] = spearman(
                        [g[b] for g in got], [truth[c][k] for c in common]
                    )
    return out
