"""Size bombs against the readers: time and peak memory until the one-line refusal.

Writes hostile files into a temporary folder and runs the command that reads each (``mlpf
inspect``, ``tracking convert``, ``anomaly inspect``) in a fresh process under
``/usr/bin/time -v`` (wall time, maximum resident set size):

* ``bomb.pkl.bz2``: a few KB of bz2 that expand to 8 GB (a pickled 8 GB bytes object);
* ``rows.parquet``: under 1 MB, its footer declares 1e8 events (empty ones);
* ``nested.pkl.bz2``: a few hundred bytes of pickle whose shared nested lists expand to 1e12
  numbers in ``np.asarray`` (MLPF's public format);
* ``tracks.pickle``: the same trick in the tracking exercise's format (about 350 bytes, 3e12
  coordinates);
* ``deflate.pt``: about 1 MB of ``torch.save`` zip whose storage entry is deflated zeros that
  expand to 1 GiB (``torch.save`` never compresses; torch's reader inflates it anyway);
* ``view.pt``: a few KB holding one float expanded (stride 0) to a (53687091, 5) tensor, 1 GiB
  of values once a reader copies it.

Each command also runs on a missing file (``baseline_missing_file``: the interpreter, the
command's imports and a one-line error; torch alone is about 300 MB), so the cost of the refusal
is the difference. Also measures the Python allocations of the refused read itself with
tracemalloc, and the process's peak RSS growth with ``resource.getrusage`` (in-process; zero when
an earlier case already set a higher peak). Prints a table and saves
``bench/results/reliability_bombs.json``.

    PYTHONPATH=src python bench/reliability_bombs.py [--before /work/main/src]

``--before SRC`` also runs the same files against another source tree (e.g. the code before the
limits) under a 3 GB address-space cap (``ulimit -v``), so it fails instead of taking the machine.
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import pickle
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXPANDED = 8_000_000_000  # bytes of the pkl bomb
ROWS = 100_000_000  # events declared by the Parquet bomb
PT_ROWS = (1 << 30) // 20  # rows of 5 float32 in the .pt bombs: 1 GiB


def pkl_bomb(path: Path) -> Path:
    """``{"X": <8 GB of zero bytes>}`` pickled by hand, bz2 as concatenated streams."""
    head = b"\x80\x04}\x8c\x01X\x8e" + struct.pack("<Q", EXPANDED)  # PROTO 4, {}, "X", BINBYTES8
    chunk = 40_000_000
    zeros = bz2.compress(b"\0" * chunk, 9)
    with path.open("wb") as f:
        f.write(bz2.compress(head, 9))
        for _ in range(EXPANDED // chunk):
            f.write(zeros)
        f.write(bz2.compress(b"s.", 9))  # SETITEM, STOP
    return path


def parquet_bomb(path: Path) -> Path:
    """1e8 empty events in the particlegraph shard layout, written in 1e6-row groups."""
    from particlegraph.io.shards import arrow_schema, column_type
    from particlegraph.tasks.mlpf.schema import COLUMNS

    schema = arrow_schema(COLUMNS)
    n = 1_000_000
    offsets = pa.array(np.zeros(n + 1, np.int32))
    cols = []
    for width in COLUMNS.values():
        rows = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(0, np.float32)), width)
        cols.append(pa.ListArray.from_arrays(offsets, rows).cast(column_type(width)))
    table = pa.Table.from_arrays(cols, schema=schema)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(ROWS // n):
            writer.write_table(table)
    return path


def nested_bomb(path: Path) -> Path:
    nested: list = [0.0]
    for _ in range(6):
        nested = [nested] * 100
    data = {"X": [nested], "ygen": [nested], "ycand": [nested]}
    path.write_bytes(bz2.compress(pickle.dumps(data, protocol=4)))
    return path


def tracks_bomb(path: Path) -> Path:
    """The tracking exercise's ``tracks.pickle`` layout; ``xyz`` expands to 3e12 numbers."""
    nested: list = [0.0, 0.0, 0.0]
    for _ in range(12):
        nested = [nested] * 10
    path.write_bytes(pickle.dumps([{"hits": {"xyz": nested, "particle_id": [0]}}], protocol=4))
    return path


def _small_pt(x: object) -> bytes:
    import io

    import torch
    from torch_geometric.data import Data

    buf = io.BytesIO()
    torch.save([Data(x=x)], buf)
    return buf.getvalue()


def deflate_pt_bomb(path: Path, rows: int = PT_ROWS) -> Path:
    """A ``torch.save`` zip of one graph whose (rows, 5) float32 storage is deflated zeros.

    Saved with 65,793 rows, then the row count and element count in ``data.pkl`` (4-byte
    BININT opcodes) are patched and the storage entry is rewritten deflated at the new size.
    """
    import io
    import zipfile

    import torch

    rows0 = 65_793  # its counts are 4-byte ints in the pickle, unique in data.pkl
    src = zipfile.ZipFile(io.BytesIO(_small_pt(torch.zeros(rows0, 5))))
    pkl_name = next(n for n in src.namelist() if n.endswith("data.pkl"))
    data_name = next(n for n in src.namelist() if "/data/" in n)
    pkl = src.read(pkl_name)
    for old, new in ((rows0 * 5, rows * 5), (rows0, rows)):
        pkl = pkl.replace(b"J" + struct.pack("<i", old), b"J" + struct.pack("<i", new))
    with zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            if name != data_name:
                out.writestr(src.getinfo(name), pkl if name == pkl_name else src.read(name))
                continue
            info = zipfile.ZipInfo(name, src.getinfo(name).date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w", force_zip64=True) as f:
                left, chunk = rows * 20, b"\0" * (1 << 24)
                while left > 0:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
    return path


def view_pt_bomb(path: Path, rows: int = PT_ROWS) -> Path:
    """One stored float, expanded (stride 0) to a (rows, 5) ``x``: a few KB on disk."""
    import torch

    path.write_bytes(_small_pt(torch.zeros(1, 1).expand(rows, 5)))
    return path


#: name -> (file maker, command words before the file, words after it, in-process reader)
CASES: dict[str, tuple] = {
    "pkl_bz2_8GB": (pkl_bomb, "bomb.pkl.bz2", ["mlpf", "inspect"], [], "mlpf"),
    "parquet_1e8_rows": (parquet_bomb, "rows.parquet", ["mlpf", "inspect"], [], "mlpf"),
    "nested_list_pickle": (nested_bomb, "nested.pkl.bz2", ["mlpf", "inspect"], [], "mlpf"),
    "tracks_pickle_nested": (tracks_bomb, "tracks.pickle", ["tracking", "convert"],
                             ["--out", "{tmp}/converted"], "tracking"),
    "pt_deflate_1GiB": (deflate_pt_bomb, "deflate.pt", ["anomaly", "inspect"], [], "anomaly"),
    "pt_stride0_view_1GiB": (view_pt_bomb, "view.pt", ["anomaly", "inspect"], [], "anomaly"),
}  # fmt: skip


def run_cli(src: str, words: list[str], cap_kb: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    cmd = f"exec /usr/bin/time -v {sys.executable} -m particlegraph {' '.join(words)}"
    if cap_kb:
        cmd = f"ulimit -v {cap_kb}; " + cmd
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            ["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return {"exit": None, "wall_s": 120.0, "max_rss_mb": None, "message": "killed at 120 s"}
    wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith(("\t", "Command"))]
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 2),
        "max_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "message": (lines[-1] if lines else "")[:300],
    }


def _reader(task: str):
    if task == "mlpf":
        from particlegraph.tasks.mlpf.store import read_any

        return read_any
    if task == "tracking":
        from particlegraph.tasks.tracking.notebook import read_tracks_pickle

        return read_tracks_pickle
    from particlegraph.tasks.anomaly.formats import read_pt_graphs

    return read_pt_graphs


def traced_read(path: Path, task: str) -> dict:
    """The refused read alone, in this process: seconds, tracemalloc peak, RSS growth."""
    from particlegraph.errors import ParticlegraphError

    reader = _reader(task)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        reader(path)
        outcome = "read"
    except ParticlegraphError as err:
        outcome = type(err).__name__
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    return {
        "outcome": outcome,
        "seconds": round(seconds, 4),
        "peak_alloc_mb": round(peak / 2**20, 2),
        "peak_rss_growth_mb": round(grown / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another source tree to run the same files against")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run these cases only")
    parser.add_argument("--out", default="bench/results/reliability_bombs.json")
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    results: dict = {"machine": "dev CPU, 2 cores, shared", "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.only or CASES:
            maker, file_name, words, extra, task = CASES[name]
            t0 = time.perf_counter()
            path = maker(folder / file_name)
            made = time.perf_counter() - t0
            cmd = [*words, str(path), *(w.format(tmp=tmp) for w in extra)]
            entry = {"file_bytes": path.stat().st_size, "command": "particlegraph " +
                     " ".join(cmd).replace(tmp, "TMP"), "after": run_cli(src, cmd)}  # fmt: skip
            # the same command on a missing file: interpreter, imports, one-line error
            missing = [w.replace(str(path), str(folder / "missing")) for w in cmd]
            entry["baseline_missing_file"] = run_cli(src, missing)
            entry["in_process"] = traced_read(path, task)
            if args.before:
                entry["before"] = run_cli(args.before, cmd, cap_kb=3_000_000)
            results["cases"][name] = entry
            print(f"{name:22s} {entry['file_bytes']:>9,d} B (made in {made:.0f} s)  "
                  + json.dumps(entry["after"]))  # fmt: skip
            if "before" in entry:
                print(f"{'':22s} before: " + json.dumps(entry["before"]))
            print(f"{'':22s} in process: " + json.dumps(entry["in_process"]))
            path.unlink()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
