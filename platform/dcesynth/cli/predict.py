"""`dcectl export RUN`, `dcectl model info MODEL`, `dcectl predict MODEL INPUT`: a trained
generator as one file, and synthetic DCE phases for new patients from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import err_console, user_errors

model_app = typer.Typer(help="Model artefacts (`dcectl export`).", no_args_is_help=True)


def export(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    out: Annotated[Path, typer.Option("--out", help="The model file to write.")],
    checkpoint: Annotated[str, typer.Option(help="best, last or an epoch.")] = "best",
    dataset: Annotated[Path | None, typer.Option(help="Prepared dataset, if it moved.")] = None,
) -> None:
    """Write a run's generator as one self-describing, checksummed model file."""
    from dcesynth.evaluation.export import export_run

    with user_errors():
        desc = export_run(run, out, checkpoint, dataset)
    typer.echo(
        f"{out}: epoch {desc['run']['epoch']}, phases {desc['phases']}, "
        f"weights sha256 {desc['checksums']['weights_sha256'][:16]}…"
    )


@model_app.command("info")
def info(model: Annotated[Path, typer.Argument(help="A model file (`dcectl export`).")]) -> None:
    """What a model file holds, its checksums verified."""
    from dcesynth.inference.artifact import load_artifact, summary

    with user_errors():
        art = load_artifact(model)
    width = max(len(k) for k, _ in summary(art.description))
    for k, v in summary(art.description):
        typer.echo(f"{k:<{width}}  {v}")
    typer.echo(f"{'checksums':<{width}}  verified")


def _phases(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--phases {text!r}: post-phase numbers, e.g. 1,3") from None


def predict(
    model: Annotated[Path, typer.Argument(help="A model file (`dcectl export`).")],
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="A pre-contrast DICOM series or folder, a NIfTI file, or a folder of patients.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (one per patient).")],
    phases: Annotated[
        str | None, typer.Option(help="Post phases to write, e.g. 1,3 (default: all).")
    ] = None,
    deidentify: Annotated[
        bool, typer.Option("--deidentify", help="No identifying values in the outputs.")
    ] = False,
    salt: Annotated[str, typer.Option(help="Pseudonym salt (with --deidentify).")] = "dcesynth",
    dicom: Annotated[bool, typer.Option(help="Also write DICOM series (DICOM inputs).")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch: Annotated[int, typer.Option(help="Slices per forward pass.")] = 16,
    actors: Annotated[
        int,
        typer.Option(help="Generator actors (GPUs with cuda); 0: from the cluster's resources."),
    ] = 1,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="ray (Ray Data: many patients, clusters), local (this process, no Ray) or "
            "auto (local for one or two patients without --address, else ray)."
        ),
    ] = "auto",
) -> None:
    """Synthetic post-contrast and subtraction volumes on each input's own grid.

    Exit status 1 when some patients failed (the others are written), 2 when nothing could run.
    """
    from dcesynth.config import resolve_device
    from dcesynth.inference.predict import predict as run_predict

    with user_errors():
        # on a cluster the GPUs may be on the workers only: the engine checks the cluster's
        dev = device if address and device == "cuda" else resolve_device(device)
        res = run_predict(
            model,
            source,
            out,
            phases=_phases(phases),
            deidentify=deidentify,
            salt=salt,
            dicom=dicom,
            device=dev,
            batch=batch,
            actors=actors,
            address=address,
            engine=engine,
        )
    for key, folder in res.done.items():
        typer.echo(f"{key} → {folder}")
    for key, why in res.failed.items():
        err_console.print(f"[bold red]failed:[/] {key}: {why}", highlight=False, soft_wrap=True)
    typer.echo(
        f"{len(res.done)} patient(s) written, {len(res.failed)} failed, {res.slices} slices "
        f"in {res.wall_s:.1f} s → {out}"
    )
    if res.failed:
        raise typer.Exit(code=1 if res.done else 2)
