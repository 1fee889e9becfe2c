"""`dcectl demo`: the whole study end to end on the embedded phantom.

phantom cohort → ingest (Ray tasks) → sweep (Ray Tune over Ray Train trials) → checkpoint
selection by SAMe → synthesis of the test split → evaluation report. A re-run reuses what is
complete and resumes an interrupted sweep. ``--address``/``--gpus``/``--concurrent`` take the
same command to a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.phantom import DEFAULT_WORKERS


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo_out"),
    space: Annotated[Path, typer.Option(help="Search space of the sweep.")] = Path(
        "search_spaces/demo.yaml"
    ),
    cases: Annotated[int, typer.Option(help="Phantom cases.")] = 10,
    matrix: Annotated[
        int, typer.Option(help="In-plane matrix of the phantom (160: lesions >= 6 px).")
    ] = 160,
    slices: Annotated[int, typer.Option(help="Slices per volume.")] = 24,
    workers: Annotated[int, typer.Option(help="Parallel processes (phantom).")] = DEFAULT_WORKERS,
    gpus: Annotated[bool, typer.Option("--gpus", help="Trials train on GPUs.")] = False,
    concurrent: Annotated[int | None, typer.Option(help="Trials at a time.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (e.g. auto).")] = None,
    segment: Annotated[
        Path | None,
        typer.Option(help="Segmentation study settings (Table 3); --no-segment skips it."),
    ] = Path("jobs/configs/segment_demo.yaml"),
    no_segment: Annotated[bool, typer.Option("--no-segment", help="Skip Table 3.")] = False,
) -> None:
    """Run the study on the embedded phantom and print where the report is."""
    import time

    from rich.console import Console

    from dcesynth.progress import interactive
    from dcesynth.tuning.sweep import ensure_ray

    console = Console(width=None if interactive() else 140)
    t0 = time.perf_counter()
    step = _stepper(console, t0)
    with user_errors():
        sweep_space = _space(space, out, gpus, concurrent)
        ensure_ray(sweep_space, address)  # one Ray for all stages, sized for the sweep
        cohort = _data(out, cases, matrix, slices, workers, step)
        sweep_dir, best = _sweep(out, sweep_space, address, step)
        report = _judge(sweep_dir, best, cohort, step)
        table3 = None if no_segment or segment is None else _segment(out, report, segment, step)
    _headline(console, sweep_dir, report, table3)
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {report}")


def _stepper(console, t0):
    import time

    def step(msg: str) -> None:
        console.print(f"[bold]{time.perf_counter() - t0:6.0f} s[/]  {msg}")

    return step


def stepped_console():
    """(console, step, t0) of a long command: ``step(msg)`` prints the seconds since t0 first.

    The console is as wide as the terminal, or 140 columns in a log.
    """
    import time

    from rich.console import Console

    from dcesynth.progress import interactive

    console = Console(width=None if interactive() else 140)
    t0 = time.perf_counter()
    return console, _stepper(console, t0), t0


def _data(out: Path, cases: int, matrix: int, slices: int, workers: int, step):
    from dcesynth.data.ingest import IngestConfig, ingest
    from dcesynth.data.phantom import PhantomConfig, generate_cohort, write_previews

    cfg = PhantomConfig(
        cases=cases,
        matrix=matrix,
        slices=slices,
        multifocal_fraction=0.15,
        multiphase_series_fraction=0.15,
        typo_fraction=0.1,
    )
    cohort = out / "phantom"
    step(f"phantom: {cases} cases of {matrix}² × {slices} (DICOM + NIfTI) → {cohort}")
    records = generate_cohort(cfg, cohort, workers=workers)
    write_previews(cfg, cohort, records[:2])
    dataset = out / "dataset"
    icfg = IngestConfig(
        image_size=matrix,
        phases=(1, 2, 3),
        selection="all",
        split={"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    )
    res = ingest(cohort / "dicom", dataset, icfg, workers=workers)
    step(f"ingest: {dataset} ({'up to date' if res.up_to_date else 'ingested'})")
    return cohort


def _space(space_file: Path, out: Path, gpus: bool, concurrent: int | None):
    """The demo's search space, pointed at the demo's dataset and folder; flags scale it up."""
    from dcesynth.tuning.space import load_space

    space = load_space(space_file)
    base = space.base.model_copy(
        update={"dataset": out / "dataset", "use_gpu": gpus or space.base.use_gpu}
    )
    update = {"base": base, "storage_path": out / "sweeps"}
    if concurrent:
        update["max_concurrent_trials"] = concurrent
    return space.model_copy(update=update)


def _sweep(out: Path, space, address, step):
    import csv
    import json
    import shutil

    from dcesynth.tuning.sweep import sweep

    base = space.base
    sweep_dir = out / "sweeps" / space.name
    if (sweep_dir / "sweep_results.csv").is_file():
        step(f"sweep: {sweep_dir} is complete; reusing it")
    else:
        resume = (sweep_dir / "tuner.pkl").is_file()
        if not resume and sweep_dir.exists():
            shutil.rmtree(sweep_dir)  # stopped before Tune saved any state: start over
        step(
            f"sweep: {space.num_samples} trials × {base.epochs} epochs → {sweep_dir}"
            + (" (resuming)" if resume else "")
        )
        sweep(space, resume=resume, address=address)
    rows = list(csv.DictReader((sweep_dir / "sweep_results.csv").open()))
    best = json.loads((sweep_dir / "selection.json").read_text())["best"]
    stopped = sum(r["status"] == "stopped early" for r in rows)
    step(f"sweep: {len(rows)} trials, {stopped} stopped early by ASHA; best checkpoint {best}")
    return sweep_dir, best


def _judge(sweep_dir: Path, best: str, cohort: Path, step) -> Path:
    from dcesynth.evaluation.report import evaluate
    from dcesynth.evaluation.select import select_checkpoint
    from dcesynth.evaluation.synthesize import synthesize
    from dcesynth.trust.config import TrustConfig
    from dcesynth.trust.run import trust as run_trust
    from dcesynth.tuning.space import load_space

    space = load_space(sweep_dir / "space.yaml")
    run = sweep_dir / "runs" / best.split("/")[0]
    sel = select_checkpoint(run, space.evaluation)
    step(f"select: {run.name}, epoch {sel.selected_epoch} (Table 1: {run / 'report/table1.md'})")
    syn = synthesize(run, "best", "test", device=space.evaluation.torch_device())
    step(f"synthesize: {len(syn.cases)} test cases → {syn.out}")
    ev = evaluate(run, space.evaluation, "best", "test", truth=cohort / "ground_truth")
    step(f"evaluate: {ev.report}")
    # the trust dimensions (dcectl trust) in the same report; Inception features only when the
    # evaluation has their weights, pixels otherwise; the ensemble: the sweep's best checkpoints
    tcfg = TrustConfig(
        features="fid_inception" if "fid_img" in space.evaluation.metrics else "pixels",
        truth=cohort / "ground_truth",
        clinical=cohort / "clinical.csv",
        ensemble="sweep",
        sweep=sweep_dir,
        device=space.evaluation.device,
    )
    tr = run_trust(run, tcfg)
    step(f"trust: {tr.folder / 'trust.md'}")
    return ev.report / "report.md"


def _segment(out: Path, report: Path, config: Path, step) -> Path:
    """Scenario(s) of the segmentation study with the selected checkpoint's synthetic volumes
    (every split: fold patients train on them); an interrupted study resumes."""
    from dcesynth.config import build_config
    from dcesynth.evaluation.synthesize import synthesize
    from dcesynth.segmentation.config import SegmentConfig
    from dcesynth.segmentation.run import run_study

    run = report.parent.parent
    cfg = build_config(
        SegmentConfig,
        config,
        {"dataset": str(out / "dataset"), "synthetic": str(run), "out": str(out / "segmentation")},
    )
    if (cfg.study_dir / "results" / "table3.md").is_file():
        step(f"segment: {cfg.study_dir} is complete; reusing it")
        return cfg.study_dir / "results" / "table3.md"
    for split in ("train", "val"):  # the test split was synthesized for the evaluation
        if not (run / "synthetic" / split / "synthesis.json").is_file():
            synthesize(run, "best", split)
    resume = (cfg.study_dir / "study.json").is_file()
    step(
        f"segment: scenarios {list(cfg.scenarios)}, sets {''.join(cfg.training_sets())}, "
        f"{cfg.folds} folds of nnU-Net → {cfg.study_dir}" + (" (resuming)" if resume else "")
    )
    res = run_study(cfg, resume=resume)
    step(f"segment: Table 3 in {res.path / 'results' / 'table3.md'} and in the report")
    return res.path / "results" / "table3.md"


def _headline(console, sweep_dir: Path, report: Path, table3: Path | None = None) -> None:
    import json

    ev = json.loads((report.parent / "evaluation.json").read_text())
    for r in ev["rows"]:
        if r["comparison"] in ("synthetic vs real", "baseline: real pre vs real post"):
            console.print(
                f"  phase {r['phase']} {r['comparison']:<32} "
                + "  ".join(f"{m} {r[m]['mean']:.3f}" for m in ("mae", "ssim", "psnr") if m in r)
            )
    kin = ev["kinetics"]
    if kin.get("cases"):
        console.print(
            f"  kinetics: phase order kept in {100 * kin['order_kept_fraction']:.0f} % "
            f"of {kin['cases']} test cases"
        )
    console.print(f"  sweep table: {sweep_dir / 'table1.md'}")
    if table3 is not None:
        for c in json.loads((table3.parent / "table3.json").read_text()):
            dice = f"Dice {c['mean']:.3f} ± {c['sd']:.3f} (n {c['n']})" if "mean" in c else "failed"
            console.print(
                f"  Table 3: scenario {c['scenario']} train {c['set']} test {c['test']}: {dice}"
            )
