"""How much pre-contrast signal virtual contrast needs: gains against measured conspicuity.

The same reduced study — the phase-1 run (Table 2's tumour box) and the segmentation cells of
scenarios 2 and 4 — at several phantom conspicuity levels. Each level is summarised by what was
*measured* on its cohort (the median pre-contrast CNR of its lesions), never by the knob that
made it, and by the gains virtual contrast brought there:

* tumour box: synthetic minus baseline (real pre) SSIM, and baseline minus synthetic MAE
  (positive = the synthetic image is closer to the real post-contrast one);
* the lesion itself: the share of the real lesion-vs-ring contrast the synthetic image keeps,
  beside the pre image's. The box gains alone can mislead: the box is mostly tissue around the
  lesion, and a generator that renders that tissue right gains there while the lesion stays
  invisible (measured: the `invisible` level's box SSIM gain exceeded the calibrated one's);
* scenario 2 (tested on real post): Dice of B (real pre + synthetic) and C (synthetic alone)
  minus A (real pre) — the study's claim is that both are positive;
* scenario 4 (tested on real pre): Dice of E (real post + synthetic) and C minus D (real post).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import Field, field_validator

from dcesynth.config import StrictModel, atomic_write_text
from dcesynth.segmentation.results import cell

GAIN_CELLS = {
    "s2_B_minus_A": ((2, "B"), (2, "A")),
    "s2_C_minus_A": ((2, "C"), (2, "A")),
    "s4_E_minus_D": ((4, "E"), (4, "D")),
    "s4_C_minus_D": ((4, "C"), (4, "D")),
}
GAIN_LABELS = {
    "s2_B_minus_A": "S2: B (pre + synthetic) − A (pre)",
    "s2_C_minus_A": "S2: C (synthetic) − A (pre)",
    "s4_E_minus_D": "S4: E (post + synthetic) − D (post)",
    "s4_C_minus_D": "S4: C (synthetic) − D (post)",
}


class Level(StrictModel):
    """One conspicuity level: a name and the PhantomConfig keys that make it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    phantom: dict = Field(default_factory=dict, description="PhantomConfig overrides")
    calibrated: bool = Field(False, description="the calibrated default (marked in the figure)")
    study: Path | None = Field(
        None,
        description="take this level from a finished `dcectl study` folder of the same preset "
        "(its phase-1 evaluation and Table 3 hold every number) instead of running it again",
    )


class ConspicuityConfig(StrictModel):
    """The experiment: a study preset, the levels, and how the segmentation is reduced."""

    preset: Path = Path("jobs/configs/study_phantom.yaml")
    out: Path = Path("conspicuity_out")
    levels: tuple[Level, ...] = Field(min_length=2)
    folds: int = Field(3, ge=2, description="segmentation folds (the preset's budget per fold)")
    sets: tuple[str, ...] = ("A", "B", "C", "D", "E")

    @field_validator("levels")
    @classmethod
    def _names(cls, v: tuple[Level, ...]) -> tuple[Level, ...]:
        names = [lv.name for lv in v]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be distinct, got {names}")
        return v


def box_gains(rows: list[dict], phase: int = 1) -> dict[str, float]:
    """Tumour-box SSIM and MAE gains of the synthetic image over the baseline (Table 2 rows)."""
    by = {r["comparison"]: r for r in rows if r.get("phase") == phase}
    syn = by.get("tumour box: synthetic vs real")
    base = by.get("tumour box: baseline pre vs post")
    if syn is None or base is None:
        return {"box_ssim_gain": math.nan, "box_mae_gain": math.nan}
    val = lambda row, m: row[m]["mean"] if isinstance(row[m], dict) else row[m]  # noqa: E731
    return {
        "box_ssim_gain": float(val(syn, "ssim") - val(base, "ssim")),
        "box_mae_gain": float(val(base, "mae") - val(syn, "mae")),
    }


def lesion_kept(evaluation: dict, phase: int = 1) -> dict[str, float]:
    """The share of the real lesion contrast the synthetic and the pre image keep (NaN if the
    evaluation has none: no tumour slice stood out, or it predates the measurement)."""
    lc = (evaluation.get("lesion_contrast") or {}).get(str(phase)) or {}
    return {
        "lesion_kept_synthetic": float(lc.get("synthetic_kept", math.nan)),
        "lesion_kept_pre": float(lc.get("pre_kept", math.nan)),
    }


def _files(folder: Path) -> tuple[Path, Path]:
    return (
        folder / "runs" / "phase1" / "report" / "evaluation.json",
        folder / "segmentation" / "results" / "table3.json",
    )


def finished(folder: Path) -> bool:
    """Whether a level's folder (or a study's) holds its phase-1 evaluation and Table 3."""
    return all(f.is_file() for f in _files(folder))


def from_study(folder: Path) -> tuple[dict, list[dict]]:
    """(phase-1 evaluation, Table 3 cells) of a finished level or ``dcectl study`` folder.

    Raises:
        FileNotFoundError: naming the file a finished study would have.
    """
    files = _files(folder)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found; is {folder} a finished `dcectl study`?")
    return json.loads(files[0].read_text()), json.loads(files[1].read_text())


def dice_gains(cells: list[dict]) -> dict[str, float]:
    """Scenario 2 and 4 Dice gains over their baselines (NaN where a cell is missing)."""
    mean = {(c["scenario"], c["set"]): c.get("mean") for c in cells}
    out = {}
    for key, (a, b) in GAIN_CELLS.items():
        x, y = mean.get(a), mean.get(b)
        out[key] = float(x - y) if x is not None and y is not None else math.nan
    return out


def figure(results: list[dict], path: Path) -> Path:
    """Gains against the measured median pre-contrast CNR; the calibrated level marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = sorted(results, key=lambda r: r["cnr_pre_median"])
    x = [r["cnr_pre_median"] for r in res]
    fig, (a1, a3, a2) = plt.subplots(1, 3, figsize=(16, 4.4))
    a1.plot(x, [r["box_ssim_gain"] for r in res], "o-", label="tumour-box SSIM gain")
    a1b = a1.twinx()
    a1b.plot(x, [r["box_mae_gain"] for r in res], "s--", color="C1", label="tumour-box MAE gain")
    a1.set_ylabel("SSIM: synthetic − baseline")
    a1b.set_ylabel("MAE: baseline − synthetic")
    for ax in (a1, a1b):  # both scales from 0, so neither gain's height misleads
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 0.0), max(hi, 0.0))
    a1.set_title("Virtual contrast in the tumour box (phase 1)")
    a3.plot(x, [r["lesion_kept_synthetic"] for r in res], "o-", label="synthetic")
    a3.plot(x, [r["lesion_kept_pre"] for r in res], "s--", label="pre image (baseline)")
    a3.axhline(1, color="grey", lw=0.8, ls=":")
    a3.set_ylabel("share of the real lesion-vs-ring contrast")
    a3.set_title("Does the lesion stand out? (phase 1)")
    a3.legend(fontsize=7, loc="best")
    for key, style in zip(GAIN_CELLS, ("o-", "^-", "s--", "v--"), strict=True):
        a2.plot(x, [r[key] for r in res], style, label=GAIN_LABELS[key])
    a2.set_ylabel("Dice gain")
    a2.set_title("Segmentation: Dice gains (S2: real post; S4: real pre)", fontsize=10)
    for ax in (a1, a3, a2):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("median pre-contrast lesion CNR (measured)")
        for r in res:
            if r.get("calibrated"):
                ax.axvline(r["cnr_pre_median"], color="green", ls=":", lw=1.5)
        for r in res:
            ax.annotate(
                r["level"],
                (r["cnr_pre_median"], 0),
                fontsize=7,
                rotation=90,
                xytext=(2, 2),
                textcoords="offset points",
            )
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a1b.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    a2.legend(fontsize=7, loc="best")
    fig.suptitle("How much pre-contrast signal virtual contrast needs (green: calibrated level)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def markdown(results: list[dict], wall_s: float) -> str:
    f = lambda v: cell(v, "+.3f")  # noqa: E731
    lines = [
        "# Conspicuity: how much pre-contrast signal virtual contrast needs\n",
        f"Wall time of this invocation {wall_s / 60:.1f} min (levels read back from an earlier"
        " invocation or a finished study not counted). Gains: synthetic over baseline (tumour"
        " box, phase 1);"
        " lesion kept: the share of the real lesion-vs-ring contrast (phase 1; 1 = as"
        " conspicuous as in the real post-contrast image); Dice of a set minus its scenario's"
        " baseline set.\n",
        "| level | CNR pre | CNR post 1 | box SSIM gain | box MAE gain | lesion kept: synthetic "
        "| pre | S2 B−A | S2 C−A | S4 E−D | S4 C−D |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    g = lambda v: cell(v, ".2f")  # noqa: E731
    for r in sorted(results, key=lambda r: r["cnr_pre_median"]):
        name = r["level"]
        if r.get("calibrated"):  # bold; say why unless the level's name already does
            name = f"**{name}**" + ("" if name == "calibrated" else " (calibrated)")
        lines.append(
            f"| {name} | {r['cnr_pre_median']:.2f} | {r['cnr_post1_median']:.2f} | "
            f"{f(r['box_ssim_gain'])} | {f(r['box_mae_gain'])} | "
            f"{g(r['lesion_kept_synthetic'])} | {g(r['lesion_kept_pre'])} | "
            f"{f(r['s2_B_minus_A'])} | "
            f"{f(r['s2_C_minus_A'])} | {f(r['s4_E_minus_D'])} | {f(r['s4_C_minus_D'])} |"
        )
    return "\n".join(lines) + "\n\n![conspicuity](conspicuity.png)\n"


def write(out: Path, results: list[dict], wall_s: float) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "conspicuity.json", json.dumps(results, indent=1))
    atomic_write_text(out / "conspicuity.md", markdown(results, wall_s))
    if len(results) >= 1:
        figure(results, out / "conspicuity.png")
    return out / "conspicuity.md"
