"""Checkpoint files hold tensors and plain data only, and are read without unpickling objects.

A full ``torch.load`` (``weights_only`` off) runs whatever a pickle says: a checkpoint someone sent
you could execute code as it loads. Ours never needs that — G, D, both optimisers' states, the
epoch and the config (as plain JSON-like data) — so every load uses ``weights_only=True`` and a
file that carries anything else is refused with a message saying so.
"""

from __future__ import annotations

from pathlib import Path

import torch


class UnsafeCheckpointError(ValueError):
    """A checkpoint holding Python objects beyond tensors and plain data."""


def load_state(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint's state dict, loaded with ``weights_only=True``.

    Raises:
        UnsafeCheckpointError: the file pickles other objects (it is not loaded).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (or RuntimeError) for foreign objects
        if "weights_only" not in str(e) and "Unsupported global" not in str(e):
            raise
        first = str(e).strip().splitlines()
        why = next((ln for ln in first if "Unsupported global" in ln), first[0] if first else "")
        raise UnsafeCheckpointError(
            f"{path}: refused — it holds Python objects other than tensors and plain data "
            f"({why.strip()}), and unpickling them could run code. dcesynth checkpoints never "
            "do; load only checkpoints written by dcesynth."
        ) from None
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{path}: not a dcesynth checkpoint (a {type(state).__name__})")
    return state
