"""Track-building modes of a default-pipeline run, side by side on the same edge scores.

    python bench/tracking_build_modes.py --run runs/lp2_mu50 --data data/trk/mu50_test \
        --events 10 --new splitext:0.85 splitfollow:0.85 [--follower 0.1:1.5] \
        [--val-scan splitext --thresholds 0.7 0.85] --label mu50 --out FILE.json

The run's classifier scores every event's edges once; the run's own building (``run.json``,
chosen on its validation events) and each ``--new`` one (MODE:THRESHOLD, chosen beforehand on
the validation events, e.g. with ``--val-scan``) then build tracks from the same scores, so the
difference is the building alone. ``--follower PT_MIN:WINDOW_SCALE`` adds the classical track
follower (settings chosen on validation events elsewhere) on the same events. ``--val-scan`` scores every (mode, threshold) on the run's
validation events only (never on ``--data``). The run folder is only read. Reports per method
the TrackML score, double-majority efficiency, fake and duplicate rates (pT > 1 GeV), building
seconds per event (mean ± standard error over events), and the paired score difference.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.tasks.tracking.build import MODES, BuildConfig, build_tracks
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.follower import FollowerConfig, follow_tracks
from particlegraph.tasks.tracking.learned import LayerPairRun, load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.score import track_metrics, trackml_score
from particlegraph.tasks.tracking.trackml import list_events


def mean_sem(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    sem = float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan")
    return {"mean": float(a.mean()), "sem": sem, "n": int(a.size)}


def scored(run: LayerPairRun, events: list[HitEvent]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(edges (2, E), scores (E,)) of every event from the run's graph, filter and network."""
    out = []
    for ev in events:
        _, d, score, _ = reconstruct_event(run, ev)
        out.append((d.edge_index.numpy(), score))
    return out


def _metrics(ev: HitEvent, tid: np.ndarray, build_s: float) -> dict[str, float]:
    """TrackML score and pT > 1 GeV track metrics of one event's track ids, with the build time."""
    pid = ev.particle_id.numpy()
    m = track_metrics(pid, tid, ev.particle_pt())
    return {"score": trackml_score(pid, ev.weight.numpy(), tid), "build_s": build_s,
            "efficiency_pt1": m["efficiency"], "fake_rate_pt1": m["fake_rate"],
            "duplicate_rate_pt1": m["duplicate_rate"]}  # fmt: skip


def build_one(
    ev: HitEvent, edges: np.ndarray, score: np.ndarray, b: BuildConfig
) -> dict[str, float]:
    """Build one event's tracks; its score, pT > 1 GeV track metrics and building time."""
    t0 = time.perf_counter()
    tid = build_tracks(ev.num_hits, edges, score, b, ev.layer.numpy(), ev.xyz.numpy())
    return _metrics(ev, tid, time.perf_counter() - t0)


def val_scan(run: LayerPairRun, modes: list[str], thresholds: list[float]) -> list[dict[str, Any]]:
    """Every (mode, threshold) on the run's validation events: mean and per-event scores."""
    val_ev = load_events(run.cfg.data, run.info["val_events"])
    sc = scored(run, val_ev)
    rows = []
    for mode in modes:
        for t in thresholds:
            b = BuildConfig(threshold=t, mode=mode)
            per = [build_one(ev, e, s, b) for ev, (e, s) in zip(val_ev, sc, strict=True)]
            rows.append({"mode": mode, "threshold": t,
                         "score": float(np.mean([p["score"] for p in per])),
                         "per_event": [p["score"] for p in per],
                         "build_s": float(np.mean([p["build_s"] for p in per]))})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True, help="unseen test events")
    p.add_argument("--events", type=int, default=10, help="the first N events of --data")
    p.add_argument("--new", nargs="+", required=True, help="MODE:THRESHOLD (validation choice)")
    p.add_argument("--follower", default="", help="PT_MIN:WINDOW_SCALE of the follower")
    p.add_argument("--val-scan", nargs="*", default=[], choices=MODES)
    p.add_argument("--thresholds", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--label", default="")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    configs = {"old": run.build}
    for item in args.new:
        mode, thr = item.split(":")
        configs[item] = BuildConfig(threshold=float(thr), mode=mode)
    scan = val_scan(run, args.val_scan, args.thresholds) if args.val_scan else []
    ids = list_events(args.data)[: args.events]
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
    if args.follower:
        rows["follower"] = []
    t0 = time.perf_counter()
    for i in ids:
        ev = load_events(args.data, [i])[0]
        ((edges, score),) = scored(run, [ev])
        for k, b in configs.items():
            rows[k].append(build_one(ev, edges, score, b))
        if args.follower:
            rows["follower"].append(follower_one(ev, args.follower))
    keys = list(rows["old"][0])
    methods = {k: {q: mean_sem([r[q] for r in rows[k]]) for q in keys}
               | {"per_event_score": [r["score"] for r in rows[k]]} for k in rows}  # fmt: skip
    for k, b in configs.items():
        methods[k]["build"] = {"mode": b.mode, "threshold": b.threshold}
    diffs = {f"{n} - {o}": mean_sem([x["score"] - y["score"]
                                     for x, y in zip(rows[n], rows[o], strict=True)])
             for n in configs if n != "old" for o in rows if o != n and o in ("old", "follower")}  # fmt: skip
    emit({"bench": "tracking_build_modes", "label": args.label, "machine": machine(),
          "run": args.run, "data": args.data, "event_ids": ids, "methods": methods,
          "paired_score_differences": diffs, "val_scan": scan,
          "wall_s": time.perf_counter() - t0}, args.out)  # fmt: skip


def follower_one(ev: HitEvent, setting: str) -> dict[str, float]:
    """The classical track follower (PT_MIN:WINDOW_SCALE) on one event, as :func:`build_one`."""
    pt_min, scale = (float(x) for x in setting.split(":"))
    t0 = time.perf_counter()
    tid = follow_tracks(
        ev.xyz.numpy(), ev.layer.numpy(), FollowerConfig(pt_min, window_scale=scale)
    )
    return _metrics(ev, tid, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
