"""Parquet event shards: the toolkit's own on-disk format for MLPF events.

A dataset is a directory of shard files ``*.parquet`` (one shard = ``events_per_file`` events,
100 by default). Each shard has one row per event and three columns

- ``X``: ``list<fixed_size_list<float32, 12>>``, awkward type ``var * 12 * float32``
- ``ygen``, ``ycand``: ``list<fixed_size_list<float32, 7>>``, awkward type ``var * 7 * float32``

so ``ak.from_parquet(path)`` gives ``n * {X: var * 12 * float32, ...}`` directly. The generation
config (or any JSON-serialisable dict) rides along in the Parquet key-value metadata under the
key ``particlegraph``. Public ``.pkl.bz2`` shards (see :mod:`particlegraph.tasks.mlpf.delphes_pkl`) sit
next to Parquet ones: :func:`list_event_files` and :func:`iter_events` accept both.

Writes are atomic (temporary file + rename): an interrupted run never leaves half a shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from particlegraph.errors import DataFileError
from particlegraph.io import shards
from particlegraph.io.shards import PARQUET_SUFFIX, read_metadata
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.delphes_pkl import read_pkl
from particlegraph.tasks.mlpf.schema import (
    COLUMNS,
    PKL_SUFFIX,
    validate_event,
    validate_physics,
    validation_enabled,
)

PathLike = str | os.PathLike[str]

__all__ = [
    "COLUMNS", "PARQUET_SUFFIX", "PKL_SUFFIX", "count_events", "is_event_file", "iter_events",
    "list_event_files", "read_any", "read_events", "read_metadata", "resolve_files",
    "validate_event", "write_events",
]  # fmt: skip


def write_events(path: PathLike, events: Sequence[MLPFEvent], metadata: dict[str, Any]) -> None:
    """Write ``events`` to one Parquet shard at ``path``, atomically.

    Args:
        path: output file, normally ending in ``.parquet``; parent folders are created.
        events: sequence of :class:`MLPFEvent` (``X`` (N, 12), ``ygen``/``ycand`` (N, 7));
            other float dtypes are cast to float32.
        metadata: JSON-serialisable dict (for example the generation config), stored in the
            Parquet key-value metadata and returned by :func:`read_metadata`.
    """
    path = Path(path)
    checked = [validate_event(ev, f"{path} (event {i})") for i, ev in enumerate(events)]
    columns = {name: [ev[j] for ev in checked] for j, name in enumerate(COLUMNS)}
    shards.write_shard(path, columns, COLUMNS, metadata)


def read_events(path: PathLike) -> list[MLPFEvent]:
    """Read every event of one Parquet shard as float32 numpy arrays.

    The footer is checked against the size limits first (:mod:`particlegraph.io.limits`), and
    every event against the physics checks of :func:`~.schema.validate_physics` unless they are
    switched off (:func:`~.schema.validation`, ``--no-validate``).
    """
    cols = shards.read_shard(path, COLUMNS)
    events = [MLPFEvent(*arrs) for arrs in zip(*(cols[c] for c in COLUMNS), strict=True)]
    if validation_enabled():
        for i, ev in enumerate(events):
            validate_physics(ev, f"{path} (event {i})")
    return events


def is_event_file(path: PathLike) -> bool:
    """True for names ending in ``.parquet`` or ``.pkl.bz2`` (hidden temporary files excluded)."""
    name = Path(path).name
    return not name.startswith(".") and name.endswith((PARQUET_SUFFIX, PKL_SUFFIX))


def list_event_files(directory: PathLike) -> list[Path]:
    """Sorted event shards (``*.parquet`` and ``*.pkl.bz2``) directly inside ``directory``.

    Raises :class:`DataFileError` when the directory does not exist or holds no shard.
    """
    return shards.list_shards(directory, (PARQUET_SUFFIX, PKL_SUFFIX))


def resolve_files(source: PathLike | Iterable[PathLike]) -> list[Path]:
    """A directory, one shard, or an iterable of shards -> list of shard paths (checked to exist)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return list_event_files(path)
        paths = [path]
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise DataFileError("no event files given")
    for p in paths:
        if not p.is_file():
            raise DataFileError(f"{p}: no such file")
        if not is_event_file(p):
            raise DataFileError(f"{p}: unknown event file type; expected .parquet or .pkl.bz2")
    return paths


def read_any(path: PathLike) -> list[MLPFEvent]:
    """Read one shard, Parquet or public ``.pkl.bz2``, chosen by suffix."""
    path = Path(path)
    if path.name.endswith(PKL_SUFFIX):
        return read_pkl(path)
    if path.name.endswith(PARQUET_SUFFIX):
        return read_events(path)
    raise DataFileError(f"{path}: unknown event file type; expected .parquet or .pkl.bz2")


def count_events(path: PathLike) -> int:
    """Number of events in one shard: Parquet from its footer (no data read), pkl by loading."""
    path = Path(path)
    if path.name.endswith(PARQUET_SUFFIX):
        return shards.count_rows(path)
    return len(read_any(path))


def iter_events(source: PathLike | Iterable[PathLike]) -> Iterator[MLPFEvent]:
    """Stream events shard by shard from a directory, one shard, or a list of shards.

    Only one shard is held in memory at a time, so a dataset never has to fit in memory.
    """
    for path in resolve_files(source):
        yield from read_any(path)
