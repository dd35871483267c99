"""Public Delphes ``.pkl.bz2`` layout: exact round trip and every kind of bad file."""

from __future__ import annotations

import bz2
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlpf_events import random_events

from particlegraph.errors import DataFileError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import delphes_pkl as delphes
from particlegraph.tasks.mlpf.schema import validation


@pytest.fixture(autouse=True)
def _random_arrays() -> Iterator[None]:
    """make_events draws random numbers, not physical events: these storage tests skip the
    physics checks (they are tested in tests/tasks/mlpf/test_mlpf_validation.py)."""
    with validation(False):
        yield


def make_events(seed: int, sizes: tuple[int, ...] = (5, 0, 2)) -> list[MLPFEvent]:
    return random_events(seed, sizes)


def dump(path: Path, obj: object, protocol: int = 4) -> Path:
    path.write_bytes(bz2.compress(pickle.dumps(obj, protocol=protocol)))
    return path


def test_round_trip_exact_and_public_layout(tmp_path: Path) -> None:
    events = make_events(0)
    path = tmp_path / "tev14_ttbar_0.pkl.bz2"
    delphes.write_pkl(path, events)
    raw = pickle.loads(bz2.decompress(path.read_bytes()))
    assert sorted(raw) == ["X", "ycand", "ygen"]
    assert isinstance(raw["X"], list) and raw["X"][0].shape == (5, 12)
    back = delphes.read_pkl(path)
    for a, b in zip(events, back, strict=True):
        for xa, xb in zip(a, b, strict=True):
            assert xb.dtype == np.float32
            np.testing.assert_array_equal(xa, xb)


def test_reads_float64_and_protocol5_files(tmp_path: Path) -> None:
    ev = make_events(1, (3,))[0]
    data = {"X": [ev.X.astype(np.float64)], "ygen": [ev.ygen], "ycand": [ev.ycand]}
    back = delphes.read_pkl(dump(tmp_path / "a.pkl.bz2", data, protocol=5))
    assert back[0].X.dtype == np.float32
    np.testing.assert_array_equal(back[0].X, ev.X)


def test_reads_numpy1_protocol2_pickles(tmp_path: Path) -> None:
    """Files written by numpy 1 name ``numpy.core``; protocol 2 stores bytes via ``_codecs``."""
    ev = make_events(5, (2,))[0]
    raw = pickle.dumps({"X": [ev.X], "ygen": [ev.ygen], "ycand": [ev.ycand]}, protocol=2)
    path = tmp_path / "old.pkl.bz2"
    path.write_bytes(bz2.compress(raw.replace(b"numpy._core", b"numpy.core")))
    back = delphes.read_pkl(path)
    np.testing.assert_array_equal(back[0].X, ev.X)


def test_bad_files_raise_one_clear_error(tmp_path: Path) -> None:
    ev = make_events(2, (3,))[0]
    with pytest.raises(DataFileError, match=r"nope\.pkl\.bz2: no such file"):
        delphes.read_pkl(tmp_path / "nope.pkl.bz2")
    missing = dump(tmp_path / "m.pkl.bz2", {"X": [ev.X], "ygen": [ev.ygen]})
    with pytest.raises(DataFileError, match=r"m\.pkl\.bz2: missing key\(s\) ycand"):
        delphes.read_pkl(missing)
    wide = dump(
        tmp_path / "w.pkl.bz2", {"X": [ev.X[:, :10]], "ygen": [ev.ygen], "ycand": [ev.ycand]}
    )
    with pytest.raises(
        DataFileError, match=r"w\.pkl\.bz2 \(event 0\): column X has shape \(3, 10\)"
    ):
        delphes.read_pkl(wide)
    uneven = dump(tmp_path / "u.pkl.bz2", {"X": [ev.X], "ygen": [], "ycand": [ev.ycand]})
    with pytest.raises(DataFileError, match="different numbers of events"):
        delphes.read_pkl(uneven)
    not_dict = dump(tmp_path / "l.pkl.bz2", [ev.X])
    with pytest.raises(DataFileError, match="expected a dict"):
        delphes.read_pkl(not_dict)
    good = tmp_path / "good.pkl.bz2"
    delphes.write_pkl(good, [ev])
    truncated = tmp_path / "t.pkl.bz2"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataFileError, match=r"t\.pkl\.bz2: not a complete bz2 file"):
        delphes.read_pkl(truncated)


def test_code_in_a_pickle_is_refused(tmp_path: Path) -> None:
    evil = dump(tmp_path / "e.pkl.bz2", {"X": [print], "ygen": [], "ycand": []})
    with pytest.raises(DataFileError, match=r"refusing to load builtins\.print"):
        delphes.read_pkl(evil)


def test_bad_events_are_not_written(tmp_path: Path) -> None:
    ev = make_events(3, (3,))[0]
    with pytest.raises(DataFileError, match="column ygen"):
        delphes.write_pkl(tmp_path / "a.pkl.bz2", [MLPFEvent(ev.X, ev.ygen[:, :6], ev.ycand)])
    assert list(tmp_path.iterdir()) == []
