"""Size bombs against the readers: time and peak memory until the one-line refusal.

Writes three hostile files into a temporary folder and runs ``particlegraph mlpf inspect FILE``
on each in a fresh process under ``/usr/bin/time -v`` (wall time, maximum resident set size):

* ``bomb.pkl.bz2``: a few KB of bz2 that expand to 8 GB (a pickled 8 GB bytes object);
* ``rows.parquet``: under 1 MB, its footer declares 1e8 events (empty ones);
* ``nested.pkl.bz2``: a few hundred bytes of pickle whose shared nested lists expand to 1e12
  numbers in ``np.asarray``.

Also measures the Python allocations of the refused read itself with tracemalloc (in-process).
Prints a table and saves ``bench/results/reliability_bombs.json``.

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


def run_cli(src: str, path: Path, cap_kb: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    cmd = f"exec /usr/bin/time -v {sys.executable} -m particlegraph mlpf inspect {path}"
    if cap_kb:
        cmd = f"ulimit -v {cap_kb}; " + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith(("\t", "Command"))]
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 2),
        "max_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "message": (lines[-1] if lines else "")[:300],
    }


def traced_read(path: Path) -> dict:
    from particlegraph.errors import ParticlegraphError
    from particlegraph.tasks.mlpf.store import read_any

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        read_any(path)
        outcome = "read"
    except ParticlegraphError as err:
        outcome = type(err).__name__
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "outcome": outcome,
        "seconds": round(seconds, 4),
        "peak_alloc_mb": round(peak / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another source tree to run the same files against")
    parser.add_argument("--out", default="bench/results/reliability_bombs.json")
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    results: dict = {"machine": "dev CPU, 2 cores, shared", "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        files = {
            "pkl_bz2_8GB": pkl_bomb(folder / "bomb.pkl.bz2"),
            "parquet_1e8_rows": parquet_bomb(folder / "rows.parquet"),
            "nested_list_pickle": nested_bomb(folder / "nested.pkl.bz2"),
        }
        print(f"made the files in {time.perf_counter() - t0:.0f} s")
        for name, path in files.items():
            entry = {"file_bytes": path.stat().st_size, "after": run_cli(src, path)}
            entry["in_process"] = traced_read(path)
            if args.before:
                entry["before"] = run_cli(args.before, path, cap_kb=3_000_000)
            results["cases"][name] = entry
            print(f"{name:20s} {entry['file_bytes']:>9,d} B  " + json.dumps(entry["after"]))
            if "before" in entry:
                print(f"{'':20s} before: " + json.dumps(entry["before"]))
            print(f"{'':20s} in process: " + json.dumps(entry["in_process"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
