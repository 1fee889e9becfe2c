"""`dcectl bench gpu`: training step, sampling, prediction and metrics on one GPU in one run
(registered on the `bench` group by :mod:`dcesynth.cli.bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def bench_gpu(
    out: Annotated[Path, typer.Option(help="Folder for bench_gpu.json and bench_gpu.md.")] = Path(
        "bench_out/gpu"
    ),
    cpu: Annotated[bool, typer.Option("--cpu", help="Run on the CPU (smaller sizes).")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="CI sizes: every section, tiny (~30 s on a CPU).")
    ] = False,
) -> None:
    """The study's training step at 256² and 512² (fp32, bf16, bf16 + channels-last,
    torch.compile; FLOP/s against the device's peak), the flow's sampling per step count,
    prediction throughput and the metric suite on GPU vs CPU: one JSON and one Markdown table."""
    from rich.console import Console
    from rich.markdown import Markdown

    from dcesynth.evaluation.bench_gpu import bench_gpu as run

    with user_errors():
        r = run(out, cpu=cpu, quick=quick)
    con = Console(width=150)
    con.print(Markdown((out / "bench_gpu.md").read_text()))
    con.print(f"{out / 'bench_gpu.json'}, {out / 'bench_gpu.md'} written in {r['wall_s']:.1f} s")
