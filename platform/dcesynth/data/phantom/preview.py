"""Figures a person looks at: a montage per case and its kinetic curves.

The kinetic plot is recomputed from the ground-truth record alone (protocol + Tofts parameters),
which doubles as a check that the record is enough to reproduce the simulation.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dcesynth.data.phantom import tissues as T
from dcesynth.data.phantom.anatomy import Tissue
from dcesynth.data.phantom.case import PhantomCase
from dcesynth.data.phantom.kinetics import ParkerAIF, tofts

PHASE_NAMES = ("pre", "post 1", "post 2", "post 3", "post 4")


def montage(case: PhantomCase, path: Path, dpi: int = 80) -> Path:
    """Axial slice through the index lesion: pre, each post phase, subtraction, mask overlay."""
    box = case.box
    k = (box[0] + box[1]) // 2 if box else case.images.shape[1] // 2
    imgs = case.images[:, k].astype(np.float32)
    vmax = float(np.percentile(imgs[1:] if len(imgs) > 1 else imgs, 99.5))
    sub = np.clip(imgs[1] - imgs[0], 0, None) if len(imgs) > 1 else np.zeros_like(imgs[0])
    n = len(imgs) + 2
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.5), constrained_layout=True)
    aspect = case.geometry.spacing[1] / case.geometry.spacing[0]
    for p, ax in enumerate(axes[: len(imgs)]):
        ax.imshow(imgs[p], cmap="gray", vmin=0, vmax=vmax, aspect=aspect)
        ax.set_title(PHASE_NAMES[p], fontsize=9)
    axes[-2].imshow(
        sub, cmap="gray", vmin=0, vmax=float(np.percentile(sub, 99.8)) or 1, aspect=aspect
    )
    axes[-2].set_title("post 1 − pre", fontsize=9)
    axes[-1].imshow(imgs[min(1, len(imgs) - 1)], cmap="gray", vmin=0, vmax=vmax, aspect=aspect)
    axes[-1].imshow(np.ma.masked_equal(case.mask[k], 0), cmap="autumn", alpha=0.6, aspect=aspect)
    axes[-1].set_title("tumour mask", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    p = case.protocol
    fig.suptitle(
        f"{case.case_id} · slice {k} · {p.field_t} T {p.manufacturer.split()[0]} · "
        f"{p.agent} · {p.matrix}²×{p.slices}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def kinetic_curves(gt: dict, dt_min: float = 1 / 120) -> dict[str, np.ndarray]:
    """Concentration curves (mM) on a fine grid from a ground-truth record."""
    p = gt["protocol"]
    t_acq = np.asarray(gt["acquisition_min_after_injection"])
    t = np.arange(min(t_acq[0], 0.0), t_acq[-1] + 0.5, dt_min)
    aif = ParkerAIF()
    curves = {
        "t": t,
        "Cp (plasma AIF)": aif.plasma(t, p["hct"], p["bolus_delay_min"]),
        "blood (Cb)": aif.blood(t, p["bolus_delay_min"]),
    }
    kt, ve, vp = T.TOFTS[Tissue.FGT]
    tpos = t >= 0
    cp = curves["Cp (plasma AIF)"]
    fgt = np.zeros_like(t)
    fgt[tpos] = tofts(t[tpos], cp[tpos], kt * T.BPE_LEVELS[gt["bpe"]][0], ve, vp)
    curves[f"FGT ({gt['bpe']} BPE)"] = fgt
    for les in gt["lesions"]:
        c = np.zeros_like(t)
        c[tpos] = tofts(t[tpos], cp[tpos], les["ktrans"], les["ve"], les["vp"])
        curves[f"lesion {les['index'] + 1} (type {les['curve_type']})"] = c
    return curves


def _color(name: str) -> str:
    """The same colour for a tissue in both panels of the kinetics plot."""
    if name.startswith("lesion"):
        return ("C3", "C4", "C5")[int(name.split()[1]) - 1]
    return {"Cp": "C0", "blood": "C1", "FGT": "C2"}[name.split()[0]]


def kinetics_plot(gt: dict, path: Path, dpi: int = 80) -> Path:
    """Concentrations over time with acquisitions marked, and relative enhancement per phase."""
    curves = kinetic_curves(gt)
    t = curves.pop("t")
    t_acq = np.asarray(gt["acquisition_min_after_injection"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for name, c in curves.items():
        a1.plot(
            t,
            c,
            color=_color(name),
            lw=1.8 if "lesion" in name else 1.2,
            ls="--" if "Cb" in name else "-",
            label=name,
        )
    for i, ta in enumerate(t_acq):
        a1.axvline(ta, color="0.6", lw=0.8, ls=":")
        a1.text(
            ta,
            a1.get_ylim()[1] * 0.97,
            PHASE_NAMES[i].replace("post ", "P"),
            fontsize=7,
            ha="center",
        )
    a1.set_xlabel("minutes after injection")
    a1.set_ylabel("concentration (mM)")
    a1.set_yscale("symlog", linthresh=0.1)
    a1.set_ylim(bottom=0)
    a1.legend(fontsize=7)
    a1.set_title("Parker AIF and extended-Tofts tissue curves", fontsize=9)
    sig = gt["tissue_signal_noise_free"]
    for name, s in [("FGT", sig["fgt"]), ("blood", sig["blood"])] + [
        (f"lesion {les['index'] + 1} (type {les['curve_type']})", les["signal_noise_free"])
        for les in gt["lesions"]
    ]:
        s = np.asarray(s)
        a2.plot(t_acq, 100 * (s - s[0]) / s[0], "o-", color=_color(name), label=name)
    a2.set_xlabel("acquisition time (min after injection)")
    a2.set_ylabel("relative enhancement (%)")
    a2.set_title("SPGR signal at the acquisitions (noise-free)", fontsize=9)
    a2.legend(fontsize=7)
    fig.suptitle(f"{gt['case_id']} kinetics", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_previews(cfg, out: Path, records: list[dict]) -> list[Path]:
    """Montage and kinetics PNG for each record's case under ``out/preview``.

    Cases are regenerated (generation is deterministic), so previews work for any output format.
    """
    from dcesynth.data.phantom.case import generate_case

    paths = []
    for r in records:
        case = generate_case(cfg, r["index"])
        paths.append(montage(case, out / "preview" / f"{case.case_id}_montage.png"))
        paths.append(kinetics_plot(r, out / "preview" / f"{case.case_id}_kinetics.png"))
    return paths
