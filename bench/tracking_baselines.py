"""Classical tracking baselines on unseen events: TrackML score, efficiencies, fake and duplicate
rates, time per event.

    python bench/tracking_baselines.py --data DIR --val 5 --test 20 --label mu50 \
        [--methods helix_dbscan track_follower raw_dbscan] \
        [--base '{"track_follower": {"pt_min": 0.3}}'] [--out FILE]

Fixed settings default to ``baselines.default_base`` for the validation events' size.

The first ``--val`` events of ``DIR`` choose each method's settings (the grid of
``baselines.GRIDS``, by the mean TrackML score); the next ``--test`` events are scored. Per method:
mean over test events with its standard error of the TrackML score, the double-majority efficiency
and the fake and duplicate rates for particles with pT > 1 GeV and > 0.5 GeV (>= 3 hits; the fake
rate is over all candidates of >= 3 hits), and the wall and CPU time per event (one process, numpy
single-threaded unless OMP_NUM_THREADS says otherwise). Run it through the heavy-job queue.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from common import emit, machine
from particlegraph.tasks.tracking.baselines import default_base, find_tracks, tune
from particlegraph.tasks.tracking.dataset import HitEvent, to_hit_event
from particlegraph.tasks.tracking.score import track_metrics, trackml_score
from particlegraph.tasks.tracking.trackml import list_events, read_event

KEYS = ("efficiency", "fake_rate", "duplicate_rate")


def load(folder: str, ids: list[int]) -> list[HitEvent]:
    """Events with their layer key ``100 * volume_id + layer_id`` attached as ``layer``."""
    out = []
    for i in ids:
        ev = read_event(folder, i)
        he = to_hit_event(ev)
        layer = 100 * ev.hits["volume_id"].astype(np.int64) + ev.hits["layer_id"]
        object.__setattr__(he, "layer", layer)
        out.append(he)
    return out


def _mean_se(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "stderr": float("nan"), "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return {"mean": float(v.mean()), "stderr": se, "n": int(v.size)}


def evaluate(method: str, params: dict[str, Any], events: list[HitEvent]) -> dict[str, Any]:
    """Per-event metrics of ``method`` and their means with standard errors."""
    rows: dict[str, list[float]] = {"score": [], "wall_s": [], "cpu_s": []}
    for ev in events:
        xyz, layer = ev.xyz.numpy().astype(np.float64), np.asarray(ev.layer)
        t, c = time.perf_counter(), time.process_time()
        tid = find_tracks(method, xyz, layer, params)
        rows["wall_s"].append(time.perf_counter() - t)
        rows["cpu_s"].append(time.process_time() - c)
        pid = ev.particle_id.numpy()
        rows["score"].append(trackml_score(pid, ev.weight.numpy(), tid))
        ppt = ev.particle_pt()
        for cut in (1.0, 0.5):
            m = track_metrics(pid, tid, ppt, pt_min=cut)
            for k in KEYS:
                rows.setdefault(f"{k}_pt{cut:g}", []).append(m[k])
    return {k: _mean_se(v) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True)
    ap.add_argument("--val", type=int, default=5)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--label", default="")
    ap.add_argument("--methods", nargs="+", default=["helix_dbscan", "track_follower"])
    ap.add_argument("--base", default="{}", help="JSON: method -> fixed settings")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    ids = list_events(args.data)
    if len(ids) < args.val + args.test:
        raise SystemExit(f"{args.data}: {len(ids)} events, fewer than --val + --test")
    val = load(args.data, ids[: args.val])
    test = load(args.data, ids[args.val : args.val + args.test])
    base = json.loads(args.base)
    hits = float(np.mean([e.num_hits for e in val]))
    methods = {}
    for name in args.methods:
        t = time.perf_counter()
        params, table = tune(name, val, base.get(name, default_base(name, hits)))
        tune_s = time.perf_counter() - t
        methods[name] = {
            "kind": "classical", "params": params, "tuning": table, "tune_s": tune_s,
            "metrics": evaluate(name, params, test),
        }  # fmt: skip
        print(name, json.dumps(methods[name]["metrics"]["score"]), flush=True)
    result = {
        "bench": "tracking_baselines", "label": args.label, "machine": machine(),
        "data": args.data, "val_events": ids[: args.val],
        "test_events": ids[args.val : args.val + args.test],
        "hits_per_event": float(np.mean([e.num_hits for e in test])), "methods": methods,
    }  # fmt: skip
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
