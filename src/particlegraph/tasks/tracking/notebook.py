"""The GNN-tracking exercise's ``tracks.pickle``, read with a restricted unpickler.

Layout: a list of samples (events), each a dict with

- ``hits``: ``{"xyz": (N, 3) positions, "emb": (N, D) the exercise's stage-1 embedding,
  "particle_id": (N,) true particle per hit}``;
- ``graphs``: ``{"pred": ..., "loss": ..., "true": ...}``, each a neighbour list: one sequence
  of neighbour indices per hit (an (E, 2) or (2, E) edge array is accepted too).

Only plain Python containers, numbers and numpy arrays can be unpickled (a pickle can run
arbitrary code; anything else is refused with :class:`DataFileError`), within the input limits
of :mod:`particlegraph.io.limits` (:func:`particlegraph.io.pickles.load_pickle`). Converted events go to
the TrackML CSV layout, so every command of the task works on them; the exercise has no cell
information (cells files are empty), no momenta (the score's pT weight is taken as 1) and no
vertices (z_vertex = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.errors import DataFileError
from particlegraph.io.pickles import load_pickle
from particlegraph.tasks.tracking.score import hit_weights
from particlegraph.tasks.tracking.trackml import COLUMNS, TrackMLEvent

#: (module, name) pairs a tracks.pickle may reference: numpy array / scalar reconstruction.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "complex"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}  # fmt: skip


@dataclass
class NotebookSample:
    """One sample: ``xyz`` (N, 3), ``emb`` (N, D), ``particle_id`` (N,), graphs as (2, E) arrays."""

    xyz: np.ndarray
    emb: np.ndarray
    particle_id: np.ndarray
    graphs: dict[str, np.ndarray]


def _edges(obj: Any, n: int, where: str) -> np.ndarray:
    """A neighbour list (per-hit index sequences) or an edge array as (2, E) [neighbour, hit]."""
    arr = None
    if isinstance(obj, np.ndarray) and obj.dtype != object and obj.ndim == 2:
        arr = obj.T if obj.shape[1] == 2 and obj.shape[0] != 2 else obj
    if arr is None:
        try:
            lists = [np.asarray(v, dtype=np.int64).reshape(-1) for v in obj]
        except (TypeError, ValueError) as err:
            raise DataFileError(f"{where}: not a neighbour list ({err})") from err
        if len(lists) != n:
            raise DataFileError(f"{where}: neighbour list has {len(lists)} entries for {n} hits")
        counts = np.array([len(v) for v in lists], dtype=np.int64)
        src = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        arr = np.stack([src, np.repeat(np.arange(n), counts)])
    arr = np.asarray(arr, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise DataFileError(f"{where}: hit index out of range [0, {n})")
    return arr


def read_tracks_pickle(path: str | Path) -> list[NotebookSample]:
    """Read a ``tracks.pickle``; :class:`DataFileError` for anything that does not fit."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path} does not exist; expected the exercise's tracks.pickle")
    # restricted, bounded in bytes read and in values through shared references (io.limits)
    data = load_pickle(path, _ALLOWED, what="tracks.pickle")
    if not isinstance(data, list | tuple) or not data:
        raise DataFileError(
            f"{path}: expected a non-empty list of samples, got {type(data).__name__}"
        )
    out = []
    for i, s in enumerate(data):
        where = f"{path} sample {i}"
        if not isinstance(s, dict) or not isinstance(s.get("hits"), dict):
            raise DataFileError(f"{where}: expected a dict with a 'hits' dict")
        hits = s["hits"]
        missing = [k for k in ("xyz", "particle_id") if k not in hits]
        if missing:
            raise DataFileError(f"{where}: 'hits' lacks {missing}")
        xyz = np.asarray(hits["xyz"], dtype=np.float64)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise DataFileError(f"{where}: hits['xyz'] must have shape (N, 3), got {xyz.shape}")
        n = xyz.shape[0]
        pid = np.asarray(hits["particle_id"]).reshape(-1).astype(np.int64)
        emb = np.asarray(hits.get("emb", np.zeros((n, 0))), dtype=np.float64).reshape(n, -1)
        if pid.shape[0] != n:
            raise DataFileError(f"{where}: {pid.shape[0]} particle ids for {n} hits")
        graphs = {
            k: _edges(v, n, f"{where} graphs[{k!r}]")
            for k, v in dict(s.get("graphs") or {}).items()
        }
        out.append(NotebookSample(xyz, emb, pid, graphs))
    return out


def sample_to_event(sample: NotebookSample, event_id: int) -> TrackMLEvent:
    """A sample in the TrackML layout (particle ids shifted so that 0 stays noise only)."""
    n = sample.xyz.shape[0]
    hit_id = np.arange(1, n + 1, dtype=np.int64)
    pid = sample.particle_id
    if np.any(pid < 0):
        pid = np.where(pid < 0, 0, pid)
    parts = np.unique(pid[pid != 0])
    weight = hit_weights(pid, sample.xyz[:, 2], np.zeros(n), np.where(pid != 0, 10.0, 0.0))
    zeros = np.zeros(n)
    nhits = np.array([int((pid == p).sum()) for p in parts.tolist()], dtype=np.int64)
    zp = np.zeros(parts.size)
    return TrackMLEvent(
        event_id,
        hits={"hit_id": hit_id, "x": sample.xyz[:, 0], "y": sample.xyz[:, 1], "z": sample.xyz[:, 2],
              "volume_id": np.zeros(n, np.int64), "layer_id": np.zeros(n, np.int64), "module_id": np.zeros(n, np.int64)},
        cells={k: np.zeros(0, dtype=t) for k, t in COLUMNS["cells"].items()},
        truth={"hit_id": hit_id, "particle_id": pid, "tx": sample.xyz[:, 0], "ty": sample.xyz[:, 1], "tz": sample.xyz[:, 2],
               "tpx": zeros, "tpy": zeros, "tpz": zeros, "weight": weight},
        particles={"particle_id": parts, "vx": zp, "vy": zp, "vz": zp, "px": zp, "py": zp, "pz": zp,
                   "q": np.zeros(parts.size, np.int64), "nhits": nhits},
    )  # fmt: skip
