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
from particlegraph.errors import DataFileError, ResourceLimitError, brief
from particlegraph.io.limits import Limits, open_bounded
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.schema import COLUMNS, checked, validate_event

PathLike = str | os.PathLike[str]
#: Events per file in the public dataset; writers split longer event lists into several files.
EVENTS_PER_FILE = 100
#: Extra dict key holding the JSON settings (generation metadata) of a written file.
METADATA_KEY = "particlegraph"

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


class _NumpyOnlyUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Unpickler that rebuilds numpy arrays and builtin containers, and refuses anything else.

    The pure-Python unpickler (``pickle._Unpickler``) asks its stream for every block *before*
    allocating it, so :class:`~particlegraph.io.limits.BoundedReader` refuses a block that
    declares gigabytes without the memory ever being reserved; the C unpickler allocates the
    declared size first. A public file holds a few hundred large arrays, so the per-opcode cost
    of pure Python does not matter.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _load(path: Path, max_bytes: int | None = None) -> Any:
    """Unpickle ``path`` through a bounded bz2 stream (see :mod:`particlegraph.io.limits`)."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with open_bounded(path, "bz2", max_bytes) as stream:
            return _NumpyOnlyUnpickler(stream).load()  # type: ignore[arg-type]
    except ResourceLimitError:
        raise
    except (OSError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise DataFileError(f"{path}: not a complete bz2 file ({brief(err)})") from err
    except MemoryError as err:
        raise ResourceLimitError(f"{path}: too large to unpickle in memory") from err
    except Exception as err:  # pickle raises many types on bad input
        raise DataFileError(f"{path}: not a valid pickle of event arrays ({brief(err)})") from err


def _nested_size(obj: Any, depth: int = 0) -> int:
    """Elements a nested list would expand to, following the first item at each level.

    Nested lists that share references (``[[x] * 100] * 100 ...``) pickle to a few hundred
    bytes but expand to billions of numbers in ``np.asarray``; this estimate refuses them first.
    Ragged lists that get past it fail in ``np.asarray`` with a ValueError.
    """
    size = 1
    while isinstance(obj, list | tuple) and depth < 64:
        size *= len(obj)
        if not obj:
            return 0
        obj = obj[0]
        depth += 1
    return size


def _as_array(obj: Any, where: str, max_elements: int) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if not isinstance(obj, list | tuple):
        raise DataFileError(f"{where}: expected an array, found {type(obj).__name__}")
    n = _nested_size(obj)
    if n > max_elements:
        raise ResourceLimitError(
            f"{where}: nested lists expand to {n:,} values, more than the limit of "
            f"{max_elements:,} (refused before building the array)"
        )
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
    events = []
    for i in range(lengths["X"]):
        where = f"{path} (event {i})"
        arrays = (_as_array(data[k][i], f"{where} {k}", limit // 4) for k in COLUMNS)
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
