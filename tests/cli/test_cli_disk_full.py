"""A full disk during generate, convert, train and evaluate: one ``error:`` line naming the file,
exit 2, and nothing half-written.

Each command runs in a child process whose output folder is a small tmpfs (a few kB to 1 MB,
mounted in a private mount namespace with ``unshare -rm``, so no privileges are needed and the
machine's file systems are untouched). The command fills it and fails with a real ``ENOSPC``
from the kernel, wherever the writer is (Python, numpy, pyarrow, torch, matplotlib). Before the
namespace ends its content is copied out and checked: every file there is complete (it parses)
and no temporary file is left. A machine that does not allow the mount skips these tests; the
conversion of every writer's disk-full error is also tested without a mount in
``tests/test_atomic.py``.
"""

from __future__ import annotations

import bz2
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tasks" / "tracking"))
from cli_inputs import _folder, anomaly_sample, physical_events  # noqa: E402

#: Runs ``sh -c SCRIPT`` with a tmpfs of ``$1`` bytes at ``$2``; the command's status goes to
#: ``$3.rc``, its stderr to ``$3.stderr``, and the tmpfs content to ``$3``.
_NAMESPACE = (
    'mount -t tmpfs -o size="$0" tmpfs "$1" || exit 99; m=$1; c=$2; shift 2; '
    '"$@" 2>"$c.stderr"; echo $? >"$c.rc"; cp -a "$m/." "$c"'
)
TINY_TRACKING = [
    "model.embed_hidden=16", "model.embed_layers=1", "model.gnn_hidden=8", "model.edge_hidden=8",
    "model.gnn_layers=2", "stage1.fit.epochs=1", "stage2.fit.epochs=1", "val_events=1",
    "batch_size=2", "eps_grid=[0.1]", "min_samples_grid=[1]",
]  # fmt: skip


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && echo ok"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return probe.stdout.strip() == "ok"


pytestmark = [
    pytest.mark.slow,  # each case starts the CLI in a new process (torch import: seconds)
    pytest.mark.skipif(not _can_mount(), reason="this machine does not allow mounting a tmpfs"),
]


@dataclass
class Outcome:
    """What a command left: exit status, stderr lines, the tmpfs content (copied out)."""

    rc: int
    lines: list[str]
    disk: Path
    mount: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.disk.rglob("*") if p.is_file())


def run_full(tmp_path: Path, size: str, argv: list[str]) -> Outcome:
    """``particlegraph ARGV`` (``{M}`` in an argument: the tmpfs) with a tmpfs of ``size``."""
    mount, copy = tmp_path / "full", tmp_path / "copy"
    mount.mkdir()
    args = [a.replace("{M}", str(mount)) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "particlegraph", *args]
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _NAMESPACE, size, str(mount), str(copy), *cmd],
        env=env, timeout=300, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stderr = Path(f"{copy}.stderr").read_text()
    # FastJet prints its banner (lines of '#') on first use: not particlegraph's output
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("#")]
    return Outcome(int(Path(f"{copy}.rc").read_text()), lines, copy, mount)


def assert_disk_full(out: Outcome) -> None:
    """Exit 2 with one line: the disk is full, at a path on the full file system."""
    assert out.rc == 2, out.lines
    assert len(out.lines) == 1 and out.lines[0].startswith("error: "), out.lines
    assert "no space left on the device" in out.lines[0], out.lines
    assert out.lines[0].startswith(f"error: {out.mount}/"), out.lines  # names the file
    assert "Traceback" not in out.lines[0]


def assert_complete(out: Outcome) -> None:
    """No temporary file is left, and every file parses as what its name says."""
    import pyarrow.parquet as pq
    import torch
    import yaml

    for path in out.files():
        name = path.name
        assert ".tmp" not in name, f"temporary file left: {path}"
        data = path.read_bytes()
        if name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".yaml"):
            yaml.safe_load(data)
        elif name.endswith(".csv"):
            assert data.endswith(b"\n") and data.count(b"\n") >= 1, path
        elif name.endswith(".parquet"):
            pq.read_metadata(path)
        elif name.endswith(".pt"):
            torch.load(path, weights_only=True)
        elif name.endswith(".npz"):
            with np.load(path) as z:
                [z[k] for k in z.files]
        elif name.endswith(".bz2"):
            bz2.decompress(data)
        elif name.endswith(".png"):
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), path


def test_tracking_generate_keeps_only_whole_events(tmp_path: Path) -> None:
    from particlegraph.tasks.tracking.trackml import list_events, read_event

    out = run_full(tmp_path, "1m", ["tracking", "generate", "--events", "4", "--out", "{M}/trk"])
    assert_disk_full(out)
    assert_complete(out)
    folder = out.disk / "trk"
    ids = list_events(folder)  # the events that fitted (1 MB holds about two ttbar events)
    assert ids == list(range(1000, 1000 + len(ids))) and 0 < len(ids) < 4
    for i in ids:
        ev = read_event(folder, i)  # all four files, consistent with each other
        assert ev.particles is not None and ev.truth is not None
    kinds = {p.name.split("-")[1] for p in folder.glob("event*.csv")}
    assert len(list(folder.glob("event*.csv"))) == 4 * len(ids) and len(kinds) == 4


def test_tracking_convert_writes_all_events_or_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = [
        {"hits": {"xyz": rng.normal(0, 100, (3000, 3)), "particle_id": rng.integers(0, 300, 3000)}}
        for _ in range(10)
    ]  # about 2.5 MB of CSV
    src = tmp_path / "tracks.pickle"
    src.write_bytes(pickle.dumps(samples))
    out = run_full(tmp_path, "1m", ["tracking", "convert", str(src), "--out", "{M}/conv"])
    assert_disk_full(out)
    assert out.files() == [] and not (out.disk / "conv").exists()
    assert "/conv/event" in out.lines[0]  # the event file, not its hidden staging copy


def test_anomaly_generate_keeps_only_whole_files(tmp_path: Path) -> None:
    from particlegraph.tasks.anomaly.samples import read_candidates, read_metadata

    argv = ["anomaly", "generate", "--out", "{M}/ano", "--sample", "zerobias", "--events", "8",
            "--set", "pileup=0", "--set", "events_per_file=1"]  # fmt: skip
    out = run_full(tmp_path, "24k", argv)
    assert_disk_full(out)
    assert_complete(out)
    files = sorted((out.disk / "ano" / "zerobias").glob("*.parquet"))
    assert 0 < len(files) < 8
    assert [read_metadata(f)["file_index"] for f in files] == list(range(len(files)))
    assert read_candidates(out.disk / "ano" / "zerobias").num_events == len(files)


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    """4 kB hold the folder markers but not the writer lock's content: the lock goes, and so does
    the new --out that holds nothing else."""
    argv = ["anomaly", "generate", "--out", "{M}/ano", "--sample", "zerobias", "--events", "2",
            "--set", "pileup=0"]  # fmt: skip
    out = run_full(tmp_path, "4k", argv)
    assert_disk_full(out)
    assert ".particlegraph-shard-0-of-1.lock" in out.lines[0]
    assert out.files() == [] and not (out.disk / "ano").exists()


def test_a_new_sample_without_an_event_is_removed(tmp_path: Path) -> None:
    out = run_full(tmp_path, "8k", ["tracking", "generate", "--events", "2", "--out", "{M}/trk"])
    assert_disk_full(out)
    assert "/trk/event000001000-" in out.lines[0]
    assert out.files() == [] and not (out.disk / "trk").exists()


def test_mlpf_generate(tmp_path: Path) -> None:
    argv = ["mlpf", "generate", "--events", "6", "--events-per-file", "2", "--process", "minbias",
            "--out", "{M}/mlpf"]  # fmt: skip
    out = run_full(tmp_path, "64k", argv)
    assert_disk_full(out)
    assert_complete(out)


@pytest.mark.parametrize(
    ("task", "size"),
    [("anomaly", "100k"), ("tabular", "40k"), ("mlpf", "400k"), ("tracking", "100k")],
)
def test_train_leaves_no_run_or_a_resumable_one(tmp_path: Path, task: str, size: str) -> None:
    data = tmp_path / "data"
    if task == "anomaly":
        anomaly_sample(data, n_events=200)
        argv = ["--epochs", "2", "--model", "node-ae"]
    elif task == "tabular":
        from particlegraph.tasks.tabular import generate

        data = generate.generate(tmp_path / "toy.data", events=2000, seed=1)
        argv = ["--epochs", "2"]
    elif task == "mlpf":
        _folder(data, physical_events(8, 0), n_files=2)
        argv = ["--set", "fit.epochs=1"]
    else:
        from tracking_events import write_events

        write_events(data, 4, 25)
        argv = ["--config", "exercise_demo", *(a for s in TINY_TRACKING for a in ("--set", s))]
    out = run_full(tmp_path, size, [task, "train", "--data", str(data), "--run", "{M}/run", *argv])
    assert_disk_full(out)
    assert_complete(out)
    if out.files():  # only a run that wrote a checkpoint stays (for --resume)
        assert list(out.disk.rglob("last.pt")), [p.name for p in out.files()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained anomaly run and tracking run with their data (in this process, on the disk)."""
    from tracking_events import write_events
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    root = tmp_path_factory.mktemp("runs")
    anomaly_sample(root / "anom", n_events=200)
    write_events(root / "trk", 4, 25)
    runner = CliRunner()
    for argv in (
        ["anomaly", "train", "--data", str(root / "anom"), "--run", str(root / "anorun"),
         "--epochs", "1"],
        ["tracking", "train", "--data", str(root / "trk"), "--run", str(root / "trkrun"),
         "--config", "exercise_demo", *(a for s in TINY_TRACKING for a in ("--set", s))],
    ):  # fmt: skip
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
    return {k: root / k for k in ("anom", "anorun", "trk", "trkrun")}


def test_anomaly_evaluate_leaves_no_out(tmp_path: Path, runs: dict[str, Path]) -> None:
    a = runs["anom"]
    argv = ["anomaly", "evaluate", "--run", str(runs["anorun"]), "--background", f"bkg={a}:0:100",
            "--signal", f"sig={a}:100:200", "--out", "{M}/ev"]  # fmt: skip
    out = run_full(tmp_path, "100k", argv)
    assert_disk_full(out)
    assert out.files() == []


def test_tracking_evaluate_leaves_no_out(tmp_path: Path, runs: dict[str, Path]) -> None:
    argv = ["tracking", "evaluate", "--run", str(runs["trkrun"]), "--data", str(runs["trk"]),
            "--out", "{M}/ev", "--max-events", "1"]  # fmt: skip
    out = run_full(tmp_path, "100k", argv)
    out.lines = [ln for ln in out.lines if not ln.startswith("INFO ")]  # its progress log
    assert_disk_full(out)
    assert out.files() == []
