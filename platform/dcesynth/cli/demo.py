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
from dcesynth.cli.ui import NoTracking, TrackingUri


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
    tracking_uri: TrackingUri = None,
    no_tracking: NoTracking = False,
) -> None:
    """Run the study on the embedded phantom and print where the report is."""
    import time

    from rich.console import Console

    from dcesynth.progress import interactive
    from dcesynth.tracking import default_uri, fingerprints, track
    from dcesynth.tuning.sweep import ensure_ray

    console = Console(width=None if interactive() else 140)
    t0 = time.perf_counter()
    step = _stepper(console, t0)
    with user_errors():
        sweep_space = _space(space, out, gpus, concurrent)
        ensure_ray(sweep_space, address)  # one Ray for all stages, sized for the sweep
        # MLflow: one run for the demo in <out>/mlflow.db (`dcectl ui`), each stage nested
        with track(
            "demo",
            out.resolve().name,
            sweep_space,
            out,
            uri=tracking_uri,
            settings=sweep_space.base.tracking,
            off=no_tracking,
        ) as mt:
            cohort = _data(out, cases, matrix, slices, workers, step)
            mt.tags(fingerprints(out / "dataset", cohort))
            sweep_dir, best = _sweep(out, sweep_space, address, step, mt)
            report = _judge(sweep_dir, best, cohort, step, mt)
            if not (no_segment or segment is None):
                table3 = _segment(out, report, segment, step, mt)
            else:
                table3 = None
            local_store = mt.on and mt.target.uri == default_uri(out)
    _headline(console, sweep_dir, report, table3)
    run = report.parent.parent
    study = segment_dir(table3)
    for missing in missing_outputs(out, cases, sweep_dir.name, run.name, study, local_store):
        console.print(
            f"[yellow]warning:[/] the guides promise {missing}, the demo did not write it"
        )
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {report}")


def segment_dir(table3: Path | None) -> str | None:
    """The segmentation study's folder name (None: skipped), from its Table 3's path."""
    return None if table3 is None else table3.parent.parent.name


def outputs(
    out: Path = Path("demo_out"),
    cases: int = 10,
    sweep: str = "demo",
    trial: str = "<trial>",
    study: str | None = "demo",
    tracked: bool = True,
) -> list[Path]:
    """Every path `dcectl demo --out OUT` promises, the ones the guides name included.

    ``trial`` is the sweep trial the demo selected (``<trial>`` in the guides); ``study`` the
    segmentation study's name (None: ``--no-segment``); ``tracked``: the MLflow store under
    OUT (not with ``--no-tracking`` or another tracking URI). The demo warns about any it did not
    write; tests/test_docs.py checks that every ``demo_out/…`` path in README.md and docs/ is
    one of these or a folder above one.
    """
    from dcesynth.data.phantom.case import case_id

    cohort, dataset, sw = out / "phantom", out / "dataset", out / "sweeps" / sweep
    run = sw / "runs" / trial
    paths = [out / "mlflow.db", out / "mlartifacts"] if tracked else []
    paths += [cohort / f for f in ("phantom.json", "cohort.json", "clinical.csv")]
    paths += [cohort / f for f in ("identities.csv", "Annotation_Boxes.csv", "preview")]
    paths += [cohort / "ground_truth" / f"{case_id(i)}.json" for i in range(cases)]
    paths += [cohort / "dicom" / case_id(i) for i in range(cases)]
    paths += [cohort / "nifti" / "images" / case_id(i) for i in range(cases)]
    paths += [cohort / "nifti" / f for f in ("Annotation_Boxes.csv", "masks", "labels")]
    paths += [dataset / f for f in ("manifest.json", "cases.parquet", "ingest_report.json")]
    paths += [dataset / "slices", dataset / "volumes"]
    paths += [sw / f for f in ("space.yaml", "sweep_results.csv", "table1.md", "selection.json")]
    paths += [sw / "best_config.yaml", sw / "sweep_params.png"]
    paths += [run / f for f in ("config.yaml", "metrics.jsonl", "checkpoints")]
    report = run / "report"
    paths += [report / f for f in ("report.md", "table1.md", "table2.md", "evaluation.json")]
    paths += [report / "selection.json", report / "montage_phase1.png", report / "trust"]
    paths += [run / "synthetic" / "test"]
    if study is not None:
        seg = out / "segmentation" / study
        paths += [run / "synthetic" / "train", run / "synthetic" / "val"]
        paths += [seg / "study.json", seg / "results" / "table3.md", seg / "results" / "table3.png"]
    return paths


def missing_outputs(
    out: Path, cases: int, sweep: str, trial: str, study: str | None, tracked: bool = True
) -> list[Path]:
    """The promised outputs (:func:`outputs`) a finished demo in ``out`` lacks."""
    return [p for p in outputs(out, cases, sweep, trial, study, tracked) if not p.exists()]


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


def _sweep(out: Path, space, address, step, mt):
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
        with mt.child("sweep", space.name, space) as t:
            sweep(space, resume=resume, address=address, tracker=t)
    rows = list(csv.DictReader((sweep_dir / "sweep_results.csv").open()))
    best = json.loads((sweep_dir / "selection.json").read_text())["best"]
    stopped = sum(r["status"] == "stopped early" for r in rows)
    step(f"sweep: {len(rows)} trials, {stopped} stopped early by ASHA; best checkpoint {best}")
    return sweep_dir, best


def _judge(sweep_dir: Path, best: str, cohort: Path, step, mt) -> Path:
    from dcesynth.cli.evaluate import log_evaluation, log_selection, run_tracker
    from dcesynth.cli.trust import log_trust
    from dcesynth.evaluation.report import evaluate
    from dcesynth.evaluation.select import select_checkpoint
    from dcesynth.evaluation.synthesize import synthesize
    from dcesynth.trust.config import TrustConfig
    from dcesynth.trust.run import trust as run_trust
    from dcesynth.tuning.ranking import trial_scores
    from dcesynth.tuning.space import load_space

    space = load_space(sweep_dir / "space.yaml")
    run = sweep_dir / "runs" / best.split("/")[0]
    with run_tracker("select", run, space.evaluation, parent=mt) as t:
        # the sweep's ranking scored this trial's checkpoints already: Table 1 reuses them
        sel = select_checkpoint(run, space.evaluation, scores=trial_scores(run))
        log_selection(t, sel, run)
    step(f"select: {run.name}, epoch {sel.selected_epoch} (Table 1: {run / 'report/table1.md'})")
    syn = synthesize(run, "best", "test", device=space.evaluation.torch_device())
    step(f"synthesize: {len(syn.cases)} test cases → {syn.out}")
    truth = cohort / "ground_truth"
    with run_tracker("evaluate", run, space.evaluation, truth=truth, parent=mt) as t:
        ev = evaluate(run, space.evaluation, "best", "test", truth=truth)
        log_evaluation(t, ev)
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
    with run_tracker("trust", run, tcfg, truth=truth, parent=mt) as t:
        tr = run_trust(run, tcfg)
        log_trust(t, tr)
    step(f"trust: {tr.folder / 'trust.md'}")
    return ev.report / "report.md"


def _segment(out: Path, report: Path, config: Path, step, mt) -> Path:
    """Scenario(s) of the segmentation study with the selected checkpoint's synthetic volumes
    (every split: fold patients train on them); an interrupted study resumes."""
    from dcesynth.cli.segment import run_tracked
    from dcesynth.config import build_config
    from dcesynth.evaluation.synthesize import synthesize
    from dcesynth.segmentation.config import SegmentConfig

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
    res = run_tracked(cfg, step, mt, f" of nnU-Net → {cfg.study_dir}")
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
