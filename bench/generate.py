"""Benchmark event generation: speed and realism of the generated MLPF events.

Usage::

    .venv/bin/python bench/generate.py --process ttbar --pileup 200 --events 40 --workers 2 \
        --out bench/results/generate_ttbar_pu200_w2.json

Builds the pile-up pool first (timed separately, it is made once per dataset and cached), then
runs ``--workers`` shard processes side by side (shard i of n, as a batch system would) and
prints one JSON object: events/s (wall clock, all workers together, pool excluded), elements,
tracks and towers per event, and the class fractions of ygen and ycand.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import CLASS_NAMES, ELEM_TOWER, ELEM_TRACK
from particlegraph.sim.pileup import load_or_build_pool, pool_cache_path
from particlegraph.sim.pythia import make_pythia, process_settings
from particlegraph.tasks.mlpf.generate import DEFAULT_POOL_SIZE, generate
from particlegraph.tasks.mlpf.store import iter_events


def _shard(kwargs: dict[str, Any]) -> None:
    generate(**kwargs)


def summarize(directory: Path) -> dict[str, Any]:
    """Per-event element counts and class fractions over every event file in ``directory``."""
    n_ev = n_el = n_trk = n_tow = 0
    counts = {"ygen": np.zeros(len(CLASS_NAMES)), "ycand": np.zeros(len(CLASS_NAMES))}
    for ev in iter_events(directory):
        n_ev += 1
        n_el += ev.X.shape[0]
        n_trk += int((ev.X[:, 0] == ELEM_TRACK).sum())
        n_tow += int((ev.X[:, 0] == ELEM_TOWER).sum())
        for key in counts:
            y = getattr(ev, key)
            counts[key] += np.bincount(y[:, 0].astype(np.int64), minlength=len(CLASS_NAMES))
    out: dict[str, Any] = {
        "events": n_ev,
        "elements_per_event": n_el / n_ev,
        "tracks_per_event": n_trk / n_ev,
        "towers_per_event": n_tow / n_ev,
    }
    for key, c in counts.items():
        out[f"{key}_fractions"] = {
            name: round(float(v / c.sum()), 5) for name, v in zip(CLASS_NAMES, c, strict=True)
        }
    return out


def main() -> None:
    """Parse arguments, run the benchmark, print (and optionally save) the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--process", default="ttbar")
    ap.add_argument("--pileup", type=float, default=0.0)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE)
    ap.add_argument("--events-per-file", type=int, default=None, help="default: events / workers")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--separate-ecal", action="store_true", help="separate ECAL and HCAL tower elements"
    )
    ap.add_argument(
        "--pool-cache", type=Path, default=None, help="keep/reuse the pile-up pool in this folder"
    )
    args = ap.parse_args()
    epf = args.events_per_file or max(1, math.ceil(args.events / args.workers))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pg_bench_gen_") as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        if args.pileup > 0:
            cache = args.pool_cache or out
            load_or_build_pool(args.pool_size, args.seed, cache)
            if cache != out:
                src = pool_cache_path(cache, args.pool_size, args.seed)
                shutil.copy(src, out / src.name)
        pool_s = time.perf_counter() - t0
        kw = {
            "process": args.process, "events": args.events, "pileup": args.pileup,
            "seed": args.seed, "out": out, "events_per_file": epf, "pool_size": args.pool_size,
            "progress": False, "num_shards": args.workers,
            "detector": DetectorConfig(separate_ecal_towers=args.separate_ecal),
        }  # fmt: skip
        t0 = time.perf_counter()
        make_pythia(process_settings(args.process), 1)  # one initialisation, for reference
        init_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if args.workers == 1:
            _shard(kw | {"shard": 0})
        else:
            with mp.get_context("fork").Pool(args.workers) as pool:
                pool.map(_shard, [kw | {"shard": i} for i in range(args.workers)])
        wall = time.perf_counter() - t0
        stats = summarize(out)
    result = {
        "process": args.process,
        "pileup": args.pileup,
        "events": args.events,
        "workers": args.workers,
        "separate_ecal_towers": args.separate_ecal,
        "events_per_file": epf,
        "events_per_s": round(args.events / wall, 3),
        "seconds": round(wall, 2),
        "pool_size": args.pool_size if args.pileup > 0 else 0,
        "pool_seconds": round(pool_s, 2),
        "pythia_init_seconds": round(init_s, 2),  # paid once per file, included in events_per_s
        **stats,
        "machine": {"cpus": os.cpu_count(), "load_avg_1min_at_start": round(load, 2),
                    "python": platform.python_version()},
    }  # fmt: skip
    print(json.dumps(result))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
