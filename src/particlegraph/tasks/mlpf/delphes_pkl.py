"""The public Delphes MLPF ``.pkl.bz2`` format: read and write.

The public Delphes MLPF dataset (Pata et al. 2021, arXiv:2101.08578; Zenodo record 4452283)
ships bz2-compressed pickles, one per 100 events, each holding a dict

``{"X": [X_0, X_1, ...], "ygen": [ygen_0, ...], "ycand": [ycand_0, ...]}``

with per-event numpy arrays ``X`` (N, 12), ``ygen`` (N, 7) and ``ycand`` (N, 7) in the column
layout of :mod:`particlegraph.sim.elements`. Reading uses a restricted unpickler that only
rebuilds numpy arrays and plain containers, so a file from the internet cannot run code.

The Delphes ROOT reader lives in :mod:`particlegraph.tasks.mlpf.delphes_root`.
"""

from __future__ import annotations

import bz2
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import atomic_path
from particlegraph.errors import DataFileError
from particlegraph.io.shards import brief
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.schema import COLUMNS, validate_event

PathLike = str | os.PathLike[str]
#: Events per file in the public dataset; writers split longer event lists into several files.
EVENTS_PER_FILE = 100

# numpy objects a pickled array needs (numpy 1 writes numpy.core.*, numpy 2 numpy._core.*).
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles store array bytes as encoded text
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and builtin containers, and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _load(path: Path) -> Any:
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        raw = bz2.decompress(path.read_bytes())
    except (OSError, EOFError, ValueError) as err:
        raise DataFileError(f"{path}: not a complete bz2 file ({brief(err)})") from err
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception as err:  # pickle raises many types on bad input
        raise DataFileError(f"{path}: not a valid pickle of event arrays ({brief(err)})") from err


def read_pkl(path: PathLike) -> list[MLPFEvent]:
    """Read one public ``.pkl.bz2`` file into float32 :class:`MLPFEvent` s.

    Raises :class:`DataFileError` naming the file when it is missing, truncated, lacks one of
    the keys X/ygen/ycand, or has arrays with the wrong number of columns.
    """
    path = Path(path)
    data = _load(path)
    if not isinstance(data, dict):
        raise DataFileError(
            f"{path}: expected a dict with keys X, ygen, ycand, found {type(data).__name__}"
        )
    missing = [k for k in COLUMNS if k not in data]
    if missing:
        found = ", ".join(map(str, data)) or "none"
        raise DataFileError(f"{path}: missing key(s) {', '.join(missing)} (found: {found})")
    lengths = {k: len(data[k]) for k in COLUMNS}
    if len(set(lengths.values())) != 1:
        raise DataFileError(f"{path}: X, ygen and ycand hold different numbers of events {lengths}")
    return [
        validate_event(MLPFEvent(*(np.asarray(data[k][i]) for k in COLUMNS)), f"{path} (event {i})")
        for i in range(lengths["X"])
    ]


def write_pkl(path: PathLike, events: Sequence[MLPFEvent]) -> None:
    """Write ``events`` as one public-layout ``.pkl.bz2`` file at ``path``, atomically.

    Arrays are stored as float32 numpy arrays; :func:`read_pkl` returns them bit for bit.
    """
    path = Path(path)
    checked = [validate_event(ev, f"{path} (event {i})") for i, ev in enumerate(events)]
    data = {k: [ev[j] for ev in checked] for j, k in enumerate(COLUMNS)}
    payload = bz2.compress(pickle.dumps(data, protocol=4), compresslevel=9)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
