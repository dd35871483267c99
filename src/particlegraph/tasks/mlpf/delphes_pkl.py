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
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import atomic_path
from particlegraph.errors import DataFileError, brief
from particlegraph.io.limits import Limits, check_declared
from particlegraph.io.pickles import NUMPY_GLOBALS, load_pickle
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.schema import COLUMNS, checked, validate_event

PathLike = str | os.PathLike[str]
#: Events per file in the public dataset; writers split longer event lists into several files.
EVENTS_PER_FILE = 100
#: Extra dict key holding the JSON settings (generation metadata) of a written file.
METADATA_KEY = "particlegraph"
_ROWS_HINT = "set PARTICLEGRAPH_MAX_ROWS higher if the file is genuine"


def _load(path: Path, max_bytes: int | None = None) -> Any:
    """Unpickle ``path`` restricted and bounded (:func:`particlegraph.io.pickles.load_pickle`)."""
    limits = Limits.from_env()
    if max_bytes is not None:
        limits = Limits(max_bytes=max_bytes, max_rows=limits.max_rows)
    return load_pickle(path, NUMPY_GLOBALS, "bz2", limits, what="bz2 file of event arrays")


def _as_array(obj: Any, where: str) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if not isinstance(obj, list | tuple):
        raise DataFileError(f"{where}: expected an array, found {type(obj).__name__}")
    try:
        return np.asarray(obj, dtype=np.float32)
    except (ValueError, TypeError) as err:
        raise DataFileError(f"{where}: not a rectangular array of numbers ({brief(err)})") from err


def read_pkl(path: PathLike, max_bytes: int | None = None) -> list[MLPFEvent]:
    """Read one public ``.pkl.bz2`` file into float32 :class:`MLPFEvent` s.

    At most ``max_bytes`` (default :class:`~particlegraph.io.limits.Limits`, 1 GiB) are
    decompressed; larger files, and nested lists that would expand beyond it, are refused with
    :class:`~particlegraph.errors.ResourceLimitError` before the memory is allocated.

    Raises :class:`DataFileError` naming the file when it is missing, truncated, lacks one of
    the keys X/ygen/ycand, has arrays with the wrong number of columns or of non-numbers, or
    (unless :func:`~particlegraph.tasks.mlpf.schema.validation` is off) unphysical values.
    """
    path = Path(path)
    limit = Limits.from_env().max_bytes if max_bytes is None else max_bytes
    data = _load(path, limit)
    if not isinstance(data, dict):
        raise DataFileError(
            f"{path}: expected a dict with keys X, ygen, ycand, found {type(data).__name__}"
        )
    missing = [k for k in COLUMNS if k not in data]
    if missing:
        found = ", ".join(map(str, data)) or "none"
        raise DataFileError(f"{path}: missing key(s) {', '.join(missing)} (found: {found})")
    if not all(isinstance(data[k], list | tuple) for k in COLUMNS):
        kinds = {k: type(data[k]).__name__ for k in COLUMNS}
        raise DataFileError(f"{path}: X, ygen and ycand must be lists of per-event arrays {kinds}")
    lengths = {k: len(data[k]) for k in COLUMNS}
    if len(set(lengths.values())) != 1:
        raise DataFileError(f"{path}: X, ygen and ycand hold different numbers of events {lengths}")
    check_declared(path, "events", lengths["X"], Limits.from_env().max_rows, _ROWS_HINT)
    events = []
    for i in range(lengths["X"]):
        where = f"{path} (event {i})"
        arrays = (_as_array(data[k][i], f"{where} {k}") for k in COLUMNS)
        events.append(checked(MLPFEvent(*arrays), where))
    return events


def read_pkl_metadata(path: PathLike) -> dict[str, Any]:
    """The settings dict :func:`write_pkl` stored under the key ``particlegraph`` (``{}`` if none)."""
    path = Path(path)
    data = _load(path)
    raw = data.get(METADATA_KEY) if isinstance(data, dict) else None
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError) as err:
        raise DataFileError(f"{path}: metadata is not valid JSON ({brief(err)})") from err
    return meta if isinstance(meta, dict) else {"value": meta}


def write_pkl(
    path: PathLike, events: Sequence[MLPFEvent], metadata: dict[str, Any] | None = None
) -> None:
    """Write ``events`` as one public-layout ``.pkl.bz2`` file at ``path``, atomically.

    Arrays are stored as float32 numpy arrays; :func:`read_pkl` returns them bit for bit.
    ``metadata`` (JSON-serialisable, e.g. the generation settings) is stored as a JSON string
    under the extra key ``particlegraph``, which readers of the public layout ignore.
    """
    path = Path(path)
    checked_events = [validate_event(ev, f"{path} (event {i})") for i, ev in enumerate(events)]
    data: dict[str, Any] = {k: [ev[j] for ev in checked_events] for j, k in enumerate(COLUMNS)}
    if metadata is not None:
        try:
            data[METADATA_KEY] = json.dumps(metadata)
        except (TypeError, ValueError) as err:
            raise DataFileError(
                f"{path}: metadata is not JSON-serialisable ({brief(err)})"
            ) from err
    payload = bz2.compress(pickle.dumps(data, protocol=4), compresslevel=9)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
