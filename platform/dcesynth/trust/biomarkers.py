"""Kinetic biomarkers of a run's test cases: voxel maps real vs synthetic, agreement per
lesion, and (on the phantom) agreement with the truth (see :mod:`dcesynth.trust.kinetic`)."""

from __future__ import annotations

import json
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


def truth_lesions(truth: Path, salt: str) -> dict[str, dict]:
    """case → the index lesion's true curve type, Ktrans and kep (phantom ground truth)."""
    from dcesynth.data.ingest.transforms import pseudonym

    out = {}
    for f in sorted(Path(truth).glob("*.json")):
        rec = json.loads(f.read_text())
        if rec.get("index_lesion") is None:
            continue
        les = next(x for x in rec["lesions"] if x["index"] == rec["index_lesion"])
        out[pseudonym(rec["case_id"], salt)] = {
            "curve_type": les["curve_type"],
            "ktrans": les["ktrans"],
            "kep": les["kep"],
        }
    return out


def lesion_biomarkers(pairs, real, synthetic, times, min_enhancement: float) -> dict:
    """Per case with lesion pixels: the mean of each map over them and the majority curve
    type, real and synthetic; plus one slice's type maps for the figure."""
    out = {}
    for c in dict.fromkeys(pairs.case_id.tolist()):
        if c not in times:
            continue
        idx = np.flatnonzero(pairs.case_id == c)
        mask = pairs.mask[idx] > 0
        if not mask.any():
            continue
        rec: dict = {}
        for kind, posts in (("real", real), ("synthetic", synthetic)):
            maps = K.kinetic_maps(
                pairs.pre[idx], np.moveaxis(posts[idx], 1, 0), times[c], min_enhancement
            )
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
