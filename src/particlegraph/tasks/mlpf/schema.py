"""The MLPF task's storage schema: the columns of one event and their check.

One event is ``X`` (N, 12) detector elements and ``ygen`` / ``ycand`` (N, 7) targets; the column
meanings are the engine's (:mod:`particlegraph.sim.elements`, produced by the simulation that
the anomaly task shares). Parquet shards (:mod:`.store`) and public ``.pkl.bz2`` files
(:mod:`.delphes_pkl`) both hold events of this schema.
"""

from __future__ import annotations

import numpy as np

from particlegraph.errors import DataFileError
from particlegraph.sim.elements import NUM_X_FEATURES, NUM_Y_FEATURES, MLPFEvent

#: Column name -> width, in file order.
COLUMNS = {"X": NUM_X_FEATURES, "ygen": NUM_Y_FEATURES, "ycand": NUM_Y_FEATURES}
#: Suffix of the public Delphes MLPF files.
PKL_SUFFIX = ".pkl.bz2"


def validate_event(event: MLPFEvent, where: str = "event") -> MLPFEvent:
    """Check shapes of one event and return it as float32 arrays.

    Raises :class:`DataFileError` naming ``where`` when a column has the wrong number of
    columns or the three arrays disagree on the number of elements N.
    """
    arrays = []
    for j, (name, width) in enumerate(COLUMNS.items()):
        arr = np.asarray(event[j])  # MLPFEvent or any (X, ygen, ycand) triple
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
