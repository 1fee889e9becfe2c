"""End to end on a tiny trained phantom run: select → synthesize → evaluate.

One 2-epoch run (2 Ray Train workers, 32², three jointly generated phases) feeds every test
here; the metrics needing pretrained weights are configured out (this machine has none), which
the outputs must say.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.config import ConfigError, build_config
from dcesynth.evaluation.config import NO_WEIGHTS, EvalConfig
from dcesynth.evaluation.metrics import paired_metrics
from dcesynth.evaluation.report import evaluate
from dcesynth.evaluation.runs import Run
from dcesynth.evaluation.scoring import Scorer, read_pairs
from dcesynth.evaluation.synthesize import synthesize
from dcesynth.training.config import TrainConfig
from dcesynth.training.run import train
from dcesynth.weights import WeightsError

pytestmark = pytest.mark.slow
PHASES = (1, 2, 3)


@pytest.fixture(scope="module")
def run(joint_dataset: Path, tmp_path_factory, tiny_training: dict) -> Path:
    root = tmp_path_factory.mktemp("eval")
    cfg = build_config(
        TrainConfig,
        None,
        {
            "dataset": str(joint_dataset),
            "runs_dir": str(root / "runs"),
            "name": "tiny",
            "phases": PHASES,
            "epochs": 2,
            "workers": 2,
            **tiny_training,
        },
    )
    return train(cfg).run_dir


@pytest.fixture(scope="module")
def selected(run: Path) -> dict:
    res = CliRunner().invoke(app, ["select", str(run), "--no-pretrained", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "selected" in res.output
    return json.loads((run / "report" / "selection.json").read_text())


def test_missing_weights_fail_before_any_scoring(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="leave lpips out of `metrics`"):
        Scorer(EvalConfig(weights_dir=tmp_path, device="cpu"))


def test_select_writes_table1_and_picks_the_lowest_same(run: Path, selected: dict) -> None:
    same = {int(k): v for k, v in selected["same"].items()}
    assert sorted(same) == [1, 2]
    assert selected["selected_epoch"] == min(same, key=lambda e: (same[e], e))
    assert min(same.values()) == 0.0 and all(0 <= v <= 1 for v in same.values())
    assert selected["not_computed"] == ["lpips", "fid_img", "fid_rad"]
    rows = list(csv.DictReader((run / "report" / "table1.csv").open()))
    assert [r["checkpoint"].split(" (")[0] for r in rows] == [
        "real pre vs real post",
        "epoch 1",
        "epoch 2",
    ]
    # the baseline row is real pre vs real post on the pooled validation pairs, recomputed here
    pairs = read_pairs(Run.open(run).cfg.dataset, "val")
    real = np.concatenate([pairs.post[:, i] for i in range(len(PHASES))])
    pre = np.concatenate([pairs.pre] * len(PHASES))
    direct = paired_metrics(real, pre)
    assert float(rows[0]["mae_mean"]) == pytest.approx(direct["mae"].mean(), rel=1e-6)
    assert float(rows[0]["ssim_mean"]) == pytest.approx(direct["ssim"].mean(), rel=1e-5)
    md = (run / "report" / "table1.md").read_text()
    assert "not computed: lpips, fid_img, fid_rad" in md and "(selected)" in md
    assert (run / "report" / "same_bars.png").stat().st_size > 1000


def test_selection_pairs_limit_what_table1_scores(run: Path, tmp_path: Path) -> None:
    """Selection scores every checkpoint on ``selection_pairs`` of the validation pairs (the
    same seeded subset evaluation would draw), and Table 1's baseline is that subset's."""
    import shutil

    from dcesynth.evaluation.select import select_checkpoint

    copy = tmp_path / "tiny"  # its own report/, so the module's selection stays as it is
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    cfg = EvalConfig(**NO_WEIGHTS, device="cpu", selection_pairs=3)
    assert cfg.n_selection_pairs == 3 and cfg.pairs == 5000
    select_checkpoint(copy, cfg, progress=False)
    record = json.loads((copy / "report" / "selection.json").read_text())
    assert record["pairs"] == 3 * len(PHASES)
    pairs = read_pairs(Run.open(copy).cfg.dataset, "val", 3, cfg.seed)
    real = np.concatenate([pairs.post[:, i] for i in range(len(PHASES))])
    direct = paired_metrics(real, np.concatenate([pairs.pre] * len(PHASES)))
    assert record["baseline"]["mae"] == pytest.approx(direct["mae"].mean(), rel=1e-6)


def test_synthesized_volumes_have_the_original_geometry(run: Path, selected: dict) -> None:
    res = synthesize(run, "best", "test", device="cpu", progress=False)
    assert res.epoch == selected["selected_epoch"]
    ds = Run.open(run).cfg.dataset
    cases = pq.read_table(ds / "cases.parquet").to_pylist()
    test_cases = [r for r in cases if r["split"] == "test"]
    assert sorted(res.cases) == sorted(r["case_id"] for r in test_cases) and res.cases
    for r in test_cases:
        pre = nib.load(ds / "volumes" / f"{r['case_id']}_0000.nii.gz")
        for p in PHASES:
            syn = nib.load(res.out / f"{r['case_id']}_{p:04d}.nii.gz")
            sub = nib.load(res.out / f"{r['case_id']}_sub{p:04d}.nii.gz")
            assert syn.shape == pre.shape == tuple(r["shape"][::-1])
            np.testing.assert_allclose(syn.affine, pre.affine)
            s, q = np.asarray(syn.dataobj, np.int16), np.asarray(pre.dataobj, np.int16)
            np.testing.assert_array_equal(np.asarray(sub.dataobj), np.clip(s - q, 0, 255))
    assert not list(res.out.parent.glob(".tmp-*"))


def test_evaluate_writes_tables_figures_and_kinetics(
    run: Path, selected: dict, phantom_source: Path
) -> None:
    cfg = EvalConfig(**NO_WEIGHTS, device="cpu")
    ev = evaluate(run, cfg, "best", "test", truth=phantom_source / "ground_truth")
    rows = list(csv.DictReader((ev.report / "table2.csv").open()))
    kinds = {(int(r["phase"]), r["comparison"]) for r in rows}
    for p in PHASES:
        assert (p, "synthetic vs real") in kinds and (p, "baseline: real pre vs real post") in kinds
        assert (p, "subtraction: synthetic vs real") in kinds
        assert (p, "tumour box: synthetic vs real") in kinds
        assert (ev.report / f"montage_phase{p}.png").stat().st_size > 1000
    for r in rows:
        assert 0 <= float(r["mae_mean"]) <= 255
        if not r["comparison"].startswith("tumour"):
            assert 0 < float(r["ms_ssim_mean"]) <= 1
    for f in ("kinetics_cohort.png", "kinetics_cases.png", "report.md", "evaluation.json"):
        assert (ev.report / f).stat().st_size > 200
    kin = json.loads((ev.report / "kinetics.json").read_text())
    assert kin["cases"] >= 1 and 0 <= kin["order_kept_fraction"] <= 1
    assert set(kin["order_kept"]) == set(kin["curves"])
    # truth found for every test case with a box: the pseudonyms match the phantom's ids
    assert kin["truth_cases"] == kin["cases"]
    assert set(kin["truth_types"].values()) <= {"I", "II", "III"}
    # the same curves with each phase's normalisation window undone (ingest recorded them)
    acq = kin["acquisition_scale"]
    assert acq["cases"] == acq["truth_cases"] == kin["cases"]
    assert acq["type_agreement_real_vs_truth"] == 1.0  # real data: a known answer, see trust
    for c in kin["curves"].values():
        assert np.asarray(c["real"]).shape == (len(PHASES) + 1, 2)
        assert c["real"][0] == c["synthetic"][0]  # both curves start from the real pre image
    # the lesion's own contrast, per generated phase, against the real image's (lesion.py)
    lesion = json.loads((ev.report / "evaluation.json").read_text())["lesion_contrast"]
    assert sorted(int(p) for p in lesion) == list(PHASES)
    for d in lesion.values():
        if d["slices"]:
            assert d["real"] >= d["min_contrast"] and d["synthetic_kept"] is not None
    # the box metrics per case: one entry per test case with a box, a count and a p
    by_case = json.loads((ev.report / "evaluation.json").read_text())["box_by_case"]
    for d in by_case.values():
        assert d["ssim"]["cases"] == kin["cases"]
        assert 0 <= d["mae"]["synthetic_better"] <= d["mae"]["cases"]
    report = (ev.report / "report.md").read_text()
    assert "Tumour box per case" in report
    assert "Table 1" in report and "Table 2" in report and "kinetics_cohort.png" in report
    assert "Not computed" in report


def test_unknown_checkpoint_and_split_name_what_exists(run: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[1, 2\]"):
        Run.open(run).checkpoint(7)
    with pytest.raises(ValueError, match="splits"):
        synthesize(run, "last", "nosuch", device="cpu", progress=False)


def test_synthesize_several_splits_from_the_cli(run: Path, selected: dict) -> None:
    res = CliRunner().invoke(
        app, ["synthesize", str(run), "--split", "train,val", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    cases = pq.read_table(Run.open(run).cfg.dataset / "cases.parquet").to_pylist()
    for split in ("train", "val"):
        rec = json.loads((run / "synthetic" / split / "synthesis.json").read_text())
        assert sorted(rec["files"]) == sorted(r["case_id"] for r in cases if r["split"] == split)
        cost = rec["sampling"]  # pix2pixHD: one forward pass a slice, timed over the split
        assert cost["nfe_per_slice"] == 1 and cost["slices"] > 0
        assert cost["s_per_slice"] == pytest.approx(cost["seconds"] / cost["slices"], rel=0.05)
    assert res.output.count("cases, ") == 2


def test_added_section_is_replaced_and_survives_a_new_evaluation(run: Path, selected: dict):
    from dcesynth.evaluation.report import add_section

    cfg = EvalConfig(**NO_WEIGHTS, device="cpu")
    report = evaluate(run, cfg, "best", "test").report
    add_section(report, "segmentation", "## Segmentation\n\nfirst")
    add_section(report, "segmentation", "## Segmentation\n\nsecond")
    md = (report / "report.md").read_text()
    assert md.count("## Segmentation") == 1 and "second" in md and "first" not in md
    assert "Table 2" in md  # the rest of the report is untouched
    evaluate(run, cfg, "best", "test")  # rewrites report.md from scratch
    md = (report / "report.md").read_text()
    assert md.count("## Segmentation") == 1 and "second" in md
