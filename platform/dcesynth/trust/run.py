"""Run every trust dimension on a run's checkpoint and write them up (see trust/report.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation.kinetics import case_windows, truth_index_lesions
from dcesynth.evaluation.scoring import box_description
from dcesynth.progress import progress_bar
from dcesynth.trust import biomarkers as B
from dcesynth.trust import figures as FIG
from dcesynth.trust.config import TrustConfig
from dcesynth.trust.report import (
    TrustResult,
    _feature_spaces,
    _strata,
    _synthetic,
    fairness,
    privacy_and_diversity,
    uncertainty,
)


def trust(run_dir: Path, cfg: TrustConfig, progress: bool | None = None) -> TrustResult:
    """Measure privacy, fairness, diversity, uncertainty and kinetic biomarkers.

    Args:
        run_dir: a training run (with checkpoints; ``best`` needs `dcectl select` first).
        cfg: what to measure and how.
        progress: a bar per dimension (default: in a terminal; log lines elsewhere).

    Raises:
        ConfigError / WeightsError / ValueError: unusable inputs, before the slow parts.
    """
    from dcesynth.evaluation.report import add_section
    from dcesynth.evaluation.runs import Run
    from dcesynth.evaluation.scoring import read_pairs

    run = Run.open(run_dir)
    epoch, ckpt = run.checkpoint(cfg.checkpoint)
    device = cfg.torch_device()
    ds = Path(run.cfg.dataset)
    spaces = _feature_spaces(cfg, device)  # a missing weights file fails here, first
    pairs = read_pairs(ds, cfg.split, cfg.pairs, cfg.seed)
    train = read_pairs(ds, "train")
    idx = run.phase_index(pairs.phases)
    real, phases = pairs.post[:, idx], list(run.cfg.phases)
    folder = Path(run_dir) / "report" / "trust"
    rec: dict = {
        "run": str(Path(run_dir).resolve()),
        "checkpoint_epoch": epoch,
        "split": cfg.split,
        "slices": len(pairs),
        "config": cfg.model_dump(mode="json"),
    }
    with progress_bar(5, f"trust {run.path.name}", progress) as advance:
        syn = _synthetic(run, ckpt, pairs.pre, device)
        pool = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731  (N, P, S, S) → (N·P, S, S)
        rec["spaces"] = privacy_and_diversity(
            cfg,
            pool(np.swapaxes(syn, 0, 1)),
            pool(np.swapaxes(real, 0, 1)),
            pool(np.swapaxes(train.post[:, idx], 0, 1)),
            spaces,
        )
        advance(2)
        strata = _strata(cfg, ds, list(dict.fromkeys(pairs.case_id.tolist())))
        rec["fairness"] = fairness(cfg, pairs, real, syn, phases, strata)
        advance()
        unc, spread, mean = uncertainty(cfg, run, pairs, real, device)
        rec["uncertainty"] = unc
        advance()
        if len(phases) >= 2:
            # kinetics are per lesion: every tumour slice of the split, not the random subset
            # above (which covers some lesions partly and others not at all)
            kp = read_pairs(ds, cfg.split, tumour_only=True)
            kreal, ksyn = (
                kp.post[:, run.phase_index(kp.phases)],
                _synthetic(run, ckpt, kp.pre, device),
            )
            rec["kinetics_slices"] = len(kp)
            times = B.case_times(ds, phases)
            lesions = B.lesion_biomarkers(kp, kreal, ksyn, times, cfg.min_enhancement)
            truth = truth_index_lesions(cfg.truth, cfg.salt, phases) if cfg.truth else None
            rec["kinetics"] = B.agreement(lesions, truth)
            # again with each phase's normalisation undone: per-phase min-max rescales
            # every phase by its own brightest voxel, which bends the curves themselves
            if windows := case_windows(ds, phases):
                acq = B.lesion_biomarkers(
                    kp, kreal, ksyn, times, cfg.min_enhancement, windows=windows
                )
                rec["kinetics_acquisition_scale"] = B.agreement(acq, truth)
        else:
            lesions = {}
            rec["kinetics"] = {
                "skipped": f"the run generates phases {phases}: kinetic maps "
                "need ≥ 2 post-contrast phases"
            }
        advance()
    folder.mkdir(parents=True, exist_ok=True)
    FIG.privacy_figure(rec["spaces"]["pixels"], folder / "privacy.png")
    if rec["fairness"]:
        FIG.fairness_figure(rec["fairness"], folder / "fairness.png")
    FIG.uncertainty_figure(pairs, real, mean, spread, unc, folder / "uncertainty.png")
    if lesions:
        FIG.curve_type_figure(kp, lesions, folder / "curve_types.png")
    atomic_write_text(folder / "trust.json", json.dumps(rec, indent=1, default=_plain))
    text = markdown(rec, folder)
    atomic_write_text(folder / "trust.md", text)
    add_section(Path(run_dir) / "report", "trust", text)
    return TrustResult(folder, rec)


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v).__name__)


def _f(v, d: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{d}f}"


def _sources_line(u: dict) -> str:
    """Where the uncertainty comes from: the checkpoints, and the generator's own samples
    where its family draws them (records written before these sources: nothing to say)."""
    src = u.get("sources")
    if not src:
        return ""
    ck = src["checkpoints"]
    line = (
        f"- spread of the checkpoints: mean SD {_f(ck['mean'], 2)} in the body "
        f"(case rank correlation with MAE {_f(ck['spearman_case'])})"
    )
    if (sm := src.get("samples")) is None:
        return line + "; the generator draws no samples, so this is the uncertainty"
    return line + (
        f"; of the generator's own samples ({u['sampling_members']} of "
        f"{len(u['members'])} members draw them): mean SD {_f(sm['mean'], 2)} "
        f"(rank correlation {_f(sm['spearman_case'])}); the uncertainty below is both "
        "together, √(checkpoints² + samples²)"
    )


def markdown(rec: dict, folder: Path) -> str:
    """The report's Trust section (figures linked relative to report/)."""
    lines = [
        "## Trust: privacy, fairness, diversity, uncertainty, kinetic biomarkers\n",
        f"Checkpoint epoch {rec['checkpoint_epoch']}, split {rec['split']}, "
        f"{rec['slices']} slices.\n",
        "### Privacy — memorisation\n",
        "| space | synthetic closer to a training image than any real held-out image "
        "| flagged | under half that distance (near-copies) | median distance synthetic / "
        "held-out |",
        "|---|---|---|---|---|",
    ]
    for name, sp in rec["spaces"].items():
        p = sp["privacy"]
        lines.append(
            f"| {name} | {100 * p['fraction_closer']:.1f} % | "
            f"{'YES' if p['flagged'] else 'no'} | {100 * p['fraction_copies']:.1f} % | "
            f"{_f(float(np.median(p['synthetic_nn'])))}"
            f" / {_f(float(np.median(p['heldout_nn'])))} |"
        )
    lines += [
        "\n![privacy](trust/privacy.png)\n",
        "### Diversity\n",
        "| space | precision | recall | density | coverage | FID |",
        "|---|---|---|---|---|---|",
    ]
    for name, sp in rec["spaces"].items():
        d = sp["diversity"]
        lines.append(
            f"| {name} | {_f(d['precision'])} | {_f(d['recall'])} | "
            f"{_f(d['density'])} | {_f(d['coverage'])} | {_f(d['fid'], 2)} |"
        )
    lines += [
        "\n### Fairness — fidelity by stratum\n",
        f"Regions: whole slice; {box_description(rec['config']['box_min_px'])}.\n",
        "| phase | region | metric | by | stratum | n cases | mean [95 % CI] | vs rest | worse |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rec["fairness"]:
        if r["metric"] not in ("mae", "ssim"):
            continue  # the table keeps two metrics; trust.json has all five
        lines.append(
            f"| {r['phase']} | {r['region']} | {r['metric']} | {r['by']} | "
            f"{r['stratum']} | {r['n']} | {_f(r['mean'])} [{_f(r['ci'][0])}, "
            f"{_f(r['ci'][1])}] | {_f(r['diff_vs_rest'])} | "
            f"{'YES' if r['worse'] else ''} |"
        )
    if rec["fairness"]:
        lines.append("\n![fairness](trust/fairness.png)\n")
    u = rec["uncertainty"]
    flagged = [c for c, f in u["flagged"].items() if f]
    missed = [c for c, m in u["missed"].items() if m]
    lines += [
        "### Uncertainty — an ensemble of " + ", ".join(u["members"]) + "\n",
        _sources_line(u),
        f"- rank correlation of case uncertainty with case MAE: {_f(u['spearman_case'])}"
        f" (slices: {_f(u['spearman_slice'])})",
        f"- MAE of the most certain fifth of slices {_f(u['mae_most_certain_fifth'], 2)}"
        f", of the least certain fifth {_f(u['mae_least_certain_fifth'], 2)}",
        f"- give real contrast (uncertainty above {_f(u['threshold'], 2)}): "
        f"{', '.join(flagged) or 'no case'}; synthetic lesion missed: "
        f"{', '.join(missed) or 'no case'}; sensitivity for missed lesions "
        f"{_f(u['sensitivity_for_missed'])}",
        "\n![uncertainty](trust/uncertainty.png)\n",
        "### Kinetic biomarkers\n",
    ]
    k = rec["kinetics"]
    if "skipped" in k:
        lines.append(k["skipped"])
    else:
        lines += [
            f"{k['lesions']} lesions (every tumour slice of the split: "
            f"{rec.get('kinetics_slices', '?')}); curve type synthetic = real in "
            f"{_f(100 * k['type_agreement'], 0)} %.\n",
            "| biomarker | bias (synthetic − real) | limits of agreement | ICC(2,1) |",
            "|---|---|---|---|",
        ]
        for b, v in k["biomarkers"].items():
            lines.append(
                f"| {b} | {_f(v['bias'])} | [{_f(v['lower'])}, {_f(v['upper'])}] | {_f(v['icc'])} |"
            )
        if "truth_cases" in k:
            lines.append(
                f"\nAgainst the phantom's truth ({k['truth_cases']} lesions): curve "
                f"type real {_f(100 * k['real_vs_truth_type'], 0)} %, synthetic "
                f"{_f(100 * k['synthetic_vs_truth_type'], 0)} %; Spearman of wash-in "
                f"with Ktrans: real {_f(k['real_wash_in_per_min_spearman_ktrans'])}, "
                f"synthetic {_f(k['synthetic_wash_in_per_min_spearman_ktrans'])}."
            )
        if (a := rec.get("kinetics_acquisition_scale")) is not None:
            lines.append(
                "\nOn the acquisition's scale (each phase's normalisation window undone; the "
                "synthetic phase with its real phase's window): curve type synthetic = real in "
                f"{_f(100 * a['type_agreement'], 0)} %, peak enhancement ICC "
                f"{_f(a['biomarkers']['peak_enhancement']['icc'])}"
                + (
                    f"; against the truth: real {_f(100 * a['real_vs_truth_type'], 0)} %, "
                    f"synthetic {_f(100 * a['synthetic_vs_truth_type'], 0)} %."
                    if "truth_cases" in a
                    else "."
                )
                + " Per-phase normalisation divides each phase by its own brightest voxel; "
                "the blood pool's wash-out then lifts late phases and bends the curves."
            )
        lines.append("\n![curve types](trust/curve_types.png)\n")
    return "\n".join(lines) + "\n"
