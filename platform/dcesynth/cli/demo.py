"""`dcectl demo`: the end-to-end study on the embedded phantom.

Today: phantom cohort → previews → ingest (Ray tasks) → one Ray Data batch; the later stages
(sweep → select → synthesize → evaluate → report) join this same command as they land.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors
from dcesynth.cli.phantom import DEFAULT_WORKERS


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo_out"),
    cases: Annotated[int, typer.Option(help="Phantom cases.")] = 8,
    matrix: Annotated[int, typer.Option(help="In-plane matrix of the phantom.")] = 64,
    slices: Annotated[int, typer.Option(help="Slices per volume.")] = 24,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = DEFAULT_WORKERS,
) -> None:
    """Run the demo on the embedded phantom cohort and print where its outputs are."""
    import time

    from rich.console import Console
    from rich.table import Table

    from dcesynth.data.dataset import describe, read_split
    from dcesynth.data.ingest import IngestConfig, ingest
    from dcesynth.data.phantom import PhantomConfig, generate_cohort, write_previews

    t0 = time.perf_counter()
    with user_errors():
        cfg = PhantomConfig(
            cases=cases,
            matrix=matrix,
            slices=slices,
            multifocal_fraction=0.15,
            multiphase_series_fraction=0.15,
            typo_fraction=0.1,
        )
        cohort = out / "phantom"
        records = generate_cohort(cfg, cohort, workers=workers)
        previews = write_previews(cfg, cohort, records[:2])
        dataset = out / "dataset"
        icfg = IngestConfig(image_size=matrix, phases=(1, 2, 3), selection="all")
        res = ingest(cohort / "dicom", dataset, icfg, workers=workers)
        batch = next(iter(read_split(dataset, "train", seed=0).iter_torch_batches(batch_size=8)))
    table = Table(title=f"phantom cohort: {cohort}")
    for col in ("case", "scanner", "agent", "grid", "lesions", "index lesion", "curve", "BPE"):
        table.add_column(col)
    for r in records:
        p, les = r["protocol"], r["lesions"][r["index_lesion"]] if r["lesions"] else None
        table.add_row(
            r["case_id"],
            f"{p['field_t']} T {p['manufacturer'].split()[0]}",
            p["agent"],
            f"{p['matrix']}²×{p['slices']}",
            str(r["lesion_count"]),
            f"{les['diameter_mm']:.0f} mm {les['side']}" if les else "-",
            les["curve_type"] if les else "-",
            r["bpe"],
        )
    from dcesynth.progress import interactive

    console = Console(width=None if interactive() else 140)  # logs and CI get the whole table
    console.print(table)
    console.print(f"DICOM tree:  {cohort / 'dicom'}\nNIfTI tree:  {cohort / 'nifti'}")
    console.print(
        f"boxes:       {cohort / 'Annotation_Boxes.csv'}\nground truth: {cohort / 'ground_truth'}"
    )
    console.print("previews:    " + ", ".join(str(p) for p in previews))
    info = describe(dataset)
    console.print(
        f"dataset:     {dataset} ({'up to date' if res.up_to_date else 'ingested'}): "
        + ", ".join(
            f"{k} {v['cases']} cases / {v['slices']} slices"
            for k, v in sorted(info["splits"].items())
        )
    )
    console.print(
        "Ray Data batch: "
        + ", ".join(
            f"{k} {tuple(v.shape)} {v.dtype}"
            for k, v in batch.items()
            if k in ("pre", "post", "mask")
        )
        + f"; values in [{float(batch['pre'].min()):.2f}, {float(batch['pre'].max()):.2f}]"
    )
    console.print(f"demo finished in {time.perf_counter() - t0:.1f} s")
