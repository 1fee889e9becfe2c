"""`dcectl bench …`: speed and memory figures. Benchmarks print numbers; they are not tests."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli import bench_gpu, bench_predict, bench_sample, bench_train
from dcesynth.cli.errors import user_errors
from dcesynth.cli.phantom import DEFAULT_WORKERS

app = typer.Typer(help="Benchmarks: speed and memory figures (not tests).", no_args_is_help=True)


def _table(title: str, columns: tuple[str, ...]):
    """A rich table of right-aligned figures."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="right")
    return t


def _parse_size(text: str) -> tuple[int, int, int]:
    try:
        cases, matrix, slices = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} must be CASESxMATRIXxSLICES, e.g. 24x64x24") from None
    return cases, matrix, slices


def _run_cohort(size: tuple[int, int, int], out: str, workers: int, queue) -> None:
    """Child process: generate one cohort and report wall time and peak RSS (self + workers)."""
    import resource
    import time

    from dcesynth.data.phantom import PhantomConfig, generate_cohort

    cases, matrix, slices = size
    cfg = PhantomConfig(cases=cases, matrix=matrix, slices=slices)
    t0 = time.perf_counter()
    generate_cohort(cfg, Path(out), workers=workers, progress=False)
    wall = time.perf_counter() - t0
    kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    queue.put((wall, kib / 1024))


@app.command("phantom")
def bench_phantom(
    sizes: Annotated[
        list[str] | None, typer.Option("--size", help="CASESxMATRIXxSLICES, repeatable.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel processes per cohort.")] = DEFAULT_WORKERS,
    out: Annotated[Path, typer.Option(help="Scratch directory (removed unless --keep).")] = Path(
        "bench_out"
    ),
    keep: Annotated[bool, typer.Option(help="Keep the generated cohorts.")] = False,
) -> None:
    """Time and peak memory to generate phantom cohorts (default: 24×64²×24 and 4×512²×160)."""
    from rich.console import Console

    with user_errors():
        parsed = [_parse_size(s) for s in (sizes or ["24x64x24", "4x512x160"])]
    table = _table(
        f"phantom generation, {workers} worker process(es), DICOM + NIfTI",
        ("cases", "grid", "wall (s)", "s / case", "peak RSS / process (MiB)", "on disk (MiB)"),
    )
    ctx = mp.get_context("spawn")  # a fresh process per cohort: peak RSS is that cohort's alone
    for size in parsed:
        target = out / f"{size[0]}x{size[1]}x{size[2]}"
        shutil.rmtree(target, ignore_errors=True)
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_cohort, args=(size, str(target), workers, queue))
        proc.start()
        wall, peak = queue.get()
        proc.join()
        disk = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 2**20
        table.add_row(
            str(size[0]),
            f"{size[1]}²×{size[2]}",
            f"{wall:.1f}",
            f"{wall / size[0]:.2f}",
            f"{peak:.0f}",
            f"{disk:.0f}",
        )
        if not keep:
            shutil.rmtree(target, ignore_errors=True)
    Console().print(table)


@app.command("ingest")
def bench_ingest(
    cases: Annotated[int, typer.Option(help="Phantom cases.")] = 4,
    matrix: Annotated[int, typer.Option(help="In-plane matrix (and slice size).")] = 512,
    slices: Annotated[int, typer.Option(help="Slices per volume.")] = 64,
    workers: Annotated[
        int, typer.Option(help="CPUs for Ray and DataLoader workers.")
    ] = DEFAULT_WORKERS,
    batch_size: Annotated[int, typer.Option(help="Slices per torch batch.")] = 8,
    out: Annotated[Path, typer.Option(help="Scratch directory (cohort kept for re-runs).")] = Path(
        "bench_out"
    ),
) -> None:
    """A fresh `dcectl ingest` vs a plain script (two cohort sizes), then ingest + streaming vs
    the study's PNG-per-slice way, side by side on one cohort."""
    import ray
    from rich.console import Console

    from dcesynth.cluster import init_ray
    from dcesynth.data.ingest import IngestConfig, ingest
    from dcesynth.data.ingest.bench import (
        PeakMemory,
        ours_stream,
        race_the_script,
        study_read_pngs,
        study_write_pngs,
    )
    from dcesynth.data.phantom import PhantomConfig, generate_cohort

    cohorts = {}
    for n in sorted({max(1, cases // 2), cases}):  # two sizes: the fixed cost is the intercept
        cohorts[n] = out / f"cohort_{n}x{matrix}x{slices}"
        pcfg = PhantomConfig(cases=n, matrix=matrix, slices=slices, formats=("dicom", "nifti"))
        generate_cohort(pcfg, cohorts[n], workers=workers, progress=False)
    cohort = cohorts[cases]
    # first, before this process starts Ray: a fresh `dcectl ingest` against a plain script
    posts = list(range(1, PhantomConfig().post_phases + 1))
    race = race_the_script(list(cohorts.values()), out / "race", matrix, posts)
    phases = [1, 2, 3]
    dataset, pngs = out / "dataset", out / "png"
    for p in (dataset, pngs):
        shutil.rmtree(p, ignore_errors=True)
    keys = sorted(p.name for p in (cohort / "dicom").iterdir())
    study = study_write_pngs(cohort / "dicom", keys, pngs, phases)  # before Ray: memory is its own
    init_ray(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    icfg = IngestConfig(image_size=matrix, phases=tuple(phases), split={"ratios": {"train": 1.0}})
    with PeakMemory(include_ray=True) as mem:
        res = ingest(cohort / "dicom", dataset, icfg, progress=False)
    n_slices = sum(res.slices.values())
    # Two passes each: the first pays pipeline or worker start-up (once per epoch in training).
    reads = {
        name: [fn() for _ in range(2)]
        for name, fn in {
            "float": lambda: ours_stream(dataset, phases, batch_size, scale=True),
            "uint8": lambda: ours_stream(dataset, phases, batch_size, scale=False),
            "png": lambda: study_read_pngs(pngs, phases, batch_size, workers),
        }.items()
    }
    ray.shutdown()
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 2**20  # noqa: E731

    t = _table(
        f"{cases} cases × {matrix}² × {slices} slices, pre + {len(phases)} post phases, "
        f"{workers} CPUs",
        ("", "dcesynth", "study's way", "ratio (ours / study)"),
    )
    prep = [
        ("prepare: cases/s", cases / res.wall_s, cases / study.wall_s),
        ("prepare: slices/s", n_slices / res.wall_s, study.rate),
        ("prepare: peak PSS (MiB)", mem.peak_mib, study.peak_mib),
        *[
            (f"stream, {label}: slices/s, pass {i + 1}", reads[key][i].rate, reads["png"][i].rate)
            for key, label in (("float", "scaled in map_batches"), ("uint8", "uint8 + collate"))
            for i in range(2)
        ],
        ("on disk (MiB)", size(dataset), size(pngs)),
    ]
    for name, a, b in prep:
        t.add_row(name, f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}×")
    console = Console(width=140)
    console.print(_race_table(race, matrix, slices))
    console.print(t)
    console.print(
        "dcesynth's prepare also writes the normalised NIfTI volumes; its peak PSS counts the "
        "Ray runtime (driver, raylet, workers). Streams: Ray Data iter_torch_batches vs a "
        f"DataLoader over PNGs with {workers} workers; all yield float32 tensors in [-1, 1]. "
        "Pass 1 includes start-up, which each epoch pays again."
    )


def _race_table(race, matrix: int, slices: int):
    """`dcectl ingest` in a fresh process against the plain script (issue 22's targets)."""
    t = _table(
        f"a fresh `dcectl ingest` (no cluster named) vs a plain script (pydicom → min-max per "
        f"volume → uint8 .npy slices), {matrix}² × {slices} slices, pre + all posts",
        ("", *(f"{c} cases, {i} images" for c, i in zip(race.cases, race.images, strict=True))),
    )
    t.add_row("dcectl ingest, wall s", *(f"{w:.2f}" for w in race.ours_s))
    t.add_row("plain script, wall s", *(f"{w:.2f}" for w in race.script_s))
    ratios = [a / b for a, b in zip(race.ours_s, race.script_s, strict=True)]
    t.add_row("ratio (target ≤ 1.5×)", *(f"{r:.2f}×" for r in ratios))
    if len(race.cases) == 2:
        ours, script = race.fixed_s()
        t.caption = (
            f"fixed cost (intercept of wall time against cases): dcectl ingest {ours:.1f} s "
            f"(target ≤ 5 s), the script {script:.1f} s; both include the interpreter's start"
        )
    return t


@app.command("metrics")
def bench_metrics(
    pairs: Annotated[int, typer.Option(help="Image pairs.")] = 32,
    size: Annotated[int, typer.Option(help="Image side (the study: 512).")] = 512,
    batch: Annotated[int, typer.Option(help="Pairs per batch (ours).")] = 4,
    device: Annotated[str, typer.Option(help="cpu or cuda (ours).")] = "cpu",
) -> None:
    """Pairs/s of the batched paired metrics vs scikit-image/torchmetrics one pair at a time."""
    from rich.console import Console

    from dcesynth.evaluation.bench import bench_metrics as run

    with user_errors():
        rows = run(pairs, size, batch, device)
    table = _table(
        f"paired metrics, {pairs} pairs of {size}², ours on {device}, batch {batch}",
        ("metric", "ours (pairs/s)", "reference (pairs/s)", "ratio", "max |Δ|"),
    )
    for r in rows:
        table.add_row(
            r["metric"],
            f"{r['ours']:.1f}",
            f"{r['reference']:.1f}",
            f"{r['ratio']:.2f}×",
            f"{r['max_diff']:.2e}",
        )
    Console(width=120).print(table)


def _phantom_dataset(out: Path, dataset: Path, cases: int, matrix: int, slices: int) -> Path:
    """A phantom cohort ingested with the demo's split (60/20/20); reused when present."""
    from dcesynth.data.ingest import IngestConfig, ingest
    from dcesynth.data.phantom import PhantomConfig, generate_cohort

    cohort = out / f"cohort_{cases}x{matrix}x{slices}"
    generate_cohort(PhantomConfig(cases=cases, matrix=matrix, slices=slices), cohort)
    split = {"ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    icfg = IngestConfig(image_size=matrix, phases=(1, 2, 3), split=split)
    ingest(cohort / "nifti" / "images", dataset, icfg, progress=False)
    return dataset


@app.command("sweep")
def bench_sweep(
    trials: Annotated[int, typer.Option(help="Trials (a grid of learning rates).")] = 3,
    epochs: Annotated[int, typer.Option(help="Epochs per trial.")] = 2,
    cases: Annotated[int, typer.Option(help="Phantom cases (60% train, 20% val).")] = 10,
    matrix: Annotated[int, typer.Option(help="Image side.")] = 64,
    slices: Annotated[int, typer.Option(help="Slices per volume.")] = 24,
    space: Annotated[Path, typer.Option(help="Search space whose `base` the trials use.")] = Path(
        "search_spaces/demo.yaml"
    ),
    out: Annotated[Path, typer.Option(help="Scratch folder (reused).")] = Path("bench_out/sweep"),
) -> None:
    """Wall time of N trials through Ray Tune + Train vs the same trainings without Ray."""
    import time

    from rich.console import Console

    from dcesynth.tuning.bench import bench_space
    from dcesynth.tuning.bench import bench_sweep as run
    from dcesynth.tuning.space import load_space
    from dcesynth.tuning.sweep import ensure_ray

    with user_errors():
        if trials < 1 or epochs < 1:
            raise ValueError(f"--trials and --epochs must be ≥ 1, got {trials} and {epochs}")
        sp = load_space(space)
        dataset = out / "dataset"
        t0 = time.perf_counter()
        ensure_ray(bench_space(sp, dataset, out, trials, epochs))  # sized for the trials
        ray_start = time.perf_counter() - t0
        _phantom_dataset(out, dataset, cases, matrix, slices)
        r = run(sp, dataset, out, trials, epochs)
    r["ray_start"] = ray_start
    plain = sum(r["plain"])
    t = _table(
        f"{trials} trials × {epochs} epochs, {cases} phantom cases at {matrix}², one trial "
        f"at a time, {sp.base.workers} worker(s) each, CPU",
        ("", "seconds", "per trial", "ratio to no Ray"),
    )
    rows = [
        ("without Ray (same steps, 1 torch thread per worker)", plain),
        ("through Tune + Train (trials)", r["tune"]),
        ("  + Ray start and the final SAMe ranking", r["tune"] + r["ray_start"] + r["ranking"]),
    ]
    for name, s in rows:
        t.add_row(name, f"{s:.1f}", f"{s / trials:.1f}", f"{s / plain:.2f}×")
    console = Console(width=130)
    console.print(t)
    console.print(
        f"Ray start {r['ray_start']:.1f} s; ranking {r['ranking']:.1f} s; "
        f"platform overhead per trial {(r['tune'] - plain) / trials:.1f} s "
        "(Tune's trial actor, Train's controller and worker group processes, "
        f"DDP set-up, Ray Data, Tune's bookkeeping). {r['completed']}/{trials} trials completed."
    )


@app.command("segment")
def bench_segment(
    folds: Annotated[int, typer.Option(help="Folds of the one training set.")] = 2,
    training_set: Annotated[
        str, typer.Option("--set", help="Training set (real data: D, A, F).")
    ] = "D",
    cases: Annotated[int, typer.Option(help="Phantom cases (60% train, 20% val, 20% test).")] = 10,
    matrix: Annotated[int, typer.Option(help="In-plane matrix.")] = 64,
    slices: Annotated[int, typer.Option(help="Slices per volume.")] = 24,
    out: Annotated[Path, typer.Option(help="Scratch folder (reused).")] = Path("bench_out/segment"),
) -> None:
    """The study's Ray fan-out vs nnU-Net's CLI fold after fold (same data, 1 epoch of 250)."""
    from rich.console import Console

    from dcesynth.segmentation import bench as B

    with user_errors():
        if folds < 2:
            raise ValueError(f"--folds must be ≥ 2, got {folds}")
        if training_set not in ("A", "D", "F"):
            raise ValueError(f"--set {training_set!r}: use a set of real volumes: A, D or F")
        dataset = _phantom_dataset(out, out / "dataset", cases, matrix, slices)
        cfg = B.bench_config(dataset, out, folds, training_set)
        ours = B.ours(cfg)
    ref = B.cli_reference(ours["study"], cfg, out)
    t = _table(
        f"set {training_set}, {folds} folds × 1 epoch of 250 iterations, {cases} phantom cases "
        f"at {matrix}², CPU",
        ("stage", "Ray fan-out (s)", "nnU-Net CLI, fold after fold (s)", "ratio"),
    )
    for stage, label in (("plan", "plan + preprocess"), ("fold", "folds"), ("predict", "predict")):
        t.add_row(
            label, f"{ours[stage]:.1f}", f"{ref[stage]:.1f}", f"{ref[stage] / ours[stage]:.2f}×"
        )
    comparable = ours["plan"] + ours["fold"] + ours["predict"]
    t.add_row(
        "plan → predict",
        f"{comparable:.1f}",
        f"{ref['total']:.1f}",
        f"{ref['total'] / comparable:.2f}×",
    )
    t.add_row("whole study (Ray start, N4 + crop, scoring)", f"{ours['total']:.1f}", "", "")
    con = Console(width=130)
    con.print(t)
    con.print(
        f"fold overlap: {ours['overlap']:.2f} (sum of fold times {ours['fold_sum']:.1f} s over "
        f"their span {ours['fold']:.1f} s; the CLI's folds: "
        + ", ".join(f"{s:.1f}" for s in ref["folds"])
        + f" s, overlap 1.00). Ensemble Dice (ours): {ours['dice']:.3f}."
    )


app.command("train")(bench_train.bench_train)
app.command("predict")(bench_predict.bench_predict)
app.command("sample")(bench_sample.bench_sample)
app.command("gpu")(bench_gpu.bench_gpu)
