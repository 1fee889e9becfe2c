"""Checkpoints load with weights_only=True: ours round-trip; one carrying an object is refused
before anything in it runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dcesynth.training.checkpoints import UnsafeCheckpointError, load_state
from dcesynth.training.config import TrainConfig
from dcesynth.training.loop import build_discriminator, build_generator
from dcesynth.training.step import GanStep

MARKER = Path("/tmp/dcesynth-test-unpickled-marker")


class Payload:
    """What a malicious checkpoint could carry: code that runs as it is unpickled."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


def _state() -> dict:
    cfg = TrainConfig(
        model={"ngf": 8, "n_downsample": 2, "n_blocks": 1, "ndf": 8}, loss={"lambda_per": 0.0}
    )
    G, D = build_generator(cfg), build_discriminator(cfg)
    step = GanStep(G, D, cfg, "cpu")
    step(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))  # optimiser state with moments
    return {
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_g": step.opt_g.state_dict(),
        "opt_d": step.opt_d.state_dict(),
        "epoch": 3,
        "config": cfg.model_dump(mode="json"),
    }


def test_our_checkpoint_round_trips(tmp_path: Path) -> None:
    state = _state()
    torch.save(state, tmp_path / "state.pt")
    back = load_state(tmp_path / "state.pt")
    assert back["epoch"] == 3 and back["config"] == state["config"]
    for k, v in state["G"].items():
        torch.testing.assert_close(back["G"][k], v)
    assert back["opt_g"]["param_groups"][0]["betas"] == state["opt_g"]["param_groups"][0]["betas"]


@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_checkpoint_with_a_pickled_object_is_refused_unrun(tmp_path: Path, how: str) -> None:
    MARKER.unlink(missing_ok=True)
    state = {**_state(), "extra": Payload()}
    path = tmp_path / "state.pt"
    if how == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(UnsafeCheckpointError, match=r"state.pt: refused .* could run code"):
        load_state(path)
    assert not MARKER.exists()  # the payload never ran


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pt: no checkpoint file"):
        load_state(tmp_path / "nope.pt")
