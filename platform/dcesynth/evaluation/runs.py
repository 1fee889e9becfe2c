"""A training run as evaluation sees it: its config, checkpoints and generators.

The selected checkpoint of a run is recorded in ``<run>/report/selection.json`` by
``dcectl select``; ``checkpoint("best")`` reads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dcesynth.config import ConfigError
from dcesynth.training.config import TrainConfig

SELECTION = Path("report") / "selection.json"


@dataclass(frozen=True)
class Run:
    path: Path
    cfg: TrainConfig

    @classmethod
    def open(cls, path: Path) -> Run:
        """Raises ConfigError when ``path`` is not a run directory."""
        from dcesynth.training.run import load_run_config

        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path}: not a run directory (no config.yaml)")
        return cls(path, load_run_config(path))

    def checkpoints(self) -> dict[int, Path]:
        """{epoch: checkpoint dir} of the complete checkpoints, oldest first."""
        from dcesynth.training.run import checkpoint_dirs

        out = {}
        for d in checkpoint_dirs(self.path):
            if m := re.fullmatch(r"epoch_(\d+)", d.name):
                out[int(m.group(1))] = d
        return out

    def checkpoint(self, which: str | int) -> tuple[int, Path]:
        """``best`` (the selection's), ``last``, or an epoch number → (epoch, directory).

        Raises:
            ConfigError: naming the checkpoints the run has.
        """
        ckpts = self.checkpoints()
        if not ckpts:
            raise ConfigError(f"{self.path}: the run has no checkpoints")
        if which == "best":
            sel = self.path / SELECTION
            if not sel.is_file():
                raise ConfigError(
                    f"{self.path}: no selected checkpoint yet; run `dcectl select {self.path}` "
                    f"or pass --checkpoint last / an epoch of {sorted(ckpts)}"
                )
            which = int(json.loads(sel.read_text())["selected_epoch"])
        if which == "last":
            which = max(ckpts)
        try:
            epoch = int(which)
        except ValueError:
            raise ConfigError(
                f"--checkpoint {which!r}: use best, last or an epoch of {sorted(ckpts)}"
            ) from None
        if epoch not in ckpts:
            raise ConfigError(f"--checkpoint {epoch}: no such checkpoint; have {sorted(ckpts)}")
        return epoch, ckpts[epoch]

    def generator(self, ckpt: Path, device: str) -> torch.nn.Module:
        """The checkpoint's generator in eval mode on ``device``."""
        from dcesynth.training.checkpoints import load_state
        from dcesynth.training.loop import build_generator

        state = load_state(Path(ckpt) / "state.pt", map_location=device)
        G = build_generator(self.cfg)
        G.load_state_dict(state["G"])
        return G.to(device).eval()

    def phase_index(self, stored: list[int]) -> list[int]:
        """Channels of the dataset's stored post phases that the run generates."""
        return [stored.index(p) for p in self.cfg.phases]


@torch.no_grad()
def generate(
    G: torch.nn.Module, pre: np.ndarray, cfg: TrainConfig, device: str, batch: int = 16
) -> np.ndarray:
    """uint8 pre slices (N, S, S) → generated phases (N, P, S, S) float32 on [0, 255]."""
    from dcesynth.training.validation import generate as gen

    if len(pre) == 0:
        return np.zeros((0, len(cfg.phases), *pre.shape[1:]), np.float32)
    return gen(G, pre, cfg, device, batch)
