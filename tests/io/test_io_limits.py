"""Bounded decompression and declared sizes: refuse before allocating."""

from __future__ import annotations

import bz2
import gzip
import pickle
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from particlegraph.errors import ResourceLimitError
from particlegraph.io import shards
from particlegraph.io.limits import Limits, decompress_bounded, open_bounded


def test_decompress_bounded_stops_at_the_limit():
    data = bz2.compress(b"\0" * 5_000_000)
    assert len(decompress_bounded(data, "bz2", max_bytes=5_000_000)) == 5_000_000
    with pytest.raises(ResourceLimitError, match="expands to more than 1 MB"):
        decompress_bounded(data, "bz2", max_bytes=1 << 20)
    with pytest.raises(ResourceLimitError):
        decompress_bounded(gzip.compress(b"\0" * 3_000_000), "gzip", max_bytes=1 << 20)


def test_a_declared_huge_block_is_refused_before_reading(tmp_path):
    """A pickle declaring 8 GB of bytes fails at the first read, having read a few bytes."""
    path = tmp_path / "bomb.pkl.bz2"
    head = b"\x80\x04}\x8c\x01X\x8e" + struct.pack("<Q", 8_000_000_000)
    path.write_bytes(bz2.compress(head) + bz2.compress(b"\0" * 1000))
    from particlegraph.io.pickles import RestrictedUnpickler

    # the pure-Python unpickler asks first; the C one reserves the 8 GB before reading
    with open_bounded(path, "bz2", max_bytes=1 << 20) as stream:
        with pytest.raises(ResourceLimitError, match="asked for 7629 MB"):
            RestrictedUnpickler(stream, set()).load()
        assert stream.consumed < 100


def test_bounded_reader_round_trips_small_pickles(tmp_path):
    path = tmp_path / "ok.pkl.bz2"
    obj = {"X": [np.arange(12.0, dtype=np.float32).reshape(1, 12)]}
    path.write_bytes(bz2.compress(pickle.dumps(obj)))
    with open_bounded(path, max_bytes=1 << 20) as stream:
        back = pickle.Unpickler(stream).load()  # type: ignore[arg-type]
    np.testing.assert_array_equal(back["X"][0], obj["X"][0])


def test_parquet_footer_checked_before_reading(tmp_path):
    schema = {"a": 2}
    path = tmp_path / "s.parquet"
    shards.write_shard(path, {"a": [np.zeros((1, 2), np.float32)] * 30}, schema, {})
    assert shards.count_rows(path) == 30
    with pytest.raises(ResourceLimitError, match="declares 30 rows, more than the limit of 10"):
        shards.read_shard(path, schema, Limits(max_rows=10))
    with pytest.raises(ResourceLimitError, match="bytes uncompressed"):
        shards.read_shard(path, schema, Limits(max_bytes=16))


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "3")
    monkeypatch.setenv("PARTICLEGRAPH_MAX_ROWS", "7")
    assert Limits.from_env() == Limits(max_bytes=3 << 20, max_rows=7)
    monkeypatch.setenv("PARTICLEGRAPH_MAX_ROWS", "many")
    from particlegraph.errors import ConfigError

    with pytest.raises(ConfigError, match="PARTICLEGRAPH_MAX_ROWS"):
        Limits.from_env()


def test_pyarrow_is_not_asked_for_the_rows(tmp_path, monkeypatch):
    """The refusal happens on the footer: ParquetFile.read is never called."""
    path = tmp_path / "s.parquet"
    shards.write_shard(path, {"a": [np.zeros((0, 2), np.float32)] * 20}, {"a": 2}, {})

    def boom(*args, **kwargs):
        raise AssertionError("read called")

    monkeypatch.setattr(pq.ParquetFile, "read", boom)
    with pytest.raises(ResourceLimitError):
        shards.read_shard(path, {"a": 2}, Limits(max_rows=5))
    assert isinstance(pa.__version__, str)


# --- every limit at its boundary value: exactly the limit passes, one more is refused ---


def test_documented_defaults(monkeypatch):
    monkeypatch.delenv("PARTICLEGRAPH_MAX_INPUT_MB", raising=False)
    monkeypatch.delenv("PARTICLEGRAPH_MAX_ROWS", raising=False)
    assert Limits.from_env() == Limits() == Limits(max_bytes=1 << 30, max_rows=1_000_000)
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", " ")  # blank: the default
    assert Limits.from_env().max_bytes == 1 << 30
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "0.5")  # MB are binary: 512 KiB
    assert Limits.from_env().max_bytes == 1 << 19


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf"])
def test_environment_limits_must_be_positive_and_finite(monkeypatch, raw):
    from particlegraph.errors import ConfigError

    monkeypatch.setenv("PARTICLEGRAPH_MAX_ROWS", raw)
    with pytest.raises(ConfigError, match="PARTICLEGRAPH_MAX_ROWS"):
        Limits.from_env()


def test_limits_of_one_pass_and_zero_is_refused():
    from particlegraph.errors import ConfigError

    assert Limits(max_bytes=1, max_rows=1).max_rows == 1
    for bad in ({"max_bytes": 0}, {"max_rows": 0}):
        with pytest.raises(ConfigError, match="limits must be positive"):
            Limits(**bad)


@pytest.mark.parametrize("codec", ["bz2", "gzip", "xz"])
def test_decompress_bounded_at_the_limit(codec):
    import lzma

    pack = {"bz2": bz2.compress, "gzip": gzip.compress, "xz": lzma.compress}[codec]
    data = pack(b"\1" * 1000)
    assert len(decompress_bounded(data, codec, max_bytes=1000)) == 1000
    with pytest.raises(ResourceLimitError, match="expands to more than"):
        decompress_bounded(data, codec, max_bytes=999)


def test_bounded_reader_at_the_limit(tmp_path):
    path = tmp_path / "x.bz2"
    path.write_bytes(bz2.compress(b"a\n" * 50))  # 100 bytes, 50 lines
    with open_bounded(path, "bz2", max_bytes=100) as s:
        assert len(s.read(60)) == 60 and len(s.read(40)) == 40  # exactly the limit
        assert s.consumed == 100
    with open_bounded(path, "bz2", max_bytes=100) as s:
        s.read(60)
        with pytest.raises(ResourceLimitError, match="asked for"):
            s.read(41)  # one byte past the limit, refused before reading
        assert s.consumed == 60
    with open_bounded(path, "bz2", max_bytes=100) as s:
        assert len(s.read()) == 100  # read-all of exactly the limit passes
    with open_bounded(path, "bz2", max_bytes=99) as s, pytest.raises(ResourceLimitError):
        s.read()
    with open_bounded(path, "bz2", max_bytes=100) as s:
        assert [s.readline() for _ in range(50)] == [b"a\n"] * 50
    with open_bounded(path, "bz2", max_bytes=99) as s, pytest.raises(ResourceLimitError):
        for _ in range(50):
            s.readline()


def test_check_declared_at_the_limit():
    from particlegraph.io.limits import check_declared

    check_declared("f", "rows", 50, 50)
    with pytest.raises(ResourceLimitError, match="declares 51 rows, more than the limit of 50"):
        check_declared("f", "rows", 51, 50)


def test_parquet_rows_at_the_limit(tmp_path):
    path = tmp_path / "s.parquet"
    shards.write_shard(path, {"a": [np.zeros((1, 2), np.float32)] * 30}, {"a": 2}, {})
    assert len(shards.read_shard(path, {"a": 2}, Limits(max_rows=30))["a"]) == 30
    with pytest.raises(ResourceLimitError, match="declares 30 rows"):
        shards.read_shard(path, {"a": 2}, Limits(max_rows=29))
