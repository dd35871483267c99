"""Physics checks on read: each unphysical value is named by file, event, column and row."""

from __future__ import annotations

import numpy as np
import pytest
from mlpf_events import make_events

from particlegraph.errors import DataFileError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.schema import checked, validate_physics, validation


def _spoil(column: int, index: tuple[int, int], value: float) -> MLPFEvent:
    ev = make_events(1, 0)[0]
    arrays = [a.copy() for a in ev]
    arrays[column][index] = value
    return MLPFEvent(*arrays)


def test_physical_events_pass():
    for ev in make_events(5, 1):
        validate_physics(ev, "ok")


@pytest.mark.parametrize(
    ("column", "index", "value", "message"),
    [
        (0, (2, 1), np.nan, "X row 2 column pt is nan"),
        (0, (0, 2), np.inf, "X row 0 column eta is inf"),
        (1, (1, 6), -np.inf, "ygen row 1 column energy is -inf"),
        (0, (3, 0), 9.0, "X row 3 has element type 9; expected 1 or 2"),
        (1, (0, 0), 17.0, "ygen row 0 has class id 17; expected 0..5"),
        (2, (4, 0), -2.0, "ycand row 4 has class id -2"),
        (2, (4, 0), 1.5, "ycand row 4 has class id 1.5"),
        (1, (2, 2), -1.0, "ygen row 2 pt is negative"),
        (0, (5, 3), 0.5, "X row 5 sin_phi/cos_phi is not a unit vector"),
    ],
)
def test_each_check_names_column_and_row(column, index, value, message):
    ev = _spoil(column, index, value)
    if column > 0 and ev[column][index[0], 0] == 0 and "class id" not in message:
        pytest.skip("row without a particle in this seed")
    with pytest.raises(DataFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_physics(ev, "f (event 0)")


def test_negative_tower_energy_is_refused():
    ev = make_events(1, 0)[0]
    tower = int(np.flatnonzero(ev.X[:, 0] == 1)[0])
    x = ev.X.copy()
    x[tower, 6] = -0.5  # E_em
    with pytest.raises(DataFileError, match=f"X row {tower} column E_em is negative"):
        validate_physics(MLPFEvent(x, ev.ygen, ev.ycand))


def test_reader_names_the_file_and_no_validate_reads_it(tmp_path):
    path = tmp_path / "bad.parquet"
    store.write_events(path, [make_events(1, 0)[0], _spoil(1, (0, 0), 17.0)], {})
    with pytest.raises(
        DataFileError, match=r"bad\.parquet \(event 1\): ygen row 0 .*--no-validate"
    ):
        store.read_events(path)
    with validation(False):
        assert store.read_events(path)[1].ygen[0, 0] == 17.0
    with pytest.raises(DataFileError):  # the switch is restored afterwards
        store.read_events(path)


def test_strings_are_refused_before_conversion():
    strings = np.array([["a"] * 12] * 2)
    with pytest.raises(DataFileError, match="holds <U1 values, expected numbers"):
        checked(MLPFEvent(strings, np.zeros((2, 7)), np.zeros((2, 7))))
