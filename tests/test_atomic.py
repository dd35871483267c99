"""Atomic writes: temporary files removed on error and swept after a killed writer."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from particlegraph.atomic import (
    atomic_path,
    disk_full_error,
    free_bytes,
    staging_dir,
    sweep_stale,
    write_text,
)
from particlegraph.errors import describe


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_temp_files_of_a_killed_process_are_swept(tmp_path):
    """A child creates a temporary file and dies by SIGKILL; the next write removes it."""
    code = (
        "import os, sys; from particlegraph.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as t:\n"
        "    t.write_text('x'); os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.txt")], env=env)
    assert proc.returncode != 0
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".a.") and ".tmp" in left[0]
    write_text(tmp_path / "b.txt", "ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]


def test_live_writers_are_left_alone(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("in progress")
        assert sweep_stale(tmp_path) == []  # our own pid is alive
        assert tmp.exists()
    with staging_dir(tmp_path, "out") as stage:
        assert stage.is_dir() and stage.name.startswith(".out.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


# --- a full disk (emulated here; tests/cli/test_cli_disk_full.py fills a real tmpfs) -------------


def _enospc_without_name() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")  # as numpy and file.write raise it


@pytest.mark.parametrize(
    "raised",
    [
        _enospc_without_name(),
        OSError(
            "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
        ),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ],
    ids=["errno", "pyarrow-text", "quota"],
)
def test_a_full_disk_is_reported_with_the_final_path(tmp_path, raised):
    target = tmp_path / "shard.parquet"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise raised
    assert info.value.errno in (errno.ENOSPC, errno.EDQUOT)
    assert info.value.filename == str(target)  # the file asked for, not the hidden temporary
    assert info.value.__cause__ is raised
    assert describe(info.value).startswith(f"{target}: ")
    assert os.listdir(tmp_path) == []  # the partial temporary file is gone


def test_a_hidden_disk_full_is_recognised_by_the_free_space(tmp_path, monkeypatch):
    """torch reports a full disk as ``unexpected pos 576 vs 534``: the free space tells."""
    import particlegraph.atomic as atomic

    crash = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: atomic.FULL_BELOW - 1)
    with pytest.raises(OSError, match="No space left") as info, atomic_path(tmp_path / "a.pt"):
        raise crash
    assert info.value.filename == str(tmp_path / "a.pt")
    # with room on the disk the same error is what it is (a bug, not the disk)
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: atomic.FULL_BELOW)
    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(tmp_path / "a.pt"):
        raise crash
    assert disk_full_error(ValueError("bad value"), tmp_path / "x") is None
    assert os.listdir(tmp_path) == []


def test_free_bytes_of_a_real_folder(tmp_path):
    free = free_bytes(tmp_path)
    st = os.statvfs(tmp_path)
    assert free == st.f_bavail * st.f_frsize and free_bytes(tmp_path / "missing") is None


def test_restored_on_failure_puts_files_and_folders_back(tmp_path) -> None:
    from particlegraph.atomic import restored_on_failure, write_text

    (tmp_path / "figs" / "sub").mkdir(parents=True)
    write_text(tmp_path / "metrics.json", "old")
    write_text(tmp_path / "figs" / "a.png", "A")
    write_text(tmp_path / "figs" / "sub" / "b.png", "B")
    before = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    with (
        pytest.raises(OSError),
        restored_on_failure(tmp_path / "metrics.json", tmp_path / "figs", tmp_path / "new.html"),
    ):
        write_text(tmp_path / "metrics.json", "new")  # replaced by rename
        write_text(tmp_path / "figs" / "a.png", "A2")
        (tmp_path / "figs" / "sub" / "b.png").unlink()
        write_text(tmp_path / "figs" / "c.png", "C")  # a new file in a saved folder
        write_text(tmp_path / "new.html", "page")  # a path that did not exist
        raise OSError(28, "No space left on device")
    after = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    assert after == before  # no staging folder left either (it would show up here)


def test_restored_on_failure_keeps_the_new_state_on_success(tmp_path) -> None:
    from particlegraph.atomic import restored_on_failure, write_text

    write_text(tmp_path / "m.json", "old")
    with restored_on_failure(tmp_path / "m.json", tmp_path / "dir"):
        write_text(tmp_path / "m.json", "new")
        write_text(tmp_path / "dir" / "x", "x")
    assert (tmp_path / "m.json").read_text() == "new" and (
        tmp_path / "dir" / "x"
    ).read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "m.json"]
