"""Torch dataset and loader: values, PyG batching, rank/worker split, epochs, file split."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.dataset import MLPFDataset, make_loader, split_files
from particlegraph.tasks.mlpf.schema import validation


@pytest.fixture(autouse=True)
def _random_arrays() -> Iterator[None]:
    """These tests stream random arrays, not physical events: skip the physics checks
    (DataLoader workers fork and inherit the setting)."""
    with validation(False):
        yield


def write_shards(folder: Path, sizes_per_file: list[list[int]]) -> list[MLPFEvent]:
    """Write one shard per list of event sizes; column 0 of X holds a unique event id."""
    events: list[MLPFEvent] = []
    rng = np.random.default_rng(7)
    for f, sizes in enumerate(sizes_per_file):
        shard = []
        for n in sizes:
            X = rng.normal(size=(n, 12)).astype(np.float32)
            X[:, 1] = len(events) + len(shard)  # event id
            shard.append(
                MLPFEvent(
                    X, rng.normal(size=(n, 7)).astype(np.float32), np.zeros((n, 7), np.float32)
                )
            )
        store.write_events(folder / f"shard_{f:03d}.parquet", shard, {"file": f})
        events += shard
    return events


def event_ids(data_list: list) -> list[int]:
    return [int(d.x[0, 1]) for d in data_list]


def test_values_round_trip_and_dtypes(tmp_path: Path) -> None:
    events = write_shards(tmp_path, [[3, 5], [2]])
    got = list(MLPFDataset(tmp_path))
    assert len(got) == 3
    for ev, d in zip(events, got, strict=True):
        assert d.x.dtype == torch.float32 and d.ygen.shape == (ev.X.shape[0], 7)
        assert d.num_nodes == ev.X.shape[0]
        np.testing.assert_array_equal(d.x.numpy(), ev.X)
        np.testing.assert_array_equal(d.ygen.numpy(), ev.ygen)
        np.testing.assert_array_equal(d.ycand.numpy(), ev.ycand)


def test_batching_keeps_events_separate(tmp_path: Path) -> None:
    events = write_shards(tmp_path, [[3, 5, 2], [4]])
    batches = list(make_loader(MLPFDataset(tmp_path), batch_size=3))
    assert [b.num_graphs for b in batches] == [3, 1]
    b = batches[0]
    assert b.x.shape == (10, 12) and b.ygen.shape == (10, 7)
    assert b.ptr.tolist() == [0, 3, 8, 10]
    assert b.batch.tolist() == [0] * 3 + [1] * 5 + [2] * 2
    for i in range(3):
        np.testing.assert_array_equal(b.x[b.batch == i].numpy(), events[i].X)


@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_cover_every_file_once(tmp_path: Path, shuffle: bool) -> None:
    write_shards(tmp_path, [[1, 1], [1], [1, 1, 1], [1], [1, 1]])  # 9 events in 5 files
    seen: list[int] = []
    per_rank_files = []
    for rank in range(3):
        ds = MLPFDataset(tmp_path, rank=rank, world_size=3, shuffle_files=shuffle, seed=4)
        per_rank_files.append(ds.rank_files())
        seen += event_ids(list(ds))
    assert sorted(seen) == list(range(9))
    assert sum(MLPFDataset(tmp_path, rank=r, world_size=3).count_events() for r in range(3)) == 9
    assert MLPFDataset(tmp_path, max_events=4).count_events() == 4
    flat = [p for files in per_rank_files for p in files]
    assert sorted(flat) == store.list_event_files(tmp_path)


def test_set_epoch_reshuffles_deterministically(tmp_path: Path) -> None:
    write_shards(tmp_path, [[1]] * 8)
    ds = MLPFDataset(tmp_path, shuffle_files=True, seed=1)
    orders = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        orders.append(event_ids(list(ds)))
    assert orders[0] == orders[2] and orders[0] != orders[1]
    assert sorted(orders[1]) == list(range(8))
    assert event_ids(list(MLPFDataset(tmp_path))) == list(range(8))  # no shuffle: file order


def test_workers_split_files_and_max_events(tmp_path: Path) -> None:
    write_shards(tmp_path, [[2, 2], [2], [2, 2], [2]])  # 6 events
    loader = make_loader(MLPFDataset(tmp_path), batch_size=1, num_workers=2)
    assert sorted(int(b.x[0, 1]) for b in loader) == list(range(6))
    assert event_ids(list(MLPFDataset(tmp_path, max_events=4))) == [0, 1, 2, 3]
    assert list(MLPFDataset(tmp_path, max_events=0)) == []


def test_split_files_last_files_validate() -> None:
    files = [Path(f"f{i}.parquet") for i in range(10)]
    train, val = split_files(files, 0.2)
    assert train == files[:8] and val == files[8:]
    assert split_files(files[:2], 0.01) == (files[:1], files[1:2])  # at least one each side
    assert split_files(files[:1], 0.0) == (files[:1], [])
    with pytest.raises(ConfigError, match="cannot split 1 event file"):
        split_files(files[:1], 0.2)
    with pytest.raises(ConfigError, match="val_fraction"):
        split_files(files, 1.0)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"no .*event files"):
        MLPFDataset(tmp_path)
    write_shards(tmp_path, [[1]])
    with pytest.raises(ConfigError, match="rank"):
        MLPFDataset(tmp_path, rank=2, world_size=2)
