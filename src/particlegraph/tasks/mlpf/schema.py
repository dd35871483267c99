"""The MLPF task's storage schema: the columns of one event, their shape and physics checks.

One event is ``X`` (N, 12) detector elements and ``ygen`` / ``ycand`` (N, 7) targets; the column
meanings are the engine's (:mod:`particlegraph.sim.elements`, produced by the simulation that
the anomaly task shares). Parquet shards (:mod:`.store`) and public ``.pkl.bz2`` files
(:mod:`.delphes_pkl`) both hold events of this schema.

Every reader checks the shapes (:func:`validate_event`) and, unless switched off with
:func:`validation` (``--no-validate``), the physics (:func:`validate_physics`): finite values,
element types in {1, 2}, non-negative energies and pT, class ids in 0..5, and
sin^2 + cos^2 = 1 for every stored angle. Bad values otherwise travel silently into training
(an IndexError for class 17, a "non-finite loss") or crash fastjet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from particlegraph.errors import DataFileError
from particlegraph.sim.elements import (
    ELEM_TOWER,
    ELEM_TRACK,
    NUM_CLASSES,
    NUM_X_FEATURES,
    NUM_Y_FEATURES,
    TOWER_FEATURES,
    TRACK_FEATURES,
    Y_COS_PHI,
    Y_ENERGY,
    Y_FEATURES,
    Y_PID,
    Y_PT,
    Y_SIN_PHI,
    MLPFEvent,
)

#: Column name -> width, in file order.
COLUMNS = {"X": NUM_X_FEATURES, "ygen": NUM_Y_FEATURES, "ycand": NUM_Y_FEATURES}
#: Suffix of the public Delphes MLPF files.
PKL_SUFFIX = ".pkl.bz2"
#: Largest allowed |sin^2 + cos^2 - 1| (float32 storage of a unit vector is exact to ~1e-7).
UNIT_TOLERANCE = 1e-3
#: X columns that must be >= 0: tower Et, E, E_em, E_had; track pT, p.
_TOWER_NONNEG = (1, 5, 6, 7)
_TRACK_NONNEG = (1, 5)

_enabled = True


def validation_enabled() -> bool:
    """Whether readers run :func:`validate_physics` (default True)."""
    return _enabled


def set_validation(enabled: bool) -> None:
    """Switch the physics checks of every reader on or off for this process (``--no-validate``)."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Run the block with the physics checks on or off, then restore the previous setting."""
    before = _enabled
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(before)


def reading(validate: bool = True) -> contextlib.AbstractContextManager[None]:
    """``--no-validate`` for one command: physics checks off when ``validate`` is False,
    otherwise the current setting is kept (a test or caller may have switched them off)."""
    return validation(False) if not validate else contextlib.nullcontext()


def validate_event(event: MLPFEvent, where: str = "event") -> MLPFEvent:
    """Check shapes of one event and return it as float32 arrays.

    Raises :class:`DataFileError` naming ``where`` when a column has the wrong number of
    columns, holds something other than numbers, or the three arrays disagree on N.
    """
    arrays = []
    for j, (name, width) in enumerate(COLUMNS.items()):
        arr = np.asarray(event[j])  # MLPFEvent or any (X, ygen, ycand) triple
        if arr.dtype.kind not in "biuf":
            raise DataFileError(
                f"{where}: column {name} holds {arr.dtype} values, expected numbers "
                "(the file is not an MLPF event file)"
            )
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, width)
        if arr.ndim != 2 or arr.shape[1] != width:
            raise DataFileError(
                f"{where}: column {name} has shape {arr.shape}, expected (N, {width})"
            )
        arrays.append(np.ascontiguousarray(arr, dtype=np.float32))
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        shapes = ", ".join(f"{n}={a.shape}" for n, a in zip(COLUMNS, arrays, strict=True))
        raise DataFileError(f"{where}: X, ygen and ycand have different numbers of rows ({shapes})")
    return MLPFEvent(*arrays)


def _fail(where: str, column: str, row: int, what: str) -> DataFileError:
    return DataFileError(
        f"{where}: {column} row {row} {what} (fix the file, or pass --no-validate to read it anyway)"
    )


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0])


def validate_physics(event: MLPFEvent, where: str = "event") -> None:
    """Raise :class:`DataFileError` naming the column and row of the first unphysical value.

    Checks, on float32 arrays from :func:`validate_event`:

    - every value of X, ygen and ycand is finite;
    - X element type (column 0) is 1 (tower) or 2 (track);
    - towers: Et, E, E_em, E_had >= 0; tracks: pT, p >= 0;
    - ``|sin^2 + cos^2 - 1| <= UNIT_TOLERANCE`` for phi of every element and phi_outer of tracks
      (a track's phi_outer stored as (0, 0) counts as absent);
    - ygen / ycand: class id an integer in 0..5, pT >= 0, E >= 0, and for rows with a particle
      (class != 0) a unit (sin phi, cos phi).
    """
    x = event.X
    for name, arr in zip(COLUMNS, event, strict=True):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = _first(bad)
            col = int(np.flatnonzero(bad[row])[0])
            label = _label(name, x, row, col)
            raise _fail(where, name, row, f"column {label} is {arr[row, col]}")
    kind = x[:, 0]
    bad_kind = (kind != ELEM_TOWER) & (kind != ELEM_TRACK)
    if bad_kind.any():
        row = _first(bad_kind)
        raise _fail(where, "X", row, f"has element type {kind[row]:g}; expected 1 or 2")
    for elem, cols, names in (
        (ELEM_TOWER, _TOWER_NONNEG, TOWER_FEATURES),
        (ELEM_TRACK, _TRACK_NONNEG, TRACK_FEATURES),
    ):
        rows = kind == elem
        neg = (x[:, cols] < 0) & rows[:, None]
        if neg.any():
            row = _first(neg)
            col = cols[int(np.flatnonzero(neg[row])[0])]
            raise _fail(where, "X", row, f"column {names[col]} is negative ({x[row, col]:g})")
    # phi_outer of a track may be absent (stored as 0, 0: not propagated); otherwise a unit vector
    outer_given = (kind == ELEM_TRACK) & ((x[:, 7] != 0) | (x[:, 8] != 0))
    units = [(3, 4, np.ones(len(x), bool), "sin_phi/cos_phi"),
             (7, 8, outer_given, "sin_phi_outer/cos_phi_outer")]  # fmt: skip
    for s, c, rows, label in units:
        off = (np.abs(x[:, s] ** 2 + x[:, c] ** 2 - 1.0) > UNIT_TOLERANCE) & rows
        if off.any():
            row = _first(off)
            vec = f"({x[row, s]:g}, {x[row, c]:g})"
            raise _fail(where, "X", row, f"{label} is not a unit vector {vec}")
    for name, y in (("ygen", event.ygen), ("ycand", event.ycand)):
        pid = y[:, Y_PID]
        bad = (pid != np.round(pid)) | (pid < 0) | (pid >= NUM_CLASSES)
        if bad.any():
            row = _first(bad)
            raise _fail(
                where, name, row, f"has class id {pid[row]:g}; expected 0..{NUM_CLASSES - 1}"
            )
        for col in (Y_PT, Y_ENERGY):
            neg = y[:, col] < 0
            if neg.any():
                row = _first(neg)
                raise _fail(where, name, row, f"{Y_FEATURES[col]} is negative ({y[row, col]:g})")
        off = (np.abs(y[:, Y_SIN_PHI] ** 2 + y[:, Y_COS_PHI] ** 2 - 1.0) > UNIT_TOLERANCE) & (
            pid != 0
        )
        if off.any():
            row = _first(off)
            vec = f"({y[row, Y_SIN_PHI]:g}, {y[row, Y_COS_PHI]:g})"
            raise _fail(where, name, row, f"sin_phi/cos_phi is not a unit vector {vec}")


def _label(name: str, x: np.ndarray, row: int, col: int) -> str:
    if name != "X":
        return Y_FEATURES[col]
    names = TRACK_FEATURES if x[row, 0] == ELEM_TRACK else TOWER_FEATURES
    return names[col] if names[col] != "-" else str(col)


def checked(event: MLPFEvent, where: str = "event") -> MLPFEvent:
    """:func:`validate_event` then, when enabled, :func:`validate_physics`; the float32 event."""
    event = validate_event(event, where)
    if _enabled:
        validate_physics(event, where)
    return event
