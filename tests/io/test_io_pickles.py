"""Restricted, bounded unpickling and the expansion count behind it."""

from __future__ import annotations

import bz2
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from particlegraph.errors import DataFileError, ResourceLimitError
from particlegraph.io.limits import (
    MAX_DEPTH,
    Limits,
    check_expanded,
    check_zip_entries,
    expanded_size,
)
from particlegraph.io.pickles import NUMPY_GLOBALS, load_pickle


def _shared(levels: int, width: int) -> list:
    nested: list = [0.0]
    for _ in range(levels):
        nested = [nested] * width
    return nested


def test_expanded_size_counts_every_reference_by_hand() -> None:
    row = np.zeros(3)
    assert expanded_size([row, row, [1, 2]]) == 3 + 3 + 2
    assert expanded_size({"a": [1.0] * 4}) == 1 + 4  # keys count too
    assert expanded_size(("ab", b"xyz", 7)) == 2 + 3 + 1
    assert expanded_size(_shared(6, 100)) == 10**12  # computed without expanding anything
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = _shared(3, 10), [1]
    assert expanded_size(objects) == 1000 + 1  # object arrays count their items' contents


def test_expanded_size_stops_early_and_refuses_deep_nesting() -> None:
    assert 100 < expanded_size(_shared(6, 100), stop_at=100) < 10**12
    deep: list = [0]
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ResourceLimitError, match=f"deeper than {MAX_DEPTH}"):
        expanded_size(deep)


def _nested(levels: int) -> list:
    """``levels`` lists inside one another around one number: [[...[0]...]]."""
    deep: list = [0]
    for _ in range(levels - 1):
        deep = [deep]
    return deep


def test_nesting_at_the_depth_limit() -> None:
    assert MAX_DEPTH == 64
    assert expanded_size(_nested(MAX_DEPTH)) == 1  # 64 levels: the deepest accepted
    with pytest.raises(ResourceLimitError, match="nested deeper than 64 levels"):
        expanded_size(_nested(MAX_DEPTH + 1))


def test_check_expanded_at_the_limit() -> None:
    check_expanded([0.0] * 10, "f", 10)
    with pytest.raises(ResourceLimitError, match=r"^f: shared references expand to more than 9"):
        check_expanded([0.0] * 10, "f", 9)


def test_load_pickle_round_trips_arrays_and_containers(tmp_path: Path) -> None:
    obj = {"X": [np.arange(6.0).reshape(2, 3)], "n": (1, 2.5), "s": "x"}
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(obj, protocol=2))
    (tmp_path / "a.pkl.bz2").write_bytes(bz2.compress(pickle.dumps(obj, protocol=4)))
    for name, codec in (("a.pkl", None), ("a.pkl.bz2", "bz2")):
        back = load_pickle(tmp_path / name, codec=codec)
        np.testing.assert_array_equal(back["X"][0], obj["X"][0])
        assert back["n"] == (1, 2.5) and back["s"] == "x"


class _Payload:
    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.canary),))  # type: ignore[attr-defined]


def test_a_code_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    payload = _Payload()
    payload.canary = tmp_path / "canary"  # type: ignore[attr-defined]
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([payload]))
    with pytest.raises(DataFileError, match=r"refusing to load posix\.mkdir"):
        load_pickle(tmp_path / "evil.pkl", what="tracks.pickle")
    assert not (tmp_path / "canary").exists()


def test_load_pickle_bombs_are_refused(tmp_path: Path) -> None:
    nested = tmp_path / "nested.pkl"
    nested.write_bytes(pickle.dumps([_shared(12, 10)], protocol=4))
    assert nested.stat().st_size < 400
    with pytest.raises(ResourceLimitError, match="shared references expand to more than"):
        load_pickle(nested)
    block = tmp_path / "block.pkl"  # declares an 8 GB bytes object, holds 1 kB
    block.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 8 * 10**9) + b"\0" * 1000)
    with pytest.raises(ResourceLimitError, match="asked for 7629 MB"):
        load_pickle(block, limits=Limits(max_bytes=1 << 20))


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "not a complete pickle"), (b"\x80\x04K", "not a readable pickle"),
     (b"garbage!", "not a readable pickle")],
)  # fmt: skip
def test_damaged_pickles_are_one_data_file_error(tmp_path: Path, content: bytes, match: str):
    (tmp_path / "d.pkl").write_bytes(content)
    with pytest.raises(DataFileError, match=match):
        load_pickle(tmp_path / "d.pkl")
    with pytest.raises(DataFileError, match="no such file"):
        load_pickle(tmp_path / "missing.pkl")


def test_numpy_globals_do_not_include_builtins_that_run_code() -> None:
    assert not {m for m, _ in NUMPY_GLOBALS} & {"builtins", "os", "posix", "subprocess"}


def _zip(path: Path, size: int, method: int) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = method
        z.writestr(info, b"\0" * size)
    return path


def test_zip_entries_declared_size_and_ratio(tmp_path: Path) -> None:
    stored = _zip(tmp_path / "s.pt", 1000, zipfile.ZIP_STORED)
    check_zip_entries(stored, max_bytes=1000)  # exactly the limit
    with pytest.raises(ResourceLimitError, match="declares 1,000 bytes uncompressed"):
        check_zip_entries(stored, max_bytes=999)
    deflated = _zip(tmp_path / "d.pt", 1 << 20, zipfile.ZIP_DEFLATED)
    with pytest.raises(ResourceLimitError, match="a decompression bomb"):
        check_zip_entries(deflated, max_bytes=1 << 30)
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02not a zip")
    check_zip_entries(tmp_path / "legacy.pt")  # left to its reader


def _declare(path: Path, compressed: int, uncompressed: int) -> Path:
    """Rewrite the sizes of the (single) central-directory entry of ``path``; only the central
    directory is read by :func:`check_zip_entries`, so the entry's data need not match."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b"PK\x01\x02")  # central directory file header
    struct.pack_into("<II", data, at + 20, compressed, uncompressed)
    path.write_bytes(bytes(data))
    return path


def test_zip_ratio_at_the_limit(tmp_path: Path) -> None:
    from particlegraph.io.limits import MAX_ZIP_RATIO

    assert MAX_ZIP_RATIO == 100
    ok = _declare(_zip(tmp_path / "a.pt", 10, zipfile.ZIP_DEFLATED), 10, 1000)  # exactly 100x
    check_zip_entries(ok, max_bytes=1 << 20)
    bomb = _declare(_zip(tmp_path / "b.pt", 10, zipfile.ZIP_DEFLATED), 10, 1001)
    with pytest.raises(ResourceLimitError, match=r"expands 1,001 bytes from 10 .*more than 100x"):
        check_zip_entries(bomb, max_bytes=1 << 20)
    stored = _declare(_zip(tmp_path / "s.pt", 10, zipfile.ZIP_STORED), 10, 1001)
    check_zip_entries(stored, max_bytes=1 << 20)  # a stored entry has no ratio to check
