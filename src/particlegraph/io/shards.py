"""Parquet shards of per-event ragged arrays, parameterised by a schema of named columns.

A shard is one Parquet file with one row per event. Each column holds one float32 array of shape
``(N_i, width)`` per event (``N_i`` may differ between events), stored as
``list<fixed_size_list<float32, width>>`` so that ``ak.from_parquet`` gives
``n * {name: var * width * float32}`` directly. A JSON-serialisable dict (for example the
generation settings) rides along in the Parquet key-value metadata under ``particlegraph``.

Every task stores its events through this module with its own :data:`Schema` (MLPF: ``X`` 12,
``ygen`` 7, ``ycand`` 7). Writes are atomic (temporary file + rename), so an interrupted run
never leaves half a shard; the row count is read from the footer without reading any data.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from particlegraph.atomic import atomic_path
from particlegraph.errors import DataFileError, brief
from particlegraph.io.limits import Limits, check_declared

PathLike = str | os.PathLike[str]
#: Column name -> number of float32 values per row of that column.
Schema = Mapping[str, int]

#: Key of the JSON metadata in the Parquet key-value metadata.
METADATA_KEY = b"particlegraph"
#: Version of this shard layout, stored next to the metadata.
FORMAT_VERSION = 1
PARQUET_SUFFIX = ".parquet"


def column_type(width: int) -> pa.DataType:
    """``list<fixed_size_list<float32, width>>`` with non-nullable items (no awkward options)."""
    item = pa.field("item", pa.float32(), nullable=False)
    row = pa.field("item", pa.list_(item, width), nullable=False)
    return pa.list_(row)


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of a shard with these columns."""
    return pa.schema([pa.field(name, column_type(w), nullable=False) for name, w in schema.items()])


def to_arrow(arrays: Sequence[np.ndarray], width: int) -> pa.Array:
    """Stack per-event (N_i, width) arrays into one ``list<fixed_size_list<float32, width>>``."""
    counts = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = np.concatenate(arrays).reshape(-1) if arrays else np.zeros(0, np.float32)
    rows = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), rows).cast(
        column_type(width)
    )


def from_arrow(column: pa.ChunkedArray | pa.Array, width: int) -> list[np.ndarray]:
    """Inverse of :func:`to_arrow`: one (N_i, width) float32 array per event (copies)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    offsets = offsets - offsets[0]  # a sliced ListArray keeps absolute offsets; flatten() does not
    flat = column.flatten().flatten().to_numpy(zero_copy_only=False)
    table = flat.astype(np.float32, copy=False).reshape(-1, width)
    return [table[a:b].copy() for a, b in itertools.pairwise(offsets)]


def write_shard(
    path: PathLike,
    columns: Mapping[str, Sequence[np.ndarray]],
    schema: Schema,
    metadata: Mapping[str, Any],
) -> None:
    """Write one shard atomically.

    Args:
        path: output file (``.parquet``); parent folders are created.
        columns: name -> one (N_i, width) float32 array per event, for every name of ``schema``,
            already checked by the caller (same number of events in every column).
        schema: column name -> width.
        metadata: JSON-serialisable dict, returned by :func:`read_metadata`.
    """
    path = Path(path)
    try:
        meta_json = json.dumps(dict(metadata))
    except (TypeError, ValueError) as err:
        raise DataFileError(f"{path}: metadata is not JSON-serialisable ({brief(err)})") from err
    arrays = [to_arrow(columns[name], width) for name, width in schema.items()]
    kv = {METADATA_KEY: meta_json.encode(), b"particlegraph_format": str(FORMAT_VERSION).encode()}
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(schema).with_metadata(kv))
    with atomic_path(path) as tmp:
        # byte-stream-split floats without dictionaries: ~30 % smaller than plain zstd here
        pq.write_table(
            table, tmp, compression="zstd", use_dictionary=False, use_byte_stream_split=True
        )


def open_shard(path: PathLike) -> pq.ParquetFile:
    """The Parquet file at ``path``; :class:`DataFileError` when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(f"{path}: not a readable Parquet file ({brief(err)})") from err


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata dict stored by :func:`write_shard` (``{}`` when the shard has none)."""
    path = Path(path)
    kv = open_shard(path).schema_arrow.metadata or {}
    raw = kv.get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path}: metadata is not valid JSON ({brief(err)})") from err
    return meta if isinstance(meta, dict) else {"value": meta}


def count_rows(path: PathLike, limits: Limits | None = None) -> int:
    """Number of events in a shard, from its footer (no data read), checked against ``limits``."""
    pf = open_shard(path)
    check_size(path, pf, limits)
    return int(pf.metadata.num_rows)


def check_size(path: PathLike, pf: pq.ParquetFile, limits: Limits | None = None) -> None:
    """Refuse a shard whose footer declares more rows or uncompressed bytes than ``limits``.

    Only the footer is read, so a small file that declares 1e8 events fails at once instead of
    allocating gigabytes (:class:`~particlegraph.errors.ResourceLimitError`).
    """
    lim = limits or Limits.from_env()
    meta = pf.metadata
    check_declared(path, "rows", int(meta.num_rows), lim.max_rows,
                   "set PARTICLEGRAPH_MAX_ROWS higher if the file is genuine")  # fmt: skip
    size = sum(int(meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups))
    check_declared(path, "bytes uncompressed", size, lim.max_bytes)


def read_shard(
    path: PathLike, schema: Schema, limits: Limits | None = None
) -> dict[str, list[np.ndarray]]:
    """Every column of ``schema`` of one shard: name -> one (N_i, width) float32 array per event.

    The footer's row count and uncompressed size are checked against ``limits`` (default
    :meth:`Limits.from_env`) before any data is read.

    Raises:
        DataFileError: a column is missing, has another type or width, or cannot be read.
        ResourceLimitError: the footer declares more than the limits.
    """
    path = Path(path)
    pf = open_shard(path)
    check_size(path, pf, limits)
    missing = [c for c in schema if c not in pf.schema_arrow.names]
    if missing:
        raise DataFileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(schema)}"
        )
    try:
        table = pf.read(columns=list(schema))
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(f"{path}: cannot read ({brief(err)})") from err
    out = {}
    for name, width in schema.items():
        col = table.column(name)
        typ = col.type
        ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_fixed_size_list(
            typ.value_type
        )
        if not ok or typ.value_type.list_size != width:
            raise DataFileError(
                f"{path}: column {name} has type {typ}, expected list<fixed_size_list<float, {width}>>"
            )
        out[name] = from_arrow(col, width)
    return out


def list_shards(
    directory: PathLike, suffixes: tuple[str, ...] = (PARQUET_SUFFIX,), what: str = "event"
) -> list[Path]:
    """Sorted files ending in one of ``suffixes`` directly inside ``directory`` (hidden
    temporary files excluded); :class:`DataFileError` when there is none or no such folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataFileError(f"{directory}: no such directory")
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffixes)
    )
    if not files:
        kinds = " or ".join(f"*{s}" for s in suffixes)
        raise DataFileError(f"{directory}: no {kinds} {what} files found")
    return files
