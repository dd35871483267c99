"""The TrackML CSV layout, read and written exactly, and an in-memory :class:`TrackMLEvent`.

One event is four files (Amrouche et al. 2019, arXiv:1904.06778, and the challenge's data page):

- ``event<ID>-hits.csv``: ``hit_id,x,y,z,volume_id,layer_id,module_id`` (positions in mm);
- ``event<ID>-cells.csv``: ``hit_id,ch0,ch1,value`` (one row per activated channel);
- ``event<ID>-truth.csv``: ``hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight`` (particle_id 0 =
  noise; true position [mm] and momentum [GeV] at the hit; the TrackML score weight);
- ``event<ID>-particles.csv``: ``particle_id,vx,vy,vz,px,py,pz,q,nhits``.

A submission is ``hit_id,track_id`` per event (the challenge's file also had ``event_id``, which
the reader accepts). Floating-point columns are float32 like the public files and are written with
9 significant digits, which reproduces every float32 value; ``<file>.csv.gz`` is read as well.

Reading is bounded and validated (:func:`read_table`): a file larger than 32 MB uncompressed (or
``PARTICLEGRAPH_MAX_INPUT_MB``), a gzip bomb included, is refused within a fraction of a second,
and coordinates must be finite, ids integral, hit ids unique, weights >= 0, events non-empty.
A single-hit event and an all-noise event read normally (the score of the latter is 0).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import atomic_path, disk_full_error, staging_dir, write_text
from particlegraph.errors import DataFileError, brief

#: Columns and dtypes of each file, in file order.
COLUMNS: dict[str, dict[str, type]] = {
    "hits": {
        "hit_id": np.int64, "x": np.float32, "y": np.float32, "z": np.float32,
        "volume_id": np.int64, "layer_id": np.int64, "module_id": np.int64,
    },
    "cells": {"hit_id": np.int64, "ch0": np.int64, "ch1": np.int64, "value": np.float32},
    "truth": {
        "hit_id": np.int64, "particle_id": np.int64, "tx": np.float32, "ty": np.float32,
        "tz": np.float32, "tpx": np.float32, "tpy": np.float32, "tpz": np.float32,
        "weight": np.float32,
    },
    "particles": {
        "particle_id": np.int64, "vx": np.float32, "vy": np.float32, "vz": np.float32,
        "px": np.float32, "py": np.float32, "pz": np.float32, "q": np.int64, "nhits": np.int64,
    },
    "submission": {"hit_id": np.int64, "track_id": np.int64},
}  # fmt: skip

Table = dict[str, np.ndarray]
_EVENT_RE = re.compile(r"^event(\d+)-hits\.csv(\.gz)?$")


def event_prefix(event_id: int) -> str:
    """``event000001000`` for event 1000 (the TrackML naming, nine digits)."""
    return f"event{event_id:09d}"


@dataclass
class TrackMLEvent:
    """One event as column tables (name -> (rows,) array) in the TrackML layout.

    ``truth`` and ``particles`` are None for events without truth (a test sample). Hits are in
    ``hits`` row order everywhere; ``truth`` rows are aligned with ``hits`` (same ``hit_id``).
    """

    event_id: int
    hits: Table
    cells: Table
    truth: Table | None = None
    particles: Table | None = None

    @property
    def num_hits(self) -> int:
        return int(self.hits["hit_id"].shape[0])

    def cell_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Per hit: number of cells (H,) and summed cell value (H,), 0 for hits without cells."""
        index = _lookup(self.hits["hit_id"], self.cells["hit_id"], "cells", self.event_id)
        h = self.num_hits
        count = np.bincount(index, minlength=h).astype(np.float32)
        value = np.bincount(index, weights=self.cells["value"], minlength=h).astype(np.float32)
        return count, value


def _lookup(hit_id: np.ndarray, ids: np.ndarray, what: str, event_id: int) -> np.ndarray:
    """Row in ``hit_id`` of each entry of ``ids``; DataFileError for unknown ids."""
    order = np.argsort(hit_id)
    pos = np.searchsorted(hit_id, ids, sorter=order)
    pos = np.clip(pos, 0, max(hit_id.size - 1, 0))
    if hit_id.size == 0 and ids.size:
        raise DataFileError(f"event {event_id}: {what} refers to hits but the event has none")
    found = order[pos] if hit_id.size else pos
    if ids.size and not np.array_equal(hit_id[found], ids):
        raise DataFileError(
            f"event {event_id}: {what} names hit ids that are not in the hits file; "
            "check that the files belong to the same event"
        )
    return found


#: Largest uncompressed size of one TrackML CSV file [bytes] unless ``PARTICLEGRAPH_MAX_INPUT_MB``
#: says otherwise: a pile-up-200 event's largest file (cells) is about 10 MB; a gzip bomb costs at
#: most this much memory and the time to inflate it (0.15-0.3 s on the shared 2-core machine).
TRACKML_MAX_BYTES = 32 << 20


def _max_bytes() -> int:
    """The per-file limit: ``PARTICLEGRAPH_MAX_INPUT_MB`` when set, else TRACKML_MAX_BYTES."""
    import os

    from particlegraph.io.limits import Limits

    if os.environ.get("PARTICLEGRAPH_MAX_INPUT_MB", "").strip():
        return Limits.from_env().max_bytes
    return TRACKML_MAX_BYTES


def _refuse(path: Path, what: str, limit: int) -> None:
    from particlegraph.errors import ResourceLimitError

    raise ResourceLimitError(
        f"{path}: {what} the limit of {limit / (1 << 20):.0f} MB for one TrackML file "
        "(refused before parsing; set PARTICLEGRAPH_MAX_INPUT_MB higher if the file is genuine)"
    )


def gunzip_bounded(path: Path, limit: int) -> bytes:
    """The decompressed bytes of a gzip file (all its members), refused past ``limit`` bytes.

    zlib's ``max_length`` bounds every step, so a bomb costs at most ``limit`` bytes of memory
    and the time to inflate them.
    """
    import zlib

    size = path.stat().st_size
    if size > limit:
        _refuse(path, f"{size / (1 << 20):.0f} MB compressed, more than", limit)
    data = path.read_bytes()
    parts: list[bytes] = []
    total = 0
    while data:
        dec = zlib.decompressobj(wbits=31)
        part = dec.decompress(data, limit + 1 - total)
        total += len(part)
        if total > limit or dec.unconsumed_tail:
            _refuse(path, "expands to more than", limit)
        if not dec.eof:
            raise DataFileError(f"{path}: the gzip stream is truncated")
        parts.append(part)
        data = dec.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_csv_bounded(path: Path) -> Any:
    """Parse ``path`` (plain or ``.gz``) with pyarrow, refusing more than the limit of bytes.

    A plain file is refused by its size before it is opened; a gzip file is inflated with a
    bounded output (:func:`gunzip_bounded`), so a bomb stops at the limit.
    """
    import zlib

    import pyarrow as pa
    import pyarrow.csv as pcsv

    limit = _max_bytes()
    try:
        if path.name.endswith(".gz"):
            return pcsv.read_csv(pa.BufferReader(gunzip_bounded(path, limit)))
        size = path.stat().st_size
        if size > limit:
            _refuse(path, f"{size / (1 << 20):.0f} MB, more than", limit)
        return pcsv.read_csv(path)
    except (pa.ArrowInvalid, OSError, zlib.error) as err:
        raise DataFileError(f"{path}: not a readable CSV file ({brief(err)})") from err


def _column(path: Path, table: Any, name: str, dtype: type) -> np.ndarray:
    """Column ``name`` as ``dtype``: integers must be integral, floats finite."""
    import pyarrow as pa

    col = table.column(name)
    if col.null_count:
        raise DataFileError(f"{path}: column {name!r} has empty values")
    kind = col.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
        raise DataFileError(f"{path}: column {name!r} is not numeric (type {kind})")
    values = col.to_numpy(zero_copy_only=False)
    if pa.types.is_null(kind):
        return np.zeros(0, dtype=dtype)
    if pa.types.is_floating(kind):
        bad = ~np.isfinite(values)
        if dtype is np.int64:
            bad |= np.where(bad, False, values != np.round(np.where(bad, 0.0, values)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "integers" if dtype is np.int64 else "finite numbers"
            raise DataFileError(
                f"{path}: column {name!r} must hold {what}; row {i + 1} has {float(values[i])!r}"
            )
    column: np.ndarray = values.astype(dtype)
    return column


def read_table(path: Path, kind: str) -> Table:
    """Read one TrackML CSV file of ``kind`` (hits, cells, truth, particles, submission).

    Bounded (see :func:`_read_csv_bounded`) and validated: every column of the layout present,
    numeric, without empty values; integer columns integral (8.7 is refused, not truncated);
    float columns finite; ``hit_id`` unique in hits and truth; truth weights >= 0.

    Raises:
        DataFileError: the file is missing, unreadable, too large (ResourceLimitError), or breaks
            one of the rules above.
    """
    if not path.is_file():
        raise DataFileError(f"{path} does not exist; expected a TrackML {kind} file")
    table = _read_csv_bounded(path)
    out: Table = {}
    for name, dtype in COLUMNS[kind].items():
        if name not in table.column_names:
            raise DataFileError(
                f"{path}: column {name!r} missing; a TrackML {kind} file has columns "
                + ",".join(COLUMNS[kind])
            )
        out[name] = _column(path, table, name, dtype)
    if kind in ("hits", "truth") and np.unique(out["hit_id"]).size != out["hit_id"].size:
        raise DataFileError(f"{path}: hit_id values repeat; each hit needs its own id")
    if kind == "truth":
        from particlegraph.tasks.tracking.score import check_weights

        check_weights(out["weight"], str(path))
    return out


def format_table(table: Table, kind: str) -> str:
    """CSV text of ``table`` in the column order of ``kind`` (floats with 9 digits)."""
    names = list(COLUMNS[kind])
    n = int(table[names[0]].shape[0])
    cols = []
    for name in names:
        values = np.asarray(table[name])
        if values.shape != (n,):
            raise ValueError(f"column {name!r} has shape {values.shape}, expected ({n},)")
        if COLUMNS[kind][name] is np.float32:
            cols.append(np.char.mod("%.9g", values.astype(np.float32)))
        else:
            cols.append(values.astype(np.int64).astype(str))
    lines = [",".join(names)]
    if n:
        body = cols[0]
        for c in cols[1:]:
            body = np.char.add(np.char.add(body, ","), c)
        lines.extend(body.tolist())
    return "\n".join(lines) + "\n"


def write_table(path: Path, table: Table, kind: str) -> None:
    """Write one TrackML CSV file atomically."""
    write_text(path, format_table(table, kind))


def _find(folder: Path, prefix: str, kind: str) -> Path:
    for suffix in (".csv", ".csv.gz"):
        path = folder / f"{prefix}-{kind}{suffix}"
        if path.is_file():
            return path
    return folder / f"{prefix}-{kind}.csv"


def read_event(folder: str | Path, event_id: int, *, truth: bool = True) -> TrackMLEvent:
    """Read event ``event_id`` from ``folder`` (truth and particles when present and asked for)."""
    folder = Path(folder)
    prefix = event_prefix(event_id)
    hits_path = _find(folder, prefix, "hits")
    hits = read_table(hits_path, "hits")
    if hits["hit_id"].size == 0:
        raise DataFileError(f"{hits_path}: no hits (header only); an event needs at least one hit")
    cells_path = _find(folder, prefix, "cells")
    cells = (
        read_table(cells_path, "cells")
        if cells_path.is_file()
        else {k: np.zeros(0, dtype=t) for k, t in COLUMNS["cells"].items()}
    )
    ev = TrackMLEvent(event_id, hits, cells)
    truth_path = _find(folder, prefix, "truth")
    if truth and truth_path.is_file():
        t = read_table(truth_path, "truth")
        rows = _lookup(t["hit_id"], hits["hit_id"], "hits (against truth)", event_id)
        if t["hit_id"].size != hits["hit_id"].size:
            raise DataFileError(f"{truth_path}: {t['hit_id'].size} rows for {ev.num_hits} hits")
        ev.truth = {k: v[rows] for k, v in t.items()}
        ev.particles = read_table(_find(folder, prefix, "particles"), "particles")
    return ev


def write_event(folder: str | Path, ev: TrackMLEvent) -> list[Path]:
    """Write the event's hits, cells (and truth, particles when present) into ``folder``.

    All or nothing: every file is first written in full to a temporary file, and only then are
    they renamed into place, hits first and particles last; a failure while writing (a full
    disk, say) leaves none of the event's new files.
    """
    folder = Path(folder)
    prefix = event_prefix(ev.event_id)
    parts: list[tuple[str, Table | None]] = [
        ("hits", ev.hits), ("cells", ev.cells), ("truth", ev.truth), ("particles", ev.particles),
    ]  # fmt: skip
    todo = [
        (folder / f"{prefix}-{kind}.csv", table, kind) for kind, table in parts if table is not None
    ]
    with contextlib.ExitStack() as stack:
        # the stack renames in reverse order of entry: enter particles first, so it lands last
        tmps = [stack.enter_context(atomic_path(path)) for path, _, _ in reversed(todo)][::-1]
        for tmp, (path, table, kind) in zip(tmps, todo, strict=True):
            try:
                tmp.write_text(format_table(table, kind))
            except OSError as err:  # name this file, not the one whose rename unwinds first
                full = disk_full_error(err, path)
                if full is None or full is err:
                    raise
                raise full from err
    return [path for path, _, _ in todo]


def write_events(folder: str | Path, events: Iterable[TrackMLEvent]) -> list[int]:
    """Write every event into ``folder``, all or none; returns their ids.

    The events are written into a hidden staging folder inside ``folder`` and moved in only
    when all of them are complete, so a failure (a full disk, a bad event) leaves ``folder`` as
    it was, and removes it again when this call created it.
    """
    folder = Path(folder)
    created = not folder.exists()
    ids: list[int] = []
    try:
        with staging_dir(folder, "events") as stage:
            written = []
            for ev in events:
                written += write_event(stage, ev)
                ids.append(ev.event_id)
            for path in written:  # hits ... particles of each event, in order
                os.replace(path, folder / path.name)
    except BaseException as err:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: nothing but what this call made
        if isinstance(err, OSError) and err.filename:
            staged = Path(os.fsdecode(err.filename))
            if staged.parent.name.startswith(".events."):
                # name the file the user asked for, not its hidden staging copy
                raise OSError(err.errno, err.strerror, os.fspath(folder / staged.name)) from err
        raise
    return ids


def list_events(folder: str | Path) -> list[int]:
    """Event ids of the ``event*-hits.csv[.gz]`` files in ``folder``, ascending.

    Raises:
        DataFileError: ``folder`` is not a directory or holds no TrackML hits file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"{folder} is not a directory of TrackML event files")
    ids = sorted(
        {int(m.group(1)) for p in folder.iterdir() if (m := _EVENT_RE.match(p.name)) is not None}
    )
    if not ids:
        raise DataFileError(
            f"{folder} holds no event*-hits.csv file; generate events with "
            "'particlegraph tracking generate' or point to a TrackML folder"
        )
    return ids


def write_submission(path: str | Path, hit_id: np.ndarray, track_id: np.ndarray) -> None:
    """Write ``hit_id,track_id`` (one row per hit) atomically."""
    write_table(Path(path), {"hit_id": hit_id, "track_id": track_id}, "submission")


def read_submission(path: str | Path, hit_id: np.ndarray) -> np.ndarray:
    """Track id (H,) for each hit in ``hit_id`` from a submission file; every hit must appear."""
    path = Path(path)
    sub = read_table(path, "submission")
    if sub["hit_id"].size != hit_id.size or np.unique(sub["hit_id"]).size != hit_id.size:
        raise DataFileError(f"{path}: a submission needs exactly one row per hit ({hit_id.size})")
    rows = _lookup(sub["hit_id"], hit_id, f"{path.name} (hits)", -1)
    track_id: np.ndarray = sub["track_id"][rows]
    return track_id
