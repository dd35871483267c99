"""Parquet shards: exact round trip, metadata, awkward view, listing, streaming, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlpf_events import random_events

from particlegraph.errors import DataFileError
from particlegraph.io import shards
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import delphes_pkl as delphes
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.schema import validation


@pytest.fixture(autouse=True)
def _random_arrays() -> Iterator[None]:
    """make_events draws random numbers, not physical events: these storage tests skip the
    physics checks (they are tested in tests/tasks/mlpf/test_mlpf_validation.py)."""
    with validation(False):
        yield


def make_events(seed: int, sizes: tuple[int, ...] = (4, 0, 7)) -> list[MLPFEvent]:
    return random_events(seed, sizes)


def assert_same(a: list[MLPFEvent], b: list[MLPFEvent]) -> None:
    assert len(a) == len(b)
    for ea, eb in zip(a, b, strict=True):
        for xa, xb in zip(ea, eb, strict=True):
            assert xb.dtype == np.float32
            np.testing.assert_array_equal(xa, xb)


def test_round_trip_is_exact_and_keeps_metadata(tmp_path: Path) -> None:
    events = make_events(0)
    meta = {"process": "ttbar", "pileup": 50, "seed": 3, "nested": {"k": [1, 2]}}
    path = tmp_path / "shard_000.parquet"
    store.write_events(path, events, meta)
    assert_same(events, store.read_events(path))
    assert store.read_metadata(path) == meta
    # nothing but the shard is left in the folder (the temporary file was renamed)
    assert [p.name for p in tmp_path.iterdir()] == ["shard_000.parquet"]


def test_awkward_sees_regular_inner_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    store.write_events(path, make_events(1), {})
    arr = ak.from_parquet(path)
    assert str(arr.type) == (
        "3 * {X: var * 12 * float32, ygen: var * 7 * float32, ycand: var * 7 * float32}"
    )
    assert ak.num(arr.X, axis=1).tolist() == [4, 0, 7]


def test_float64_input_is_cast_and_list_shapes_checked(tmp_path: Path) -> None:
    ev = make_events(2, (3,))[0]
    ev64 = MLPFEvent(ev.X.astype(np.float64), ev.ygen, ev.ycand)
    store.write_events(tmp_path / "a.parquet", [ev64], {})
    assert_same([ev], store.read_events(tmp_path / "a.parquet"))


def test_bad_event_shapes_raise_and_write_nothing(tmp_path: Path) -> None:
    ev = make_events(3, (3,))[0]
    bad_cols = MLPFEvent(ev.X[:, :11], ev.ygen, ev.ycand)
    with pytest.raises(DataFileError, match=r"event 0\).*column X has shape \(3, 11\)"):
        store.write_events(tmp_path / "a.parquet", [bad_cols], {})
    bad_rows = MLPFEvent(ev.X, ev.ygen[:2], ev.ycand)
    with pytest.raises(DataFileError, match="different numbers of rows"):
        store.write_events(tmp_path / "a.parquet", [bad_rows], {})
    with pytest.raises(DataFileError, match="not JSON"):
        store.write_events(tmp_path / "a.parquet", [ev], {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_listing_is_sorted_mixes_formats_and_skips_others(tmp_path: Path) -> None:
    ev = make_events(4)
    store.write_events(tmp_path / "b.parquet", ev[:1], {})
    delphes.write_pkl(tmp_path / "a.pkl.bz2", ev[1:])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".c.tmp.parquet").write_text("half written")
    files = store.list_event_files(tmp_path)
    assert [p.name for p in files] == ["a.pkl.bz2", "b.parquet"]
    # iter_events streams both formats, in file order
    assert_same(ev[1:] + ev[:1], list(store.iter_events(tmp_path)))
    assert_same(ev[:1], list(store.iter_events([tmp_path / "b.parquet"])))
    assert_same(ev[1:], list(store.iter_events(tmp_path / "a.pkl.bz2")))


def test_missing_and_empty_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"no .*event files found"):
        store.list_event_files(tmp_path)
    with pytest.raises(DataFileError, match="no such directory"):
        store.list_event_files(tmp_path / "nope")
    with pytest.raises(DataFileError, match=r"missing\.parquet: no such file"):
        store.read_events(tmp_path / "missing.parquet")
    with pytest.raises(DataFileError, match="no such file"):
        list(store.iter_events([tmp_path / "missing.parquet"]))
    with pytest.raises(DataFileError, match="unknown event file type"):
        store.read_any(tmp_path / "x.csv")


def test_corrupt_and_foreign_parquet_files_raise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataFileError, match=r"bad\.parquet: not a readable Parquet file"):
        store.read_events(bad)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"X": [[1.0, 2.0]], "y": [1]}), other)
    with pytest.raises(DataFileError, match=r"missing column.*ygen, ycand"):
        store.read_events(other)
    assert store.read_metadata(other) == {}
    wide = tmp_path / "wide.parquet"
    t = pa.table(
        {name: pa.array([[[0.0] * 5]], type=shards.column_type(5)) for name in store.COLUMNS}
    )
    pq.write_table(t, wide)
    with pytest.raises(DataFileError, match=r"column X has type .* expected"):
        store.read_events(wide)
