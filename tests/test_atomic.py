"""Atomic writes: temporary files removed on error and swept after a killed writer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from particlegraph.atomic import atomic_path, staging_dir, sweep_stale, write_text


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
