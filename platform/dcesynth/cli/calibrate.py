"""`dcectl calibrate PRESET`: the phantom's conspicuity against the study's real-data baselines.

For each candidate ``tumour_pd``: the preset's phantom cohort → ingest → per-lesion CNR → the
segmentation cells pre→pre, post→post and post→pre with the preset's nnU-Net budget → both
Dice ratios beside the study's (0.72 and 0.21, ± 0.15), and the whole-slice baseline row.
Each candidate keeps its own folder, so an interrupted calibration resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def calibrate(
    preset: Annotated[
        Path,
        typer.Argument(
            help="Study preset YAML (its phantom, ingest and segmentation sections are used)."
        ),
    ] = Path("jobs/configs/study_phantom.yaml"),
    pd: Annotated[
        list[float] | None,
        typer.Option(
            "--pd", help="Candidate tumour_pd values (repeatable); default: the preset's."
        ),
    ] = None,
    cases: Annotated[
        int | None, typer.Option(help="Cohort size (default: the preset's); more test cases.")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="nnU-Net epochs per fold (default: the preset's). Another budget is reported "
            "as such and never merged with the preset's rows."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("calibration_out"),
    address: Annotated[str | None, typer.Option(help="Ray cluster (e.g. auto).")] = None,
) -> None:
    """Measure the phantom against the study's real-data baselines and print the table."""
    import os
    import time

    from dcesynth.cli.demo import stepped_console
    from dcesynth.cli.study import StudyPreset, _cohort, _configs
    from dcesynth.cluster import init_ray
    from dcesynth.config import build_config
    from dcesynth.segmentation import calibrate as C
    from dcesynth.segmentation.run import run_study

    console, step, t0 = stepped_console()
    with user_errors():
        p = build_config(StudyPreset, preset, {})
        cfg = _configs(p)
        values = list(pd) if pd else [cfg["phantom"].tumour_pd]
        if bad := [v for v in values if not 0 < v <= 3]:
            raise ValueError(f"--pd: tumour_pd must lie in (0, 3], got {bad}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"--epochs: must be ≥ 1, got {epochs}")
        if "nifti" not in cfg["phantom"].formats:
            raise ValueError(f"{preset}: phantom.formats must include nifti (CNR reads it)")
        root = out.resolve()
        init_ray(address, num_cpus=(os.cpu_count() or 1) + 2, log_to_driver=False)
        seg = cfg["segmentation"]
        preset_epochs = seg.epochs
        if epochs is not None:
            seg = seg.model_copy(update={"epochs": epochs})
        budget = (
            f"{seg.configuration}, {seg.folds} folds × {seg.epochs} epochs × "
            f"{seg.iterations_per_epoch} iterations"
            + (
                " (the preset's)"
                if seg.epochs == preset_epochs
                else f" ({seg.epochs / preset_epochs:g}× the preset's {preset_epochs} epochs)"
            )
        )
        results = []
        for v in values:
            t = time.perf_counter()
            folder = root / f"pd_{v:g}"
            pcfg = type(cfg["phantom"]).model_validate(
                {
                    **cfg["phantom"].model_dump(),
                    "tumour_pd": v,
                    **({"cases": cases} if cases else {}),
                }
            )
            step(f"tumour_pd {v:g}")
            _cohort(pcfg, cfg["ingest"], folder, step)
            cnr = C.summarise_cnr(C.cohort_cnr(folder / "phantom"))
            base, rescaled = C.baseline_rows(folder / "dataset")
            step(
                f"tumour_pd {v:g}: {cnr['lesions']} lesions, median CNR pre "
                f"{cnr['cnr_pre_median']:.2f}, post 1 {cnr['cnr_post1_median']:.2f}; "
                f"baseline SSIM {base['ssim']:.3f}"
            )
            scfg = seg.model_copy(
                update={
                    "dataset": folder / "dataset",
                    "out": folder,
                    "name": "calibration",
                    "synthetic": None,
                    **C.CALIBRATION_CELLS,
                }
            )
            scfg = type(seg).model_validate(scfg.model_dump())  # re-check the cells
            resume = (scfg.study_dir / "study.json").is_file()
            res = run_study(scfg, resume=resume, progress=False)
            r = C.ratios(res.cells)
            results.append(
                {
                    "tumour_pd": v,
                    "cnr": cnr,
                    "baseline": base,
                    "baseline_rescaled": rescaled,
                    "ratios": r,
                    "within": C.within(r),
                    "wall_s": time.perf_counter() - t,
                }
            )
            step(
                f"tumour_pd {v:g}: pre/post {r['pre_over_post']}, post→pre/post "
                f"{r['cross_over_post']} ({'within' if C.within(r) else 'outside'} ± "
                f"{C.TOLERANCE})"
            )
            # after every candidate, joined to earlier runs' in the same folder: nothing lost
            report = C.write(root, C.merge(root, results, budget), budget)
    console.print(report.read_text())
    console.print(f"calibration finished in {time.perf_counter() - t0:.0f} s; {report}")
