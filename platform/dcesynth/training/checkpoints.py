"""Checkpoint files hold tensors and plain data only, and are read without unpickling objects.

A full ``torch.load`` (``weights_only`` off) runs whatever a pickle says: a checkpoint someone sent
you could execute code as it loads. Ours never needs that — G, D, both optimisers' states, the
epoch and the config (as plain JSON-like data) — so every load uses ``weights_only=True`` and a
file that carries anything else is refused with a message saying so.

Checkpoints are written whole or not at all (:func:`save_state`: a temporary sibling, fsync,
rename). One that is damaged all the same (cut short by a full disk under another writer,
copied half-way) is refused by :func:`load_state` as a :class:`BrokenCheckpointError`, so that
a resume can fall back to the previous one.
"""

from __future__ import annotations

from pathlib import Path

import torch


class UnsafeCheckpointError(ValueError):
    """A checkpoint holding Python objects beyond tensors and plain data."""


class BrokenCheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, damaged): the message says why."""


def save_state(state: dict, path: str | Path) -> None:
    """Write a checkpoint's state dict to ``path`` whole or not at all (temporary sibling,
    fsync, rename): a full disk leaves no partial file under the final name."""
    from dcesynth.durable import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint's state dict, loaded with ``weights_only=True``.

    Raises:
        UnsafeCheckpointError: the file pickles other objects (it is not loaded).
        BrokenCheckpointError: the file is truncated or damaged.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (or RuntimeError) for foreign objects
        from dcesynth.durable import MACHINE_ERRNOS

        if isinstance(e, OSError) and e.errno in MACHINE_ERRNOS:
            raise  # the machine (an I/O error, a refused read), not the file; a truncated
            # file can raise OSError too (EINVAL from seeking past its end)
        if "weights_only" not in str(e) and "Unsupported global" not in str(e):
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BrokenCheckpointError(
                f"{path}: does not load ({type(e).__name__}: {first}; "
                f"{path.stat().st_size} bytes) — truncated or damaged"
            ) from None
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
