"""`dcectl challenge prepare|dataset|predict|evaluate|container`: the MAMA-SYNTH benchmark's
task, training data in its contract, its metrics and its submission container
(dcesynth.challenge)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import err_console, user_errors

app = typer.Typer(
    help="MAMA-SYNTH challenge: prepare its 2D task, score predictions, package a submission.",
    no_args_is_help=True,
)


@app.command("prepare")
def prepare(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="NIFTI_DIR",
            help="MAMA-MIA layout (images/<pid>/<pid>_000k.nii.gz, segmentations/expert/) or a "
            "phantom's nifti/ folder.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The task folder to write.")],
    zscore: Annotated[
        str,
        typer.Option(
            help="challenge (the official constants) or train (computed on the training split)."
        ),
    ] = "challenge",
    seed: Annotated[int, typer.Option(help="Patient split seed.")] = 0,
) -> None:
    """One z-scored 2D pre/target slice pair per case, laid out as the official preprocessing."""
    from rich.console import Console
    from rich.table import Table

    from dcesynth.challenge.prepare import CHALLENGE_ZSCORE
    from dcesynth.challenge.prepare import prepare as run_prepare

    t0 = time.perf_counter()
    with user_errors():
        if zscore not in ("challenge", "train"):
            raise ValueError(f"--zscore {zscore!r}: expected challenge or train")
        manifest = run_prepare(source, out, CHALLENGE_ZSCORE if zscore == "challenge" else "train",
                               seed=seed)  # fmt: skip
    wall = time.perf_counter() - t0
    table = Table(title=f"MAMA-SYNTH task → {out}")
    for col in ("case", "split", "pre", "target", "axis", "slice", "shape"):
        table.add_column(col)
    for c in manifest["cases"]:
        table.add_row(c["patient_id"], manifest["splits"][c["patient_id"]], str(c["pre_phase"]),
                      str(c["target_phase"]), str(c["axis"]), str(c["slice_index"]),
                      "×".join(map(str, c["shape"])))  # fmt: skip
    for s in manifest["skipped"]:
        table.add_row(s["patient_id"], "[red]skipped[/]", "", "", "", "", "")
    Console(width=160).print(table)
    for s in manifest["skipped"]:
        err_console.print(f"[bold yellow]skipped:[/] {s['patient_id']}: {s['reason']}",
                          highlight=False, soft_wrap=True)  # fmt: skip
    z = manifest["zscore"]
    typer.echo(
        f"{len(manifest['cases'])} case(s) prepared, {len(manifest['skipped'])} skipped, "
        f"z-score mean {z['mean']:.6g} std {z['std']:.6g} ({z['source']}), {wall:.1f} s"
    )


@app.command("dataset")
def dataset(
    task: Annotated[Path, typer.Argument(metavar="TASK_DIR", help="A `challenge prepare` folder.")],
    out: Annotated[Path, typer.Option("--out", help="The prepared dataset to write.")],
    image_size: Annotated[
        int | None, typer.Option(help="Square side (default: largest slice side, rounded to 16).")
    ] = None,
    window: Annotated[
        tuple[float, float] | None,
        typer.Option(help="Z-score window LO HI mapped to [0, 255] (default: the train split's)."),
    ] = None,
) -> None:
    """The task's z-scored slices as a dataset `dcectl train` and `sweep` read (fixed window)."""
    from dcesynth.challenge.dataset import build

    t0 = time.perf_counter()
    with user_errors():
        m = build(task, out, image_size, window)
    lo, hi = m["options"]["window"]
    split = ", ".join(f"{k} {v}" for k, v in m["counts"]["cases"].items())
    typer.echo(f"{out}: {split} case(s), {m['image_size']}², z-score window [{lo:.4g}, {hi:.4g}]"
               f" → [0, 255] ({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    typer.echo(f"train: dcectl train dataset={out} phases=[1] …")


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="A model file (`dcectl export`).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <case>.mha predictions.")],
    task: Annotated[
        Path | None, typer.Option(help="A `challenge prepare` folder: its mha/input slices.")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only this split of --task (e.g. test).")
    ] = None,
    input_dir: Annotated[
        Path | None, typer.Option("--input", help="Any folder of z-scored <case>.mha slices.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Predictions for a folder of challenge inputs, in the layout `challenge evaluate` scores."""
    from dcesynth.challenge.entrypoint import predict_folder
    from dcesynth.config import resolve_device

    t0 = time.perf_counter()
    with user_errors():
        if (task is None) == (input_dir is None):
            raise ValueError("give exactly one of --task TASK_DIR or --input DIR")
        cases = None
        if task is not None:
            input_dir = task / "mha" / "input"
            cases = None if split is None else _split_cases(task, split)
        elif split is not None:
            raise ValueError("--split needs --task")
        written = predict_folder(input_dir, out, model, resolve_device(device), cases)
    typer.echo(f"{len(written)} prediction(s) → {out} ({time.perf_counter() - t0:.1f} s)")


@app.command("evaluate")
def evaluate(
    predictions: Annotated[Path, typer.Option(help="Folder of predicted <case>.mha slices.")],
    out: Annotated[Path, typer.Option("--out", help="metrics.json to write.")],
    ground_truth: Annotated[
        Path | None, typer.Option(help="Folder of real target <case>.mha slices.")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Folder of tumour masks (prepare's mha/mask/).")
    ] = None,
    task: Annotated[
        Path | None,
        typer.Option(help="A `challenge prepare` folder: its ground truth and masks."),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Score only this split of --task (e.g. test).")
    ] = None,
    precontrast: Annotated[
        Path | None, typer.Option(help="Pre-contrast inputs (auroc_contrast).")
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option(help="The organisers' models (classification/*.pkl, segmentation/)."),
    ] = None,
    lpips_weights: Annotated[
        str,
        typer.Option(
            help="AlexNet backbone for LPIPS: a file, 'registry' (weights lpips_alexnet) or 'none'."
        ),
    ] = "registry",
    trust_pickles: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-pickles",
            help="sha256 of a pickle you vouch for (classifier .pkl, nnU-Net checkpoint); "
            "repeatable. Untrusted pickles are never loaded.",
        ),
    ] = None,
    weights_dir: Annotated[
        Path | None, typer.Option(help="Where the weights registry looks.")
    ] = None,
    seg_fold: Annotated[int, typer.Option(help="nnU-Net fold (official default 0).")] = 0,
) -> None:
    """The official metrics and metrics.json, with error rows and every metric not computed.

    Exit status 1 when some cases are error rows (metrics.json is written), 2 on bad input.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from dcesynth.challenge.evaluate import evaluate as run_evaluate
    from dcesynth.challenge.metrics import write_metrics
    from dcesynth.challenge.models import parse_trusted

    with user_errors():
        ground_truth, masks, cases = _task_folders(task, split, ground_truth, masks)
        trusted = parse_trusted(trust_pickles or [])
        res = run_evaluate(predictions, ground_truth, masks, precontrast, models,
                           lpips_weights, weights_dir, trusted, seg_fold,
                           cases=cases)  # fmt: skip
        write_metrics(out, res.document)
    doc = res.document
    table = Table(title=f"MAMA-SYNTH metrics → {out}")
    for col in ("metric", "mean", "std", "cases"):
        table.add_column(col)
    for k, v in doc["aggregates"].items():
        std = v.get("std")
        table.add_row(k, f"{v['mean']:.6g}", "" if std is None else f"{std:.4g}",
                      f"{v['n']} of {doc['n_cases']}")  # fmt: skip
    Console(width=160).print(table)
    for cid, row in doc["case"].items():
        if "error" in row:
            err_console.print(f"[bold red]error:[/] {escape(cid)}: {escape(row['error'])}",
                              highlight=False, soft_wrap=True)  # fmt: skip
    for n in doc["not_computed"]:
        err_console.print(f"[yellow]not computed:[/] {n['metric']}: {escape(n['reason'])}",
                          highlight=False, soft_wrap=True)  # fmt: skip
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items())
    typer.echo(
        f"{doc['n_cases']} case(s), {doc['n_errors']} error row(s), "
        f"{len(doc['not_computed'])} not computed; {res.wall_s:.1f} s ({timing})"
    )
    if doc["n_errors"]:
        raise typer.Exit(code=1)


def _split_cases(task: Path, split: str) -> list[str]:
    from dcesynth.challenge.dataset import load_prepared

    splits = load_prepared(task)["splits"]
    cases = sorted(c for c, s in splits.items() if s == split)
    if not cases:
        raise ValueError(f"--split {split!r}: {task} has splits {sorted(set(splits.values()))}")
    return cases


def _task_folders(task, split, ground_truth, masks) -> tuple[Path, Path, list[str] | None]:
    """--task/--split, or --ground-truth and --masks: the folders and cases to score."""
    if task is None:
        if split is not None:
            raise ValueError("--split needs --task")
        if ground_truth is None or masks is None:
            raise ValueError("give --task TASK_DIR, or both --ground-truth and --masks")
        return ground_truth, masks, None
    gt = ground_truth or task / "mha" / "ground_truth"
    return gt, masks or task / "mha" / "mask", None if split is None else _split_cases(task, split)


@app.command("container")
def container(
    model: Annotated[Path, typer.Argument(help="A model file (`dcectl export`).")],
    out: Annotated[Path, typer.Option("--out", help="The build context folder to create.")],
) -> None:
    """A Docker build context implementing the submission contract (docker build not run)."""
    from dcesynth.challenge.container import build_context

    with user_errors():
        res = build_context(model, out)
    typer.echo(f"{res['out']}: {', '.join(res['files'])} ({res['sources']} source files)")
    typer.echo(f"pinned: {' '.join(res['requirements'])}")
    typer.echo(f"build: docker build --platform=linux/amd64 -t dcesynth-mama {res['out']}")
