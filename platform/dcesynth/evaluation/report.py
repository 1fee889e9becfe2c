"""The evaluation report of a run on a held-out split: the study's Tables 2/4, Figures 5–8.

``evaluate`` translates the split's slices with one checkpoint and writes into
``<run>/report/``:

* ``table2.csv`` / ``table2.md`` — per generated phase: synthetic vs real, the real pre vs real
  post baseline, subtraction images (synthetic vs real, post − pre clipped at 0), and the same
  restricted to the tumour box (lesion-level); FID rows carry the by-patient split FID of the
  real images as their floor;
* ``montage_phase<p>.png`` — one row per case: pre, real post, synthetic post, real and
  synthetic subtraction, mask (central tumour slice);
* ``kinetics_cohort.png`` (Figure 7), ``kinetics_cases.png`` (Figure 8), ``kinetics.json``;
* ``report.md`` — all of it on one page; ``evaluation.json`` — every number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.evaluation import kinetics as K
from dcesynth.evaluation.config import EvalConfig
from dcesynth.evaluation.frd import FRD_METRICS
from dcesynth.evaluation.lesion import box_by_case, contrast_kept
from dcesynth.evaluation.metrics import subtraction
from dcesynth.evaluation.runs import Run, generate
from dcesynth.evaluation.scoring import Pairs, Scorer, box_description, read_pairs
from dcesynth.evaluation.tables import LABEL, fmt, fmt_p, montage, write_table
from dcesynth.progress import progress_bar


@dataclass
class Evaluation:
    report: Path
    rows: list[dict]
    kinetics: dict
    files: list[Path]


def _montage_rows(pairs: Pairs, real: np.ndarray, fake: np.ndarray, i: int) -> list[dict]:
    rows = []
    for cid in dict.fromkeys(pairs.case_id.tolist()):
        idx = np.flatnonzero(pairs.case_id == cid)
        tumour = [j for j in idx if pairs.box[j] is not None]
        j = tumour[len(tumour) // 2] if tumour else idx[len(idx) // 2]
        pre = pairs.pre[j].astype(np.float32)
        rows.append(
            {
                "label": f"{cid} z{pairs.slice_index[j]}",
                "pre": pre,
                "real post": real[j, i],
                "synthetic post": fake[j, i],
                "real sub": subtraction(real[j, i], pre),
                "synthetic sub": subtraction(fake[j, i], pre),
                "mask": pairs.mask[j],
            }
        )
    return rows


def _phase_rows(scorer, pairs, r, f, p: int, split: str, region, tum) -> list[dict]:
    """Table 2's rows of one generated phase: synthetic vs real, the real pre vs real post
    baseline, the subtraction images, and the same inside the tumour box."""
    rows: list[dict] = []
    rsub, fsub = subtraction(r, pairs.pre), subtraction(f, pairs.pre)
    cases = pairs.case_id
    rows += [
        {
            "phase": p,
            "comparison": "synthetic vs real",
            **scorer.score(r, f, real_key=(split, p), case_ids=cases),
        },
        {
            "phase": p,
            "comparison": "baseline: real pre vs real post",
            # the pre images are the same for every phase: their features are extracted once
            **scorer.score(r, pairs.pre, real_key=(split, p), fake_key=(split, "pre")),
        },
        {
            "phase": p,
            "comparison": "subtraction: synthetic vs real",
            # FRD on the whole slices and in the box only: each costs a feature extraction
            **scorer.score(
                rsub, fsub, real_key=(split, "sub", p), case_ids=cases, skip=FRD_METRICS
            ),
        },
    ]
    if len(tum):
        rows += [
            {
                "phase": p,
                "comparison": "tumour box: synthetic vs real",
                **scorer.score(r[tum], f[tum], region[tum], real_key=(split, p)),
            },
            {
                "phase": p,
                "comparison": "tumour box: baseline pre vs post",
                **scorer.score(
                    r[tum],
                    pairs.pre[tum],
                    region[tum],
                    real_key=(split, p),
                    fake_key=(split, "pre"),
                ),
            },
        ]
    return rows


def evaluate(
    run_dir: Path,
    cfg: EvalConfig,
    checkpoint: str | int = "best",
    split: str = "test",
    dataset: Path | None = None,
    truth: Path | None = None,
    salt: str = "dcesynth",
    progress: bool | None = None,
) -> Evaluation:
    """Score a checkpoint on ``split`` and write the report.

    Args:
        run_dir: a training run.
        cfg: metrics, networks, number of pairs, device.
        checkpoint: ``best`` (from ``dcectl select``), ``last`` or an epoch.
        split: the held-out split.
        dataset: the prepared dataset, when it moved since training.
        truth: a phantom's ``ground_truth/`` folder: adds curve-type agreement with the truth.
        salt: the pseudonym salt ingest used (to find each case's truth record).
        progress: a bar per generated phase (default: in a terminal; log lines otherwise).
    """
    run = Run.open(run_dir)
    epoch, ckpt = run.checkpoint(checkpoint)
    scorer = Scorer(cfg)
    ds = Path(dataset or run.cfg.dataset)
    if truth is not None and not Path(truth).is_dir():
        raise ValueError(f"--truth {truth}: not a folder (the phantom's ground_truth/)")
    pairs = read_pairs(ds, split, cfg.pairs, cfg.seed)
    idx = run.phase_index(pairs.phases)
    real = pairs.post[:, idx]
    G = run.generator(ckpt, scorer.device)
    fake = generate(G, pairs.pre, run.cfg, scorer.device, cfg.batch_size)
    fake_u8 = np.clip(np.rint(fake), 0, 255).astype(np.uint8)  # what a saved image would hold
    region = pairs.box_region(cfg.box_min_px)
    tum = np.flatnonzero(region.reshape(len(region), -1).any(1))
    # does the lesion itself stand out as in the real image (the box is mostly its surroundings)
    lesion = {
        p: contrast_kept(pairs.pre, real[:, i], fake_u8[:, i], pairs.mask)
        for i, p in enumerate(run.cfg.phases)
    }
    # the study's unit is the patient: the box metrics per case, with a paired test
    by_case = (
        {
            p: box_by_case(
                real[tum, i], fake_u8[tum, i], pairs.pre[tum], region[tum], pairs.case_id[tum]
            )
            for i, p in enumerate(run.cfg.phases)
        }
        if len(tum)
        else {}
    )
    rows = []
    bar = progress_bar(len(run.cfg.phases), f"evaluate {run.path.name} on {split}", progress)
    with bar as advance:
        for i, p in enumerate(run.cfg.phases):
            rows += _phase_rows(scorer, pairs, real[:, i], fake_u8[:, i], p, split, region, tum)
            advance()
    report = Path(run_dir) / "report"
    metrics = [m for m in cfg.metrics] + [
        m for m in ("fid_img_split", "fid_rad_split") if any(m in r for r in rows)
    ]
    title = (
        f"Table 2 — {split} split, checkpoint epoch {epoch}, {len(pairs)} slices of "
        f"{len(set(pairs.case_id.tolist()))} cases"
        + (f"; not computed: {', '.join(cfg.left_out)}" if cfg.left_out else "")
    )
    files = list(write_table(rows, ["phase", "comparison"], metrics, report / "table2", title))
    for i, p in enumerate(run.cfg.phases):
        files.append(
            montage(
                _montage_rows(pairs, real, fake_u8, i),
                ["pre", "real post", "synthetic post", "real sub", "synthetic sub", "mask"],
                report / f"montage_phase{p}.png",
                f"{split}: post phase {p}, checkpoint epoch {epoch}",
            )
        )
    curves = K.box_curves(pairs, real, fake_u8)
    kin: dict = {"cases": 0}
    if curves:
        types = K.curve_types(curves)
        tr = K.truth_types(Path(truth), salt, list(curves), list(run.cfg.phases)) if truth else None
        kin = K.summary(curves, types, tr)
        # again on the acquisition's scale (each phase's normalisation undone, see kinetics)
        if windows := K.case_windows(ds, list(run.cfg.phases)):
            acq = K.box_curves(pairs, real, fake_u8, windows)
            kin["acquisition_scale"] = {
                k: v
                for k, v in K.summary(acq, K.curve_types(acq), tr).items()
                if k not in ("order_kept", "curve_types", "truth_types")
            }
        kin["curves"] = {
            c: {k: r[k].tolist() for k in ("real", "synthetic")} for c, r in curves.items()
        }
        files.append(K.cohort_figure(curves, list(run.cfg.phases), report / "kinetics_cohort.png"))
        files.append(K.case_figure(curves, list(run.cfg.phases), report / "kinetics_cases.png"))
        atomic_write_text(report / "kinetics.json", json.dumps(kin, indent=1))
        files.append(report / "kinetics.json")
    record = {
        "run": str(Path(run_dir).resolve()),
        "checkpoint_epoch": epoch,
        "split": split,
        "slices": len(pairs),
        "not_computed": cfg.left_out,
        "rows": rows,
        "lesion_contrast": lesion,
        "box_by_case": by_case,
        "kinetics": {k: v for k, v in kin.items() if k != "curves"},
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_text(report / "evaluation.json", json.dumps(record, indent=1, default=str))
    files.append(report / "evaluation.json")
    files.append(_markdown(report, run, epoch, split, rows, metrics, kin, cfg, lesion, by_case))
    return Evaluation(report, rows, kin, files)


def _markdown(report, run, epoch, split, rows, metrics, kin, cfg, lesion=None, by_case=None):
    sel = report / "selection.json"
    parts = [
        f"# Evaluation of `{run.path.name}`\n",
        f"Checkpoint: epoch {epoch}; split: {split}; phases {list(run.cfg.phases)}.",
    ]
    if cfg.left_out:
        parts.append(
            f"\n**Not computed** (configured without; their pretrained weights were not "
            f"provided): {', '.join(cfg.left_out)}.\n"
        )
    if sel.is_file():
        parts += [
            "\n## Checkpoint selection (Table 1, Figure 4a)\n",
            (report / "table1.md").read_text(),
            "\n![SAMe](same_bars.png)\n",
        ]
    parts += ["\n## Synthetic vs real (Table 2)\n", (report / "table2.md").read_text()]
    # the tumour-box rows depend on the box (SSIM most): say which one they used
    parts.append(f"\nTable 2's {box_description(cfg.box_min_px)}.")
    parts += _by_case_lines(by_case or {}) + _lesion_lines(lesion or {})
    parts.append("\n## Montages (Figures 5/6)\n")
    parts += [f"![phase {p}](montage_phase{p}.png)\n" for p in run.cfg.phases]
    if kin.get("cases"):
        parts += [
            "\n## Kinetics in the tumour box (Figures 7 and 8)\n",
            f"- cases: {kin['cases']}; synthetic curve keeps the real phase order in "
            f"{fmt(100 * kin['order_kept_fraction'])} % of cases",
        ]
        if "type_agreement_real_vs_synthetic" in kin:
            parts.append(
                "- Kuhl curve type, synthetic = real: "
                f"{fmt(100 * kin['type_agreement_real_vs_synthetic'])} %"
            )
        if "truth_cases" in kin:
            parts.append(
                f"- against the phantom's truth ({kin['truth_cases']} cases): real "
                f"{fmt(100 * kin['type_agreement_real_vs_truth'])} %, synthetic "
                f"{fmt(100 * kin['type_agreement_synthetic_vs_truth'])} %"
            )
        if "truth_cases" in (a := kin.get("acquisition_scale", {})):
            parts.append(
                "- on the acquisition's scale (each phase's normalisation window undone; the "
                "synthetic phase with its real phase's window), against the truth: real "
                f"{fmt(100 * a['type_agreement_real_vs_truth'])} %, synthetic "
                f"{fmt(100 * a['type_agreement_synthetic_vs_truth'])} %"
            )
        parts += ["\n![cohort](kinetics_cohort.png)\n", "![cases](kinetics_cases.png)\n"]
    parts.append(
        "\nMetrics: "
        + ", ".join(LABEL.get(m, m) for m in metrics)
        + " — mean ± std over slice pairs on the [0, 255] scale (see docs/evaluation.md)."
    )
    for f in sorted((report / SECTIONS).glob("*.md")):  # added by later stages
        parts.append(_section(f.stem, f.read_text()))
    atomic_write_text(report / "report.md", "\n".join(parts) + "\n")
    return report / "report.md"


def _by_case_lines(by_case: dict) -> list[str]:
    if not by_case:
        return []
    out = [
        "\n**Tumour box per case** (each case's box slices averaged; synthetic vs the baseline, "
        "both against real post; p: two-sided paired Wilcoxon over cases):\n",
        "| phase | metric | cases | synthetic | baseline | synthetic better | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, d in by_case.items():
        for m, r in d.items():
            out.append(
                f"| {p} | {LABEL.get(m, m)} | {r['cases']} | {fmt(r['synthetic'])} | "
                f"{fmt(r['baseline'])} | {r['synthetic_better']} of {r['cases']} | "
                f"{fmt_p(r['p'])} |"
            )
    return out


def _lesion_lines(lesion: dict) -> list[str]:
    rows = [(p, d) for p, d in lesion.items() if d.get("slices")]
    if not rows:
        return []
    d0 = rows[0][1]
    out = [
        "\n## Does the lesion stand out? (lesion vs its surroundings)\n",
        f"Lesion mean − mean of a {d0['ring_px']}-px ring around it, on the tumour slices whose "
        f"real lesion stands out by ≥ {d0['min_contrast']:g} grey levels; *kept*: the median "
        "of that contrast over the real image's (1: as conspicuous as the real lesion).\n",
        "| phase | slices | real | synthetic | pre | synthetic kept | pre kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, d in rows:
        out.append(
            f"| {p} | {d['slices']} | {fmt(d['real'])} | {fmt(d['synthetic'])} | {fmt(d['pre'])} "
            f"| {fmt(d['synthetic_kept'])} | {fmt(d['pre_kept'])} |"
        )
    return out


SECTIONS = "sections"


def _section(key: str, text: str) -> str:
    return f"<!-- section:{key} -->\n{text.rstrip()}\n<!-- /section:{key} -->"


def add_section(report: Path, key: str, text: str) -> Path:
    """Add (or replace) a section of ``report.md`` from a later stage (segmentation, trust).

    The text is kept in ``report/sections/<key>.md``, so the section survives a later
    ``dcectl evaluate``, and spliced into ``report.md`` between its markers now.
    """
    import re

    report = Path(report)
    atomic_write_text(report / SECTIONS / f"{key}.md", text)
    md = report / "report.md"
    old = md.read_text() if md.is_file() else ""
    block = _section(key, text)
    pattern = re.compile(
        rf"<!-- section:{re.escape(key)} -->.*?<!-- /section:{re.escape(key)} -->", re.S
    )
    new = (
        pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    )
    atomic_write_text(md, new.lstrip() + "\n")
    return md
