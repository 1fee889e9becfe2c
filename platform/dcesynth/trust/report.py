"""`dcectl trust RUN`: the trust dimensions the study names but does not evaluate, measured.

Privacy (memorisation), fairness (stratified fidelity), diversity (precision / recall /
density / coverage), uncertainty (an ensemble's spread and whether it predicts error) and
kinetic biomarkers (per-voxel maps, real vs synthetic, and against the phantom's truth) — on
one checkpoint of a run and one held-out split. Writes ``<run>/report/trust/trust.json``, its
figures, and a "Trust" section of the run's ``report.md``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.trust import measures as M
from dcesynth.trust.config import TrustConfig

log = logging.getLogger(__name__)


@dataclass
class TrustResult:
    folder: Path
    record: dict


def _synthetic(run, ckpt: Path, pre: np.ndarray, device: str) -> np.ndarray:
    """uint8 (N, P, S, S): what a saved synthetic image holds."""
    from dcesynth.evaluation.runs import generate

    G = run.generator(ckpt, device)
    return np.clip(np.rint(generate(G, pre, run.cfg, device)), 0, 255).astype(np.uint8)


def _member_outputs(run, ckpt: Path, pre: np.ndarray, device: str):
    """uint8 (N, P, S, S) as :func:`_synthetic`, and the generator's own per-pixel sample
    spread on the same scale (float (N, P, S, S); None for a family that draws no samples) —
    from the same samples, so it costs nothing more."""
    from dcesynth.training.validation import generate_with_spread

    G = run.generator(ckpt, device)
    out, sd = generate_with_spread(G, pre, run.cfg, device)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), sd


def _feature_spaces(cfg: TrustConfig, device: str) -> dict:
    """name → function (N, S, S) uint8 → (N, d): pixels always, a network when configured."""
    spaces = {"pixels": lambda x: M.downsampled(x, cfg.pixel_size)}
    if cfg.features == "pixels":
        return spaces
    from dcesynth.evaluation import features as F

    if cfg.features == "random_inception":  # untrained: allowed only because the config says so
        ext = F.FeatureExtractor("random_inception (untrained)", F.fid_inception(None), 299)
    else:
        ext = F.extractor(cfg.features, cfg.weights_dir)
    ext.to(device)
    spaces[ext.name] = lambda x: F.features(ext, x)
    return spaces


def privacy_and_diversity(cfg, syn, real, train_real, spaces) -> dict:
    """Memorisation and PRDC (+ FID) per feature space, on pooled phases."""
    from dcesynth.evaluation.fid import fid

    out = {}
    for name, fn in spaces.items():
        fs, fr, ft = fn(syn), fn(real), fn(train_real)
        mem = M.memorisation(fs, fr, ft, cfg.privacy_tolerance)
        div = M.prdc(fr, fs, k=min(cfg.prdc_k, len(fr) - 1, len(fs) - 1))
        out[name] = {
            "privacy": {
                k: v.tolist() if isinstance(v, np.ndarray) else v
                for k, v in mem.items()
                if k not in ("nearest_training", "closer")
            },
            "diversity": {**div, "fid": fid(fr, fs) if len(fr) > 2 else float("nan")},
        }
    return out


def _strata(cfg: TrustConfig, ds: Path, cases: list[str]) -> dict[str, dict[str, str]]:
    """stratum key → {case → label}, from cases.parquet and the clinical table."""
    import csv

    import pyarrow.parquet as pq

    from dcesynth.data.ingest.transforms import pseudonym

    rows = {r["case_id"]: r for r in pq.read_table(ds / "cases.parquet").to_pylist()}
    out: dict[str, dict[str, str]] = {}
    for key in ("manufacturer", "field_t", "agent"):
        if key in cfg.strata:
            out[key] = {c: f"{rows[c].get(key)}" for c in cases if rows[c].get(key) is not None}
    if cfg.clinical is not None:
        with Path(cfg.clinical).open() as f:
            clin = {pseudonym(r["Patient ID"], cfg.salt): r for r in csv.DictReader(f)}
        cols = {
            "density": "Density",
            "curve_type": "Curve Type",
            "lesion_size": "Tumour Diameter (mm)",
        }
        for key, col in cols.items():
            if key not in cfg.strata:
                continue
            vals = {c: clin[c].get(col) for c in cases if c in clin and clin[c].get(col)}
            if key == "lesion_size":  # mm → bins
                vals = {
                    c: ("< 10 mm" if float(v) < 10 else "10–20 mm" if float(v) <= 20 else "> 20 mm")
                    for c, v in vals.items()
                }
            out[key] = vals
    return out


def fairness(cfg, pairs, real, syn, phases, strata) -> list[dict]:
    """Table 2's paired metrics per stratum (whole slice and tumour box), per phase."""
    from dcesynth.evaluation.metrics import paired_metrics

    higher = {"mae": False, "mse": False, "psnr": True, "ssim": True, "ms_ssim": True}
    region = pairs.box_region(cfg.box_min_px)
    tum = np.flatnonzero(region.reshape(len(region), -1).any(1))
    rows = []
    for i, p in enumerate(phases):
        for where, idx, reg in (
            ("whole slice", np.arange(len(pairs)), None),
            ("tumour box", tum, region[tum]),
        ):
            if not len(idx):
                continue
            vals = paired_metrics(real[idx, i], syn[idx, i], reg)
            cids = pairs.case_id[idx]
            for metric, v in vals.items():
                per_case = {c: float(v[cids == c].mean()) for c in dict.fromkeys(cids.tolist())}
                for key, of in strata.items():
                    for r in M.stratified(
                        per_case, of, higher[metric], cfg.bootstrap, seed=cfg.seed
                    ):
                        rows.append({"phase": p, "region": where, "metric": metric, "by": key, **r})
    return rows


def uncertainty(cfg, run, pairs, real, device) -> tuple[dict, np.ndarray, np.ndarray]:
    """The ensemble's spread — with the members' own sample spread where their family draws
    samples — how it predicts error, and the give-real-contrast flag (which reads the total)."""
    members = ensemble_members(cfg, run)
    outs, sample_sds = [], []
    for r, ck in members:
        out, sd = _member_outputs(r, ck, pairs.pre, device)
        outs.append(out[:, _idx(r, run)])
        sample_sds.append(None if sd is None else sd[:, _idx(r, run)])
    outs = np.stack(outs)
    ens = M.ensemble_spread(outs.astype(np.float64))  # (N, P, S, S)
    spread, samples = M.combined_spread(ens, sample_sds)
    mean = outs.astype(np.float64).mean(0)
    body = (pairs.pre > 10)[:, None]  # pixels inside the body

    def per_slice(sd: np.ndarray) -> np.ndarray:
        return (sd * body).sum((1, 2, 3)) / np.maximum(body.sum((1, 2, 3)) * sd.shape[1], 1)

    slice_unc = per_slice(spread)
    slice_err = np.abs(mean - real).mean((1, 2, 3))
    cases = list(dict.fromkeys(pairs.case_id.tolist()))
    case_unc = {c: float(slice_unc[pairs.case_id == c].mean()) for c in cases}
    case_err = {c: float(slice_err[pairs.case_id == c].mean()) for c in cases}

    def source(sd: np.ndarray | None) -> dict | None:
        """One source's mean spread in the body and how its case means rank the case MAE."""
        if sd is None:
            return None
        s = per_slice(sd)
        by_case = [float(s[pairs.case_id == c].mean()) for c in cases]
        return {
            "mean": float(s.mean()),
            "spearman_case": M.spearman(by_case, [case_err[c] for c in cases]),
        }

    order = np.argsort(slice_unc)
    fifth = max(1, len(order) // 5)
    thr = float(np.quantile(list(case_unc.values()), cfg.flag_quantile))
    flagged = {c: case_unc[c] > thr for c in cases}
    missed = _missed_lesions(pairs, real, mean, cfg.missed_fraction)
    hits = [c for c in missed if missed[c]]
    return (
        {
            "members": [f"{r.path.name}/epoch {ck.name}" for r, ck in members],
            # where the uncertainty comes from: the checkpoints' disagreement and the
            # generator's own samples (None: no member's family draws samples)
            "sources": {"checkpoints": source(ens), "samples": source(samples)},
            "sampling_members": sum(sd is not None for sd in sample_sds),
            "spearman_case": M.spearman([case_unc[c] for c in cases], [case_err[c] for c in cases]),
            "spearman_slice": M.spearman(slice_unc, slice_err),
            "mae_most_certain_fifth": float(slice_err[order[:fifth]].mean()),
            "mae_least_certain_fifth": float(slice_err[order[-fifth:]].mean()),
            "case_uncertainty": case_unc,
            "case_mae": case_err,
            "threshold": thr,
            "flagged": flagged,
            "missed": missed,
            "sensitivity_for_missed": (
                float(np.mean([flagged[c] for c in hits])) if hits else float("nan")
            ),
        },
        spread,
        mean,
    )


def _idx(member_run, run) -> list[int]:
    return [list(member_run.cfg.phases).index(p) for p in run.cfg.phases]


def ensemble_members(cfg: TrustConfig, run) -> list:
    """[(Run, checkpoint dir)]: the run's last kept checkpoints or a sweep's top-ranked ones
    (those that generate the run's phases)."""
    from dcesynth.config import ConfigError
    from dcesynth.evaluation.runs import Run

    if cfg.ensemble == "epochs":
        ckpts = sorted(run.checkpoints().items())[-cfg.members :]
        out = [(run, d) for _, d in ckpts]
    else:
        if cfg.sweep is None:
            raise ConfigError("`sweep`: required with ensemble: sweep (the sweep folder)")
        sel = json.loads((Path(cfg.sweep) / "selection.json").read_text())
        out = []
        for key in sorted(sel["same"], key=sel["same"].get):
            trial, epoch = key.split("/epoch ")
            r = Run.open(Path(cfg.sweep) / "runs" / trial)
            if set(run.cfg.phases) <= set(r.cfg.phases) and int(epoch) in r.checkpoints():
                out.append((r, r.checkpoints()[int(epoch)]))
            if len(out) == cfg.members:
                break
    if len(out) < 2:
        raise ConfigError(f"an ensemble needs ≥ 2 checkpoints; found {len(out)} ({cfg.ensemble})")
    return out


def _missed_lesions(pairs, real, synthetic, fraction: float) -> dict[str, bool]:
    """Per case with a box: is the synthetic box enhancement below ``fraction`` of the real?"""
    out = {}
    for c in dict.fromkeys(pairs.case_id.tolist()):
        idx = [i for i in np.flatnonzero(pairs.case_id == c) if pairs.box[i] is not None]
        if not idx:
            continue
        r_enh, s_enh = [], []
        for i in idx:
            y0, y1, x0, x1 = pairs.box[i]
            cut = (slice(y0, y1 + 1), slice(x0, x1 + 1))
            pre = pairs.pre[i][cut].astype(np.float64)
            r_enh.append((real[i, 0][cut] - pre).mean())
            s_enh.append((synthetic[i, 0][cut] - pre).mean())
        r, s = float(np.mean(r_enh)), float(np.mean(s_enh))
        out[c] = bool(r > 0 and s < fraction * r)
    return out
