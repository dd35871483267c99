"""mlpf generate: one writer per shard, never mixes datasets, never writes into foreign folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from particlegraph.errors import ConfigError
from particlegraph.outputs import claim, owner, writer_lock
from particlegraph.tasks.mlpf.generate import COMMAND, generate


def test_a_second_writer_of_the_same_shard_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(ConfigError, match="is being written by `particlegraph mlpf generate`")
    with writer_lock(tmp_path, COMMAND, key="shard-0-of-1"), refused:
        generate("ttbar", 2, 0, 1, tmp_path, progress=False)
    assert not list(tmp_path.glob("*.parquet"))


def test_another_format_or_process_never_joins_a_dataset(tmp_path: Path) -> None:
    claim(tmp_path, COMMAND, {"process": "ttbar", "pileup": 0, "format": "parquet"})
    (tmp_path / "ttbar_pu0_00000.parquet").write_bytes(b"kept")
    with pytest.raises(ConfigError, match=r"another --format \('parquet', now 'pkl'\)"):
        generate("ttbar", 2, 0, 1, tmp_path, fmt="pkl", progress=False)
    with pytest.raises(ConfigError, match="another --process"):
        generate("qcd", 2, 0, 1, tmp_path, progress=False)
    assert (tmp_path / "ttbar_pu0_00000.parquet").read_bytes() == b"kept"
    assert not list(tmp_path.glob("*.pkl.bz2")) and not list(tmp_path.glob("qcd*"))


def test_overwrite_replaces_the_old_dataset(tmp_path: Path) -> None:
    claim(tmp_path, COMMAND, {"process": "qcd", "pileup": 0, "format": "parquet"})
    (tmp_path / "qcd_pu0_00000.parquet").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    paths = generate("ttbar", 2, 0, 1, tmp_path, events_per_file=2, progress=False, overwrite=True)
    assert [p.name for p in paths] == ["ttbar_pu0_00000.parquet"]
    assert not (tmp_path / "qcd_pu0_00000.parquet").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not the dataset's: left alone
    assert owner(tmp_path)["settings"]["process"] == "ttbar"  # type: ignore[index]


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="holds files particlegraph did not make"):
        generate("ttbar", 2, 0, 1, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--pileup must be a mean number"):
        generate("ttbar", 2, 100000, 1, tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
