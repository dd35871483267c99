"""Two ``generate`` runs into one folder at once: the second is refused, for every task.

The first writer is a real second process holding the folder's writer lock (as a running
``generate`` does from its first file to its last), so the test exercises the cross-process check
(a live process id on this host) rather than a lock taken and checked by the same process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from particlegraph.cli.main import app

#: command -> (argv after the command, folder the writer locks (relative to --out), lock key)
GENERATORS = {
    "mlpf generate": (["--events", "2"], ".", "shard-0-of-1"),
    "tracking generate": (["--events", "2"], ".", "shard-0-of-1"),
    "anomaly generate": (["--events", "2", "--sample", "zerobias", "--set", "pileup=0"],
                         "zerobias", "shard-0-of-1"),
}  # fmt: skip

#: A writer at work: the folder it fills locked (anomaly claims --out, the parent of its sample
#: folder, before it takes the lock; mlpf and tracking lock --out itself and claim it then).
_HOLDER = """
import sys, time
from pathlib import Path
from particlegraph.outputs import claim_unowned, writer_lock
if Path(sys.argv[4]) != Path(sys.argv[1]):
    claim_unowned(Path(sys.argv[4]), sys.argv[2])
with writer_lock(sys.argv[1], sys.argv[2], key=sys.argv[3]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test that hold a lock; stopped (by their id) when it ends."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        _stop(p)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def _hold_lock(out: Path, folder: Path, command: str, key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder), command, key, str(out)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("command", list(GENERATORS))
def test_a_second_concurrent_generate_is_refused(
    tmp_path: Path, command: str, holder: list[subprocess.Popen[str]]
) -> None:
    argv, locked, key = GENERATORS[command]
    out = tmp_path / "data"
    holder.append(_hold_lock(out, out / locked, command, key))
    result = CliRunner().invoke(app, [*command.split(), "--out", str(out), *argv])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.output, result.exception)
    assert len(lines) == 1, result.stderr
    pid = holder[0].pid
    assert lines[0].startswith(f"error: {out / locked}: is being written")
    assert f"is being written by `particlegraph {command}` (process {pid} " in lines[0]
    # nothing was generated beside the lock of the live writer
    made = [p.name for p in out.rglob("*") if p.is_file()]
    made = [n for n in made if not n.startswith(".particlegraph") and n != "particlegraph.json"]
    assert made == [], made
