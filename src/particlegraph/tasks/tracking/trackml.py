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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from particlegraph.atomic import write_text
from particlegraph.errors import DataFileError

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


def read_table(path: Path, kind: str) -> Table:
    """Read one TrackML CSV file of ``kind`` (hits, cells, truth, particles, submission).

    Raises:
        DataFileError: the file is missing, unreadable, or lacks a column of the layout.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not path.is_file():
        raise DataFileError(f"{path} does not exist; expected a TrackML {kind} file")
    try:
        table = pcsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataFileError(f"{path}: not a readable CSV file ({err})") from err
    out: Table = {}
    for name, dtype in COLUMNS[kind].items():
        if name not in table.column_names:
            raise DataFileError(
                f"{path}: column {name!r} missing; a TrackML {kind} file has columns "
                + ",".join(COLUMNS[kind])
            )
        col = table.column(name)
        if col.null_count:
            raise DataFileError(f"{path}: column {name!r} has empty values")
        try:
            out[name] = col.to_numpy().astype(dtype)
        except (TypeError, ValueError, pa.ArrowException) as err:
            raise DataFileError(f"{path}: column {name!r} is not numeric ({err})") from err
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
    hits = read_table(_find(folder, prefix, "hits"), "hits")
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
    """Write the event's hits, cells (and truth, particles when present) into ``folder``."""
    folder = Path(folder)
    prefix = event_prefix(ev.event_id)
    parts: list[tuple[str, Table | None]] = [
        ("hits", ev.hits), ("cells", ev.cells), ("truth", ev.truth), ("particles", ev.particles),
    ]  # fmt: skip
    paths = []
    for kind, table in parts:
        if table is None:
            continue
        path = folder / f"{prefix}-{kind}.csv"
        write_table(path, table, kind)
        paths.append(path)
    return paths


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
    return sub["track_id"][rows]
