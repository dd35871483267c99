"""Atomic training checkpoints, random-number-generator state, and loading a trained model.

A checkpoint (``run_dir/checkpoints/{last,best}.pt``) is a dict written with ``torch.save``:

- ``model``: state dict of the plain (un-wrapped) module,
- ``optimizer``: optimizer state dict,
- ``schedule``: ``{"step": global optimizer steps, "steps_per_epoch": int | None}``,
- ``epoch``: number of completed epochs, ``stopped``: early stopping fired,
- ``rng``: list (one per rank) of RNG states (python, numpy, torch CPU, torch CUDA, loader generator),
- ``history``: the :class:`~particlegraph.train.loop.History` as a dict,
- ``format``: :data:`CHECKPOINT_FORMAT`.

It is written to a temporary file and renamed, so a run killed mid-write keeps the previous one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from particlegraph.atomic import atomic_path
from particlegraph.errors import DataFileError

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(run_dir: str | Path, which: str = "last") -> Path:
    """``run_dir/checkpoints/<which>.pt`` for ``which`` in ``last`` / ``best``."""
    if which not in ("last", "best"):
        raise ValueError(f"checkpoint {which!r} must be 'last' or 'best'")
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically (temp file + rename)."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        DataFileError: the file is missing or is not a particlegraph checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"checkpoint {path} does not exist; was the run trained to an epoch end?"
        )
    try:
        # Our own files hold numpy RNG states and plain dicts, which the restricted
        # weights_only unpickler rejects.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise DataFileError(f"checkpoint {path} cannot be read: {err}") from err
    if not isinstance(state, dict) or "model" not in state:
        raise DataFileError(f"{path} is not a particlegraph checkpoint (no 'model' entry)")
    return state


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Snapshot of every random-number generator that training touches.

    Args:
        generator: the data loader's own generator (data order), if it has one.
    """
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - global state is what we must keep
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loader": generator.get_state() if generator is not None else None,
    }
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - code that uses the legacy global RNG
    torch.manual_seed(seed)


def load_weights(run_dir: str | Path, model: nn.Module, which: str = "best") -> nn.Module:
    """Load the weights of ``run_dir/checkpoints/<which>.pt`` into ``model``; eval mode, on CPU.

    The one run loader of every task: the task builds its model from the run's config, this
    fills in the weights. ``best`` falls back to ``last`` when no best checkpoint exists.

    Raises:
        DataFileError: the run directory has no such checkpoint.
    """
    path = checkpoint_path(run_dir, which)
    if which == "best" and not path.is_file():
        path = checkpoint_path(run_dir, "last")
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    model.eval()
    return model
