"""`dcectl bench sample`: seconds per slice of the rectified flow's sampling per step count
against pix2pixHD's single forward pass (registered on the `bench` group by
:mod:`dcesynth.cli.bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def bench_sample(
    size: Annotated[int, typer.Option(help="Slice side (the study: 512).")] = 256,
    slices: Annotated[int, typer.Option(help="Slices timed.")] = 8,
    steps: Annotated[str, typer.Option(help="The flow's step counts, comma-separated.")] = "1,4,8",
    samples: Annotated[int, typer.Option(help="The flow's K samples per slice.")] = 1,
    batch: Annotated[int, typer.Option(help="Slices per call.")] = 4,
    device: Annotated[str, typer.Option(help="cpu or cuda (auto: cuda when present).")] = "auto",
    flow_model: Annotated[
        Path | None, typer.Option(help="A rectified-flow model file (default: its defaults).")
    ] = None,
    gan_model: Annotated[
        Path | None, typer.Option(help="A pix2pixHD model file (default: the study's size).")
    ] = None,
) -> None:
    """Sampling cost per slice: the flow's steps vs pix2pixHD's one forward pass."""
    from rich.console import Console

    from dcesynth.cli.bench import _table
    from dcesynth.config import resolve_device
    from dcesynth.inference.bench_sample import bench_sample as run

    with user_errors():
        try:
            counts = [int(s) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--steps {steps!r}: comma-separated integers, e.g. 1,4,8") from None
        if not counts or min(counts) < 1 or min(size, slices, samples, batch) < 1:
            raise ValueError("--steps, --size, --slices, --samples and --batch must be ≥ 1")
        r = run(size, slices, counts, samples, resolve_device(device), batch, flow_model, gan_model)
    t = _table(
        f"{slices} random slices of {r['size']}² on {r['device']} (fp32), after one warm-up",
        ("generator", "network evaluations / slice", "s / slice", "× pix2pixHD"),
    )
    for row in r["rows"]:
        t.add_row(
            row["generator"],
            str(row["nfe"]),
            f"{row['s_per_slice']:.4f}",
            f"{row['vs_pix2pixhd']:.2f}",
        )
    Console(width=130).print(t)
