"""`dcectl bench train`: our pix2pixHD step against upstream's at equal settings (registered on
the `bench` group by :mod:`dcesynth.cli.bench`)."""

from __future__ import annotations

from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def bench_train(
    only: Annotated[
        list[str] | None,
        typer.Option(help="Settings NAME:SIZE:BATCH, e.g. small:64:4 (repeatable)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Timed steps per setting (after one warm-up).")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds per setting and side.")] = 1800,
) -> None:
    """s/step, images/s and peak memory of our pix2pixHD step vs upstream's (same maths)."""
    import os

    from rich.console import Console

    from dcesynth.cli.bench import _table
    from dcesynth.training import bench as B

    with user_errors():
        if steps < 1:
            raise ValueError(f"--steps must be ≥ 1, got {steps}")
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        settings = B.default_settings(device)
        if only:
            wanted = set()
            for o in only:
                try:
                    name, size, batch = o.split(":")
                    wanted.add((name, int(size), int(batch)))
                except ValueError:
                    raise ValueError(
                        f"--only {o!r}: use NAME:SIZE:BATCH, e.g. small:64:4"
                    ) from None
                if name not in ("small", "study"):
                    raise ValueError(f"--only {o!r}: NAME is small or study")
            settings = [s for s in settings if (s.name, s.size, s.batch) in wanted]
    threads = os.cpu_count() or 1 if device == "cpu" else 1
    console = Console(width=150)
    peak = B.peak_flops(device)
    matmul = None
    if device == "cpu":  # no data-sheet peak for a CPU: this machine's own matmul, measured now
        from dcesynth.evaluation.bench_gpu import matmul_flops
        from dcesynth.training.step import cpu_has_bf16

        matmul = matmul_flops("cpu", 2048, 1.0)
        console.print(
            f"2048² matmul on this CPU: fp32 {matmul['fp32_flops'] / 1e9:.1f} GFLOP/s, bf16 "
            f"{matmul['bf16_flops'] / 1e9:.1f} GFLOP/s (the ceiling the steps are given against)"
        )
    table = _table(
        f"pix2pixHD step on {device} ({threads} threads), {steps} timed steps; ratio = the "
        "row's s/step over ours (bf16 where the device has it)",
        ("setting", "side", "s/step", "images/s", "peak MiB", "GFLOP/step", "achieved", "ratio"),
    )
    sides: dict[str, dict[str, dict]] = {}  # setting → side → its measurement
    for s in settings:
        console.print(f"measuring {s.name} {s.size}² batch {s.batch}: {s.variant} …")
        r = B.run(s, device, steps, threads, timeout)
        label = f"{s.name} {s.size}² ×{s.batch}"
        if "error" in r:
            table.add_row(label, s.variant, r["error"], "", "", "", "", "")
            continue
        sides.setdefault(label, {})[s.variant] = r
        base = sides[label].get("ours")
        flops = r["flops"] or (base or {}).get("flops")
        achieved = flops / r["s_per_step"] if flops else None
        ach = f"{achieved / 1e9:.1f} GFLOP/s" if achieved else ""
        if achieved and peak:
            ach += f" ({100 * achieved / peak:.1f} % of peak)"
        if achieved and matmul:  # the step's precision: bf16 autocast unless fp32 or reference
            prec = (
                "fp32" if s.variant in ("ours fp32", "reference") or not cpu_has_bf16() else "bf16"
            )
            ach += f" ({100 * achieved / matmul[f'{prec}_flops']:.1f} % of {prec} matmul)"
        ratio = (
            f"{r['s_per_step'] / base['s_per_step']:.2f}×" if base and s.variant != "ours" else ""
        )
        table.add_row(
            label,
            s.variant,
            f"{r['s_per_step']:.3f}",
            f"{r['images_s']:.2f}",
            f"{r['peak_mib']:.0f}",
            f"{flops / 1e9:.1f}" if flops else "",
            ach,
            ratio,
        )
    console.print(table)
    # Which part of the gain is the step's mathematics and which is bf16: the same step in fp32.
    for label, t in sides.items():
        if {"reference", "ours fp32"} <= t.keys():
            gain = t["reference"]["s_per_step"] / t["ours fp32"]["s_per_step"]
            console.print(f"{label}: reference / ours fp32 = {gain:.2f}× (the step alone, no bf16)")
