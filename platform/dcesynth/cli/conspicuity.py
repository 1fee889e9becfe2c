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
            folder = lv.study.resolve() if lv.study is not None else root / lv.name
            if lv.study is not None:  # the same preset's finished study holds this level
                step(f"{lv.name}: from the finished study {folder}")
            elif K.finished(folder):  # an earlier invocation finished it: read, not re-run
                step(f"{lv.name}: finished earlier, read from {folder}")
            else:
                _level(lv, base, exp, folder, step, run_study)
            cnr = C.summarise_cnr(C.cohort_cnr(folder / "phantom"))
            evaluation, cells = K.from_study(folder)
            row = {
                "level": lv.name,
                "calibrated": lv.calibrated,
                "phantom": lv.phantom,
                **cnr,
                **K.box_gains(evaluation["rows"]),
                **K.lesion_kept(evaluation),
                **K.dice_gains(cells),
            }
            results.append(row)
            step(
                f"{lv.name}: CNR pre {cnr['cnr_pre_median']:.2f}; box SSIM gain "
                f"{row['box_ssim_gain']:+.3f}, lesion kept {row['lesion_kept_synthetic']:.2f} "
                f"(pre {row['lesion_kept_pre']:.2f}), S2 C−A {row['s2_C_minus_A']:+.3f}, "
                f"S4 E−D {row['s4_E_minus_D']:+.3f}"
            )
            report = K.write(root, results, time.perf_counter() - t0)
    console.print(report.read_text())
    console.print(f"conspicuity finished in {time.perf_counter() - t0:.0f} s; {report}")


def _level(lv, base: dict, exp, folder: Path, step, run_study) -> None:
    """Run one level: phantom → ingest → phase-1 run and its evaluation → scenarios 2, 4.

    Everything lands in ``folder`` in a study's layout (``runs/phase1/report/evaluation.json``,
    ``segmentation/results/table3.json``), which the caller reads back.
    """
    from dcesynth.cli.study import _cohort, _judge, _train
    from dcesynth.data.phantom import PhantomConfig

    pcfg = PhantomConfig.model_validate({**base["phantom"].model_dump(), **lv.phantom})
    step(f"{lv.name}: phantom {lv.phantom or '(the default)'}")
    _cohort(pcfg, base["ingest"], folder, step)
    tcfg = base["phase1"].model_copy(
        update={"dataset": folder / "dataset", "runs_dir": folder / "runs"}
    )
    run = _train(tcfg, step)
    truth = folder / "phantom" / "ground_truth"
    _judge(run, base["evaluation"], truth, ("train", "val", "test"), step)
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
    run_study(seg, resume=(seg.study_dir / "study.json").is_file(), progress=False)
