"""A prepared phantom dataset and a run made by hand (an untrained tiny generator with a
recorded selection), exported once: enough for every inference test that does not need a
trained generator, in seconds. Ingest reads the shared cohort's NIfTI tree; prediction reads
its DICOM tree, so the round trips cross formats as a user's would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dcesynth.config import build_config
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.training.config import TrainConfig

PHASES = (1, 2, 3)
SPLIT = {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}


@pytest.fixture(scope="session")
def prepared(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inference") / "ds"
    icfg = IngestConfig(image_size=32, phases=PHASES, split=SPLIT, selection="all")
    ingest(phantom_source / "nifti" / "images", out, icfg, progress=False)
    return out


def make_run(root: Path, dataset: Path, tiny_training: dict, seed: int = 0) -> Path:
    """A run directory as training leaves one: config.yaml, one checkpoint, a selection."""
    import torch

    from dcesynth.training.loop import build_generator

    cfg = build_config(
        TrainConfig,
        None,
        {
            **tiny_training,
            "dataset": str(dataset),
            "runs_dir": str(root),
            "name": "hand",
            "phases": PHASES,
            "epochs": 1,
            "seed": seed,
        },
    )
    run = root / "hand"
    (run / "checkpoints" / "epoch_001").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    torch.manual_seed(seed)
    G = build_generator(cfg)
    torch.save({"G": G.state_dict(), "epoch": 1}, run / "checkpoints/epoch_001/state.pt")
    (run / "report").mkdir()
    sel = {"selected_epoch": 1, "same": {"1": 0.25}, "same_metrics": ["mae", "ssim"]}
    (run / "report" / "selection.json").write_text(json.dumps(sel))
    return run


@pytest.fixture(scope="session")
def hand_run(prepared: Path, tmp_path_factory, tiny_training: dict) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), prepared, tiny_training)


@pytest.fixture(scope="session")
def model_file(hand_run: Path, tmp_path_factory) -> Path:
    from dcesynth.evaluation.export import export_run

    out = tmp_path_factory.mktemp("model") / "model.dcem"
    export_run(hand_run, out)
    return out
