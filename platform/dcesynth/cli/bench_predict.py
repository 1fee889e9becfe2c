"""`dcectl bench predict`: the Ray Data inference path vs a plain PyTorch loop (registered on
the `bench` group by :mod:`dcesynth.cli.bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def bench_predict(
    matrix: Annotated[int, typer.Option(help="In-plane matrix of the phantom volume.")] = 512,
    slices: Annotated[int, typer.Option(help="Slices of the phantom volume.")] = 160,
    model: Annotated[
        Path | None,
        typer.Option(help="A model file (default: a small random pix2pixHD at the matrix)."),
    ] = None,
    batch: Annotated[int, typer.Option(help="Slices per forward pass.")] = 16,
    device: Annotated[
        str, typer.Option(help="auto (CPU, and GPU when present), cpu or cuda.")
    ] = "auto",
) -> None:
    """Slices/s and s/volume of `dcectl predict`'s generator path vs a plain PyTorch loop."""
    from rich.console import Console

    from dcesynth.cli.bench import _table
    from dcesynth.inference.bench import bench_predict as run

    with user_errors():
        if matrix < 8 or slices < 1 or batch < 1:
            raise ValueError(
                f"--matrix ≥ 8, --slices ≥ 1, --batch ≥ 1; got {matrix}, {slices}, {batch}"
            )
        if device == "auto":
            import torch

            devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        elif device in ("cpu", "cuda"):
            devices = [device]
        else:
            raise ValueError(f"--device {device!r}: auto, cpu or cuda")
        r = run(matrix, slices, model, devices, batch)
    t = _table(
        f"one phantom volume {matrix}² × {slices} through {r['generator']} at {r['size']}², "
        f"batch {batch}; ratio = plain loop's time over Ray's",
        ("device", "way", "s / volume", "slices / s", "ratio"),
    )
    for row in r["rows"]:
        dev = row["device"] + (" (bf16)" if row["device"] == "cuda" else "")
        for way, s in (
            ("Ray Data (dcectl predict)", row["ray_s"]),
            ("plain PyTorch loop", row["plain_s"]),
        ):
            ratio = f"{row['plain_s'] / row['ray_s']:.2f}×" if way.startswith("Ray") else ""
            t.add_row(dev, way, f"{s:.1f}", f"{slices / s:.2f}", ratio)
    con = Console(width=130)
    con.print(t)
    con.print(
        f"Ray start {r['ray_start']:.1f} s, not counted (a running cluster does not pay it). Both "
        "ways: read, normalise, resize, generate, resize back; generator construction included."
    )
