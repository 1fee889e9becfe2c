"""`dcectl phantom --out DIR`: generate a digital DCE breast phantom cohort (DICOM and/or NIfTI)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def phantom(
    out: Annotated[
        Path, typer.Option(help="Output directory (created; empty or holding this cohort).")
    ],
    config: Annotated[
        Path | None, typer.Option(help="PhantomConfig YAML; flags below override it.")
    ] = None,
    cases: Annotated[int | None, typer.Option(help="Number of cases [24].")] = None,
    seed: Annotated[int | None, typer.Option(help="Cohort seed [0].")] = None,
    matrix: Annotated[
        int | None, typer.Option(help="In-plane matrix; default drawn from 320/448/512.")
    ] = None,
    slices: Annotated[
        int | None, typer.Option(help="Slices per volume; default drawn from 144–176.")
    ] = None,
    post_phases: Annotated[int | None, typer.Option(help="Post-contrast phases, 1–4 [4].")] = None,
    fraction_3t: Annotated[float | None, typer.Option(help="Share of 3 T cases [0.5].")] = None,
    agent: Annotated[
        str | None, typer.Option(help="Contrast agent; default drawn per case.")
    ] = None,
    flip_angle: Annotated[
        float | None, typer.Option(help="Flip angle, degrees; default 10–15.")
    ] = None,
    tr: Annotated[float | None, typer.Option(help="Repetition time, ms; default 4–6.")] = None,
    snr: Annotated[float | None, typer.Option(help="Pre-contrast FGT SNR [40].")] = None,
    multifocal_fraction: Annotated[
        float | None, typer.Option(help="Share of multifocal cases [0.1].")
    ] = None,
    formats: Annotated[
        list[str] | None, typer.Option(help="dicom and/or nifti, repeatable [both].")
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = DEFAULT_WORKERS,
    preview: Annotated[
        bool, typer.Option(help="Write montage and kinetics PNGs to OUT/preview.")
    ] = False,
    preview_cases: Annotated[int, typer.Option(help="How many cases to preview.")] = 4,
) -> None:
    """Generate a phantom cohort; re-running completes an interrupted one and skips done cases."""
    from dcesynth.config import build_config
    from dcesynth.data.phantom import PhantomConfig, generate_cohort, write_previews

    with user_errors():
        if workers < 1:
            raise ValueError(f"`--workers` must be >= 1 (got {workers})")
        overrides = dict(
            cases=cases,
            seed=seed,
            matrix=matrix,
            slices=slices,
            post_phases=post_phases,
            fraction_3t=fraction_3t,
            agent=agent,
            flip_angle=flip_angle,
            tr=tr,
            snr=snr,
            multifocal_fraction=multifocal_fraction,
            formats=tuple(formats) if formats else None,
        )
        cfg = build_config(PhantomConfig, config, overrides)
        records = generate_cohort(cfg, out, workers=workers)
        if preview:
            write_previews(cfg, out, records[:preview_cases])
    typer.echo(f"{len(records)} cases in {out} (config fingerprint {cfg.fingerprint()})")
