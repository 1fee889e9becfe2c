"""`dcectl bench predict`: `dcectl predict`'s Ray Data engine vs a plain loop on a folder of
phantom patients, and one patient's latency (registered on the `bench` group by
:mod:`dcesynth.cli.bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def bench_predict(
    patients: Annotated[int, typer.Option(help="Phantom patients in the folder.")] = 6,
    matrix: Annotated[int, typer.Option(help="In-plane matrix of the phantom volumes.")] = 128,
    slices: Annotated[int, typer.Option(help="Slices of each phantom volume.")] = 96,
    model: Annotated[
        Path | None,
        typer.Option(help="A model file (default: a small random pix2pixHD at the matrix)."),
    ] = None,
    batch: Annotated[int, typer.Option(help="Slices per forward pass.")] = 16,
    device: Annotated[
        str, typer.Option(help="auto (CPU, and GPU when present), cpu or cuda.")
    ] = "auto",
    latency: Annotated[
        bool, typer.Option(help="Also time `dcectl predict` of one patient (a fresh process).")
    ] = True,
) -> None:
    """s/folder and slices/s of `dcectl predict`'s Ray Data engine vs a plain loop; the
    one-patient latency (wall vs generator compute) of the default engine."""
    from rich.console import Console

    from dcesynth.cli.bench import _table
    from dcesynth.inference.bench import bench_predict as run

    with user_errors():
        if patients < 1 or matrix < 8 or slices < 1 or batch < 1:
            raise ValueError(
                f"--patients ≥ 1, --matrix ≥ 8, --slices ≥ 1, --batch ≥ 1; got {patients}, "
                f"{matrix}, {slices}, {batch}"
            )
        if device == "auto":
            import torch

            devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        elif device in ("cpu", "cuda"):
            devices = [device]
        else:
            raise ValueError(f"--device {device!r}: auto, cpu or cuda")
        r = run(patients, matrix, slices, model, devices, batch, latency)
    t = _table(
        f"{patients} phantom patients {matrix}² × {slices} (DICOM in, NIfTI + DICOM out) through "
        f"{r['generator']} at {r['size']}², batch {batch}; ratio = plain loop's time over Ray's",
        ("device", "way", "s / folder", "slices / s", "generator s", "ratio"),
    )
    for row in r["rows"]:
        dev = row["device"] + (" (bf16)" if row["device"] == "cuda" else "")
        t.add_row(
            dev,
            "Ray Data (dcectl predict)",
            f"{row['ray_s']:.1f}",
            f"{row['slices'] / row['ray_s']:.2f}",
            "",
            f"{row['plain_s'] / row['ray_s']:.2f}×",
        )
        t.add_row(
            dev,
            "plain PyTorch loop (--engine local)",
            f"{row['plain_s']:.1f}",
            f"{row['slices'] / row['plain_s']:.2f}",
            f"{row['compute_s']:.1f}",
            "1.00×",
        )
    con = Console(width=140)
    con.print(t)
    con.print(
        "Ray Data: --engine ray; plain loop: --engine local. "
        f"Ray start {r['ray_start']:.1f} s, not counted (a running cluster does not pay it). Both "
        "ways: find the patients, read and check, normalise, resize, generate, resize back, "
        "write; Ray Data's set-up and generator construction included."
    )
    if lat := r["latency"]:
        con.print(
            f"one patient ({matrix}² × {slices}, {lat['device']}), `dcectl predict` with "
            f"--engine auto (local) in a fresh process: wall {lat['cli_s']:.1f} s (interpreter "
            f"and imports included), generator {lat['cli_compute_s']:.1f} s, wall − generator "
            f"{lat['cli_s'] - lat['cli_compute_s']:.1f} s; in this process (imports paid): "
            f"{lat['wall_s']:.1f} s, generator {lat['compute_s']:.1f} s"
        )
