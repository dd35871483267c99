"""The second-pass follower of ``splitfollow`` chosen on a run's validation events.

    python bench/tracking_hybrid.py --run runs/lp3_mu200 [--cache DIR] [--grid JSON]
        [--max-fake 0.04] [--max-seconds 3] [--write] --out FILE.json

``splitfollow`` builds the learned tracks (``splitext`` with the run's threshold and cleanup),
then runs the road-search track follower (:mod:`particlegraph.tasks.tracking.follower`) on the
hits no learned track holds: the soft particles below the layer-pair graph's pT floor. At pile-up
200 the follower's default second pass (pT > 0.05 GeV seeds, window scale 3, 4 hits) adds many
fake tracks and 5-15 s per event, so its seed pT, window scale and minimum hits
(``build.follow_*``) are scanned here on the run's VALIDATION events only (``run.json``'s
``val_events``; never test events). The classifier scores every event once (``--cache DIR``
keeps the edges and scores as ``.npz``); the learned tracks are built once; each setting of
:data:`GRID` then runs the follower on the free hits and the run's cleanup on all tracks.

``chosen``: the highest mean validation TrackML score among the settings whose mean validation
fake rate is at most ``--max-fake`` and whose follower takes at most ``--max-seconds`` per
event (ties: the first in the scan). The rule was fixed before the scan (docs/tracking.md,
"Fifth session"). ``--write`` stores it in ``run.json``'s ``build`` with mode ``splitfollow``
(the previous building kept as ``build_before_hybrid``, the scan as ``hybrid_scan``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.allocator import keep_freed_memory
from particlegraph.atomic import write_json
from particlegraph.tasks.tracking.build import BuildConfig, build_tracks, cleaned, singletons
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.extend import follow_free, release_small
from particlegraph.tasks.tracking.learned import load_layerpair_run
from tracking_cleanup import metrics, scored

#: The settings scanned (``--grid`` replaces entries): BuildConfig field -> values.
GRID: dict[str, list[float]] = {
    "follow_pt_min": [0.05, 0.1, 0.15],
    "follow_window_scale": [1.0, 1.25, 1.5, 2.0],
    "follow_min_hits": [6, 7, 8, 9],
}


def learned_tracks(ev: HitEvent, e: np.ndarray, s: np.ndarray, base: BuildConfig) -> np.ndarray:
    """The ``splitext`` tracks of ``base`` before the cleanup, hits on no track -1 (N,)."""
    b = replace(base, mode="splitext", outlier_mm=0.0, max_fit_rms=0.0, min_hits=0,
                min_edge_score=0.0)  # fmt: skip
    return release_small(build_tracks(ev.num_hits, e, s, b, ev.layer.numpy(), ev.xyz.numpy()), 2)


def one_setting(
    events: list[HitEvent], built: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    cfg: BuildConfig,
) -> dict[str, Any]:  # fmt: skip
    """Mean validation metrics and follower seconds of one setting (``cfg``'s follower and
    cleanup applied to the learned tracks)."""
    per, secs = [], []
    for ev, (track, e, s) in zip(events, built, strict=True):
        xyz = ev.xyz.numpy()
        t0 = time.perf_counter()
        out = follow_free(track, xyz, ev.layer.numpy(), cfg.follower())
        secs.append(time.perf_counter() - t0)
        out = cleaned(singletons(out), e, s, cfg, xyz)
        per.append(metrics(ev, out))
    row: dict[str, Any] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    return row | {"follower_s": float(np.mean(secs))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--cache", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grid", default="", help='JSON, e.g. {"follow_min_hits": [6, 8]}')
    p.add_argument("--max-fake", type=float, default=0.04)
    p.add_argument("--max-seconds", type=float, default=3.0)
    p.add_argument("--write", action="store_true")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    t0 = time.perf_counter()
    run = load_layerpair_run(args.run)
    base = BuildConfig(**run.info.get("build_before_hybrid", run.info["build"]))
    events = load_events(run.cfg.data, run.info["val_events"])
    cache = Path(args.cache) if args.cache else None
    scores = [scored(run, ev, cache) for ev in events]
    built = [
        (learned_tracks(ev, e, s, base), e, s) for ev, (e, s) in zip(events, scores, strict=True)
    ]
    plain = [metrics(ev, build_tracks(ev.num_hits, e, s, base, ev.layer.numpy(), ev.xyz.numpy()))
             for ev, (e, s) in zip(events, scores, strict=True)]  # fmt: skip
    grid = {**GRID, **json.loads(args.grid)} if args.grid else GRID
    rows = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        setting["follow_min_hits"] = int(setting["follow_min_hits"])
        rows.append(setting | one_setting(events, built, replace(base, **setting)))
        print(json.dumps(rows[-1]), flush=True)
    ok = [
        r
        for r in rows
        if r["fake_rate_pt1"] <= args.max_fake and r["follower_s"] <= args.max_seconds
    ]
    best = max(ok, key=lambda r: r["score"]) if ok else None  # max keeps the first of ties
    out = {"bench": "tracking_hybrid", "machine": machine(), "run": args.run,
           "val_events": run.info["val_events"], "data": run.cfg.data, "base_build": asdict(base),
           "base_metrics": {k: float(np.mean([q[k] for q in plain])) for k in plain[0]},
           "max_fake": args.max_fake, "max_seconds": args.max_seconds, "grid": grid, "scan": rows,
           "chosen": best, "wall_s": time.perf_counter() - t0}  # fmt: skip
    if args.write and best is not None:
        info = dict(run.info)
        info.setdefault("build_before_hybrid", info["build"])
        info["build"] = {**info["build"], "mode": "splitfollow", **{k: best[k] for k in grid}}
        info["hybrid_scan"] = {"max_fake": args.max_fake, "max_seconds": args.max_seconds,
                               "grid": grid, "scan": rows}  # fmt: skip
        write_json(Path(args.run) / "run.json", info)
        out["written"] = info["build"]
    emit(out, args.out)


if __name__ == "__main__":
    main()
