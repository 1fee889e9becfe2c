"""`dcectl conspicuity FILE`: the reduced study at several conspicuity levels, one figure.

Per level (its own folder, so an interrupted experiment resumes): the preset's phantom with the
level's overrides → ingest → lesion CNR (measured) → the phase-1 run, its selection, synthesis
and evaluation (Table 2's tumour box) → the segmentation cells of scenarios 2 and 4 with the
preset's nnU-Net budget per fold → gains. Then ``conspicuity.{md,json,png}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcesynth.cli.errors import user_errors


def conspicuity(
    config: Annotated[Path, typer.Argument(help="Levels file (ConspicuityConfig YAML).")] = Path(
        "jobs/configs/conspicuity.yaml"
    ),
    out: Annotated[Path | None, typer.Option(help="Output folder (overrides the file).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (e.g. auto).")] = None,
) -> None:
    """Virtual contrast's gains against measured pre-contrast conspicuity (figure + table)."""
    import os
    import time

    from dcesynth.cli.demo import stepped_console
    from dcesynth.cli.study import StudyPreset, _configs
    from dcesynth.cluster import init_ray
    from dcesynth.config import build_config
    from dcesynth.data.phantom import PhantomConfig
    from dcesynth.segmentation import calibrate as C
    from dcesynth.segmentation import conspicuity as K
    from dcesynth.segmentation.run import run_study

    console, step, t0 = stepped_console()
    with user_errors():
        exp = build_config(K.ConspicuityConfig, config, {"out": str(out) if out else None})
        base = _configs(build_config(StudyPreset, exp.preset, {}))
        for lv in exp.levels:  # every level's phantom checked before any work
            PhantomConfig.model_validate({**base["phantom"].model_dump(), **lv.phantom})
        root = exp.out.resolve()
        init_ray(address, num_cpus=(os.cpu_count() or 1) + 2, log_to_driver=False)
        results = []
        for lv in exp.levels:
            if lv.study is not None:  # the same preset's finished study holds this level
                folder = lv.study.resolve()
                step(f"{lv.name}: from the finished study {folder}")
                cnr = C.summarise_cnr(C.cohort_cnr(folder / "phantom"))
                rows, cells = K.from_study(folder)
            else:
                folder = root / lv.name
                cnr, rows, cells = _level(lv, base, exp, folder, step, run_study)
            row = {
                "level": lv.name,
                "calibrated": lv.calibrated,
                "phantom": lv.phantom,
                **cnr,
                **K.box_gains(rows),
                **K.dice_gains(cells),
            }
            results.append(row)
            step(
                f"{lv.name}: CNR pre {cnr['cnr_pre_median']:.2f}; box SSIM gain "
                f"{row['box_ssim_gain']:+.3f}, S2 C−A {row['s2_C_minus_A']:+.3f}, "
                f"S4 E−D {row['s4_E_minus_D']:+.3f}"
            )
            report = K.write(root, results, time.perf_counter() - t0)
    console.print(report.read_text())
    console.print(f"conspicuity finished in {time.perf_counter() - t0:.0f} s; {report}")


def _level(lv, base: dict, exp, folder: Path, step, run_study) -> tuple[dict, list, list]:
    """Run one level: phantom → ingest → CNR → phase-1 run and its evaluation → scenarios 2, 4."""
    from dcesynth.cli.study import _cohort, _judge, _train
    from dcesynth.data.phantom import PhantomConfig
    from dcesynth.segmentation import calibrate as C

    pcfg = PhantomConfig.model_validate({**base["phantom"].model_dump(), **lv.phantom})
    step(f"{lv.name}: phantom {lv.phantom or '(the default)'}")
    _cohort(pcfg, base["ingest"], folder, step)
    cnr = C.summarise_cnr(C.cohort_cnr(folder / "phantom"))
    tcfg = base["phase1"].model_copy(
        update={"dataset": folder / "dataset", "runs_dir": folder / "runs"}
    )
    run = _train(tcfg, step)
    truth = folder / "phantom" / "ground_truth"
    ev = _judge(run, base["evaluation"], truth, ("train", "val", "test"), step)
    seg = base["segmentation"].model_copy(
        update={
            "dataset": folder / "dataset",
            "out": folder,
            "synthetic": run,
            "name": "segmentation",
            "scenarios": (2, 4),
            "sets": exp.sets,
            "folds": exp.folds,
        }
    )
    seg = type(seg).model_validate(seg.model_dump())
    res = run_study(seg, resume=(seg.study_dir / "study.json").is_file(), progress=False)
    return cnr, ev.rows, res.cells
