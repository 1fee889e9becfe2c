"""`dcectl ingest SOURCE --out DATASET`: a DICOM or NIfTI cohort → a prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def ingest(
    source: Annotated[
        Path,
        typer.Argument(
            help="Any folder of DICOM files (cases by PatientID, any layout) or a NIfTI tree."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Dataset directory to write (new, or this dataset).")],
    config: Annotated[
        Path | None, typer.Option(help="IngestConfig YAML; flags override it.")
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(help="auto | dicom | nifti [auto: DICOM if SOURCE has any, else NIfTI]."),
    ] = None,
    boxes: Annotated[
        Path | None, typer.Option(help="Annotation_Boxes .csv/.xlsx [found beside].")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Folder of <case>.nii.gz masks [found beside].")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Square slice size [512].")] = None,
    phases: Annotated[
        str | None, typer.Option(help="Post phases to keep, e.g. 1,2,3 [1,2,3].")
    ] = None,
    frames: Annotated[
        str | None,
        typer.Option(
            help="One-series dynamic acquisitions: frame indices that become pre, post 1, "
            "…, e.g. 0,5,10,15."
        ),
    ] = None,
    frame_times_s: Annotated[
        str | None,
        typer.Option(help="Like --frames, by seconds after the first frame, e.g. 0,60,120,180."),
    ] = None,
    selection: Annotated[str | None, typer.Option(help="all | tumour (± margin) [all].")] = None,
    normalisation: Annotated[
        str | None, typer.Option(help="minmax | percentile | zscore [minmax].")
    ] = None,
    split_file: Annotated[
        Path | None, typer.Option(help="CSV case,split or JSON {case: split}.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Split seed [0].")] = None,
    salt: Annotated[
        str | None, typer.Option(help="Pseudonym salt (keep it secret for real data).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="CPUs of the local Ray instance or process pool [all].")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto).")] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="ray, local (a process pool) or auto: Ray when a cluster is named or Ray "
            "already runs, local processes otherwise (no Ray start-up); same dataset either way."
        ),
    ] = "auto",
) -> None:
    """Prepare a cohort: per-volume normalisation, square slices, patient-level splits."""
    from dcesynth.config import build_config
    from dcesynth.data.ingest import IngestConfig
    from dcesynth.data.ingest import ingest as run_ingest

    with user_errors():
        # only the split keys given here; build_config merges them into the file's split
        split = {
            k: v
            for k, v in (("file", split_file and str(split_file)), ("seed", seed))
            if v is not None
        }
        phase_tuple = _numbers("--phases", phases, int)
        overrides = dict(
            frames=_numbers("--frames", frames, int),
            frame_times_s=_numbers("--frame-times-s", frame_times_s, float),
            format=format,
            boxes=boxes,
            masks=masks,
            image_size=image_size,
            phases=phase_tuple,
            selection=selection,
            normalisation=normalisation,
            salt=salt,
            split=split or None,
        )
        cfg = build_config(IngestConfig, config, overrides)
        res = run_ingest(source, out, cfg, workers=workers, address=address, engine=engine)
    for note in res.notes:
        typer.echo(note)
    if res.up_to_date:
        typer.echo(f"{out} is up to date: nothing to do")
        return
    typer.echo(
        f"{sum(res.cases.values())} cases, {sum(res.slices.values())} slices in {out} "
        f"({res.wall_s:.1f} s): " + ", ".join(f"{k} {v}" for k, v in sorted(res.cases.items()))
    )
    for s in res.skipped:
        typer.echo(f"skipped {s['error']}", err=True)
    if res.ignored:
        typer.echo(f"{len(res.ignored)} files or series left out: see {out}/ingest_report.json")


def _numbers(flag: str, text: str | None, kind: type) -> tuple | None:
    """``"0,5,10"`` → ``(0, 5, 10)``; errors name the flag."""
    from dcesynth.config import ConfigError

    if not text:
        return None
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ConfigError(f"command line: `{flag}`: comma-separated {what}, got {text!r}") from None
