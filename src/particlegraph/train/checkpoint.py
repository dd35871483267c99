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

Loading never runs code: checkpoints are read with ``torch.load(weights_only=True)``, whose
unpickler admits only tensors and plain containers. Everything a checkpoint holds is therefore
stored as such (the numpy RNG state as a tensor, format 2). Format-1 files, whose numpy state is an
``ndarray``, load with exactly the numpy classes that array needs allowed. A file that asks for
anything else (a pickled object, a function to call) is refused with one line, and the object is
never built.
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

CHECKPOINT_FORMAT = 2
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


def _numpy_array_globals() -> list[Any]:
    """The numpy classes a format-1 checkpoint's RNG state (an ``ndarray``) needs, and no more."""
    import numpy.core.multiarray as multiarray  # where pickles name _reconstruct

    allowed: list[Any] = [multiarray._reconstruct, np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in ("uint32", "int64", "float64")]
    return allowed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, without running any code in it.

    Raises:
        DataFileError: the file is missing, is not a particlegraph checkpoint, or carries objects
            other than tensors and plain containers (refused before anything in it runs).
    """
    import pickle
    import warnings

    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"checkpoint {path} does not exist; was the run trained to an epoch end?"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy.core deprecation in numpy 2
            allowed = _numpy_array_globals()
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        what = _unsupported_global(str(err))
        if what is None:  # not a refused object: a damaged or foreign file
            raise DataFileError(
                f"checkpoint {path} cannot be read (the file is damaged or not a checkpoint)"
            ) from err
        raise DataFileError(
            f"checkpoint {path} carries {what}, not only weights; refused without loading it "
            "(a run folder must never run code: use checkpoints written by particlegraph)"
        ) from None
    except Exception as err:  # torch raises many types for corrupt files
        raise DataFileError(f"checkpoint {path} cannot be read: {err}") from err
    if not isinstance(state, dict) or "model" not in state:
        raise DataFileError(f"{path} is not a particlegraph checkpoint (no 'model' entry)")
    return state


def _unsupported_global(message: str) -> str | None:
    """``'the object posix.system'`` from torch's weights-only refusal of an object, else None."""
    import re

    m = re.search(r"unsupported GLOBAL ([\w.]+)", message) or re.search(
        r"Unsupported global: GLOBAL ([\w.]+)", message
    )
    if m is not None:
        return f"the object {m.group(1)}"
    return None


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Snapshot of every random-number generator that training touches.

    Args:
        generator: the data loader's own generator (data order), if it has one.
    """
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),  # noqa: NPY002 - global state
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loader": generator.get_state() if generator is not None else None,
    }
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])


def _numpy_state_to_plain(state: Any) -> tuple[Any, ...]:
    """numpy's legacy RNG state with its key array as a tensor (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = state
    return (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
            int(has_gauss), float(cached))  # fmt: skip


def _numpy_state_from_plain(state: Any) -> tuple[Any, ...]:
    """Inverse of :func:`_numpy_state_to_plain`; format-1 states (an ndarray) pass through."""
    name, keys, pos, has_gauss, cached = state
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy().astype(np.uint32)
    return (name, keys, pos, has_gauss, cached)


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
