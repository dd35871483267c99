"""The output guard: inputs are never outputs, foreign files are never replaced, one writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from particlegraph.errors import ConfigError
from particlegraph.outputs import (
    LOCK_FILE,
    Output,
    check_settings,
    claim,
    guard_outputs,
    owner,
    writer_lock,
)


def test_an_input_is_never_an_output(tmp_path: Path) -> None:
    shard = tmp_path / "data" / "a.parquet"
    shard.parent.mkdir()
    shard.write_bytes(b"PAR1")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="is also an input"):
            guard_outputs(
                "mlpf inspect", [Output(shard, "file", "--json")], [shard], overwrite=overwrite
            )
        with pytest.raises(ConfigError, match="lies inside the input"):
            guard_outputs(
                "x y",
                [Output(tmp_path / "data" / "plots")],
                [tmp_path / "data"],
                overwrite=overwrite,
            )
    # the same file through another spelling of its path
    with pytest.raises(ConfigError, match="is also an input"):
        guard_outputs(
            "x y", [Output(tmp_path / "data" / ".." / "data" / "a.parquet", "file")], [shard]
        )


def test_existing_files_need_overwrite_or_ownership(tmp_path: Path) -> None:
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights")
    with pytest.raises(
        ConfigError, match=r"not written by `particlegraph mlpf export`.*--overwrite"
    ):
        guard_outputs("mlpf export", [Output(ckpt, "file", "--onnx")])
    guard_outputs("mlpf export", [Output(ckpt, "file", "--onnx")], overwrite=True)
    guard_outputs(
        "mlpf export", [Output(ckpt, "file", "--onnx", own=lambda p: p.read_bytes() == b"weights")]
    )
    guard_outputs("mlpf export", [Output(tmp_path / "new.onnx", "file", "--onnx")])
    with pytest.raises(ConfigError, match="is a folder, expected a file"):
        guard_outputs("mlpf export", [Output(tmp_path, "file", "--onnx")], overwrite=True)


def test_folders_are_accepted_when_empty_or_own(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    guard_outputs("anomaly evaluate", [Output(tmp_path / "empty")])
    claim(tmp_path / "sample", "anomaly generate", {"process": "jetht"})
    with pytest.raises(ConfigError, match="made by `particlegraph anomaly generate`, not by"):
        guard_outputs("anomaly evaluate", [Output(tmp_path / "sample")])
    guard_outputs("anomaly generate", [Output(tmp_path / "sample")])
    claim(tmp_path / "run", "anomaly train")
    guard_outputs(
        "anomaly evaluate",
        [Output(tmp_path / "run", accepts=("anomaly train", "anomaly evaluate"))],
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files particlegraph did not make"):
        guard_outputs("tracking convert", [Output(tmp_path / "other")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, expected a folder"):
        guard_outputs("tracking convert", [Output(tmp_path / "file")])


def test_check_settings_names_the_differing_setting(tmp_path: Path) -> None:
    folder = tmp_path / "hits"
    assert not check_settings(folder, "tracking generate", {"seed": 1})
    claim(folder, "tracking generate", {"seed": 1, "process": "ttbar", "pileup": (50,)})
    assert check_settings(
        folder, "tracking generate", {"seed": 1, "process": "ttbar", "pileup": (50,)}
    )
    with pytest.raises(ConfigError, match=r"another --seed \(1, now 2\)"):
        check_settings(
            folder,
            "tracking generate",
            {"seed": 2, "process": "ttbar", "pileup": (50,)},
            {"seed": "--seed"},
        )
    assert owner(folder)["settings"]["process"] == "ttbar"  # type: ignore[index]
    (folder / "particlegraph.json").write_text("{broken")
    assert owner(folder) is None


def test_writer_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    with writer_lock(folder, "mlpf generate"):
        assert (folder / LOCK_FILE).is_file()
        second = pytest.raises(
            ConfigError, match="is being written by `particlegraph mlpf generate`"
        )
        with second, writer_lock(folder, "mlpf generate"):
            pass
    assert not (folder / LOCK_FILE).exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    (folder / LOCK_FILE).write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "command": "x"})
    )
    with writer_lock(folder, "mlpf generate"):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_claim_unowned_keeps_another_commands_mark(tmp_path: Path) -> None:
    from particlegraph.outputs import claim_unowned

    claim(tmp_path / "run", "mlpf train", {"data": {"pileup": 50}})
    claim_unowned(tmp_path / "run", "mlpf explain")
    assert owner(tmp_path / "run")["command"] == "mlpf train"  # type: ignore[index]
    claim_unowned(tmp_path / "new", "mlpf explain")
    assert owner(tmp_path / "new")["command"] == "mlpf explain"  # type: ignore[index]


def test_a_lock_that_cannot_be_written_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the lock's content is written: no empty lock that blocks every writer."""
    import errno

    import particlegraph.outputs as outputs

    def full(obj: object, f: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    folder = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(outputs.json, "dump", full)
        with pytest.raises(OSError) as info, writer_lock(folder, "tracking generate"):
            pass
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(folder / LOCK_FILE)
    assert not (folder / LOCK_FILE).exists()
    with writer_lock(folder, "tracking generate"):  # the next writer is not blocked
        assert (folder / LOCK_FILE).is_file()


def test_holds_only_marks(tmp_path: Path) -> None:
    from particlegraph.outputs import holds_only_marks

    claim(tmp_path / "out", "anomaly generate")
    claim(tmp_path / "out" / "zerobias", "anomaly generate", {"seed": 1})
    assert holds_only_marks(tmp_path / "out")
    lock = tmp_path / "out" / "zerobias" / ".particlegraph-shard-1-of-2.lock"
    lock.write_text("{}")  # another shard's writer is at work
    assert not holds_only_marks(tmp_path / "out")
    lock.unlink()
    (tmp_path / "out" / ".minbias_pool_20_abc.npz").write_bytes(b"pool")  # work worth keeping
    assert not holds_only_marks(tmp_path / "out")
