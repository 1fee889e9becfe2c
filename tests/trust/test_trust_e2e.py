"""`dcectl trust` on a tiny trained phantom run (three joint phases, so kinetics apply): every
dimension is measured, the run is not flagged for memorisation while a nearest-neighbour
"model" is, an ensemble of one checkpoint copied has zero uncertainty, and the section lands
in the run's report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.config import build_config
from dcesynth.evaluation.scoring import read_pairs
from dcesynth.training.config import TrainConfig
from dcesynth.training.run import train
from dcesynth.trust import measures as M
from dcesynth.trust.config import TrustConfig
from dcesynth.trust.run import trust

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(joint_dataset: Path, tmp_path_factory, tiny_training: dict) -> Path:
    root = tmp_path_factory.mktemp("trust")
    cfg = build_config(
        TrainConfig,
        None,
        {
            **tiny_training,
            "dataset": str(joint_dataset),
            "runs_dir": str(root / "runs"),
            "name": "t",
            "phases": (1, 2, 3),
            "epochs": 3,
            "workers": 1,
        },
    )
    return train(cfg).run_dir


def test_trust_cli_writes_every_dimension(
    run: Path, phantom_source: Path, joint_dataset: Path
) -> None:
    out = CliRunner().invoke(
        app,
        [
            "trust",
            str(run),
            "--checkpoint",
            "last",
            "--no-pretrained",
            "--truth",
            str(phantom_source / "ground_truth"),
            "--clinical",
            str(phantom_source / "clinical.csv"),
        ],
    )
    assert out.exit_code == 0, out.output
    rec = json.loads((run / "report" / "trust" / "trust.json").read_text())
    assert list(rec["spaces"]) == ["pixels"]  # --no-pretrained: no feature network
    assert not rec["spaces"]["pixels"]["privacy"]["flagged"]
    div = rec["spaces"]["pixels"]["diversity"]
    assert all(0 <= div[k] <= 1 for k in ("precision", "recall", "coverage"))
    by = {r["by"] for r in rec["fairness"]}
    assert {"manufacturer", "field_t", "agent", "density", "curve_type"} <= by
    assert {r["region"] for r in rec["fairness"]} == {"whole slice", "tumour box"}
    unc = rec["uncertainty"]
    assert len(unc["members"]) == 3 and set(unc["flagged"]) == set(unc["case_uncertainty"])
    kin = rec["kinetics"]
    assert kin["lesions"] >= 1 and kin["truth_cases"] == kin["lesions"]
    assert set(kin["biomarkers"]) == {
        "peak_enhancement",
        "time_to_peak_s",
        "wash_in_per_min",
        "ser",
    }
    # kinetics see every tumour slice of the test split, not the random 48-slice subset
    tum = read_pairs(joint_dataset, "test", tumour_only=True)
    assert rec["kinetics_slices"] == len(tum) > 0
    with_lesion = {c for c, m in zip(tum.case_id, tum.mask, strict=True) if m.any()}
    assert kin["lesions"] == len(with_lesion)
    acq = rec["kinetics_acquisition_scale"]  # each phase's normalisation window undone
    assert acq["lesions"] == kin["lesions"] and acq["truth_cases"] == kin["truth_cases"]
    # the real images carry the true curve type per voxel once phases share one scale (the
    # real data depend on no training, so this is a known answer for the fixture's lesions)
    assert acq["real_vs_truth_type"] == 1.0
    report = (run / "report" / "report.md").read_text()
    assert "On the acquisition's scale" in report
    assert "## Trust" in report and "trust/privacy.png" in report
    for f in ("privacy.png", "fairness.png", "uncertainty.png", "curve_types.png"):
        assert (run / "report" / "trust" / f).stat().st_size > 2000


def test_a_nearest_neighbour_model_is_flagged(run: Path) -> None:
    """Positive control: a 'model' that answers each test slice with the training slice whose
    pre image is nearest is caught by the same measure that clears the trained run."""
    from dcesynth.evaluation.runs import Run

    ds = Run.open(run).cfg.dataset
    test, tr = read_pairs(ds, "test"), read_pairs(ds, "train")
    _, nn = M.nearest(M.downsampled(test.pre), M.downsampled(tr.pre))
    copied = tr.post[nn, 0]
    mem = M.memorisation(
        M.downsampled(copied), M.downsampled(test.post[:, 0]), M.downsampled(tr.post[:, 0])
    )
    assert mem["flagged"] and mem["fraction_closer"] == 1.0


def test_identical_ensemble_members_have_zero_uncertainty(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpts = sorted((copy / "checkpoints").glob("epoch_*"))
    for other in ckpts[:-1]:  # every kept checkpoint now holds the last one's weights
        shutil.copy(ckpts[-1] / "state.pt", other / "state.pt")
    rec = trust(copy, TrustConfig(checkpoint="last", features="pixels"), progress=False).record
    assert set(rec["uncertainty"]["case_uncertainty"].values()) == {0.0}
    assert np.isnan(rec["uncertainty"]["spearman_case"])  # nothing to rank
