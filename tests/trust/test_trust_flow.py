"""`dcectl trust` on a sampling generator (the rectified flow, K = 2): the uncertainty reads
the generator's own sample spread beside the checkpoints' — with identical checkpoints the
ensemble says nothing, and the samples still do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dcesynth.config import build_config
from dcesynth.training.config import TrainConfig
from dcesynth.training.loop import build_generator
from dcesynth.trust.config import TrustConfig
from dcesynth.trust.run import trust

pytestmark = pytest.mark.slow


def _flow_run(root: Path, dataset: Path, tiny_flow_training: dict) -> Path:
    """A run directory with two untrained flow checkpoints (different random weights)."""
    cfg = build_config(
        TrainConfig,
        None,
        {**tiny_flow_training, "dataset": str(dataset), "runs_dir": str(root), "name": "flow"},
    )
    run = root / "flow"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        folder = run / "checkpoints" / f"epoch_{epoch:03d}"
        folder.mkdir(parents=True)
        G = build_generator(cfg)
        with torch.no_grad():  # MONAI zero-initialises the output layer: every fresh UNet
            for p in G.parameters():  # would predict the same (zero) velocity
                p.add_(0.05 * torch.randn_like(p))
        torch.save({"G": G.state_dict(), "epoch": epoch}, folder / "state.pt")
    return run


def test_flow_uncertainty_uses_its_own_samples(
    prepared: Path, tmp_path: Path, tiny_flow_training: dict
) -> None:
    run = _flow_run(tmp_path / "runs", prepared, tiny_flow_training)
    cfg = TrustConfig(checkpoint="last", features="pixels", members=2, bootstrap=100)
    u = trust(run, cfg, progress=False).record["uncertainty"]
    assert u["sampling_members"] == 2
    assert u["sources"]["checkpoints"]["mean"] > 0 and u["sources"]["samples"]["mean"] > 0
    text = (run / "report" / "trust" / "trust.md").read_text()
    assert "of the generator's own samples (2 of 2 members draw them)" in text

    # identical checkpoints: no disagreement between them, yet the K samples still spread
    for ck in ("epoch_001",):
        shutil.copy(run / "checkpoints/epoch_002/state.pt", run / "checkpoints" / ck / "state.pt")
    u = trust(run, cfg, progress=False).record["uncertainty"]
    assert u["sources"]["checkpoints"]["mean"] == 0.0
    assert u["sources"]["samples"]["mean"] > 0
    assert min(u["case_uncertainty"].values()) > 0  # the give-real-contrast flag reads it
