"""What the fake tracks of a default-pipeline run are, and the track cleanup chosen on validation.

    python bench/tracking_cleanup.py --run runs/lp3_mu200 [--cache DIR] [--thresholds 0.6 0.7]
        [--grid JSON] [--max-fake 0.04] [--write] --out FILE.json

On the run's VALIDATION events only (``run.json``'s ``val_events`` of its training data, never
test events): the classifier scores every event once (``--cache DIR`` keeps the edges and scores
as ``.npz`` for a rerun), the run's building makes the tracks, and then

- ``fakes``: candidate tracks (>= 3 hits) split into matched and fake (majority particle noise or
  holding no more than half of the track), with their hits, the mean and lowest score of the
  classified edges inside the track, the share of hits reached by no such edge (added by the
  helix extension), the number of particles and noise hits in a fake, and the pT of the
  majority particle;
- ``scan``: every cleanup of :data:`GRID` (``outlier_mm``, ``max_fit_rms``, ``min_hits``,
  ``min_edge_score``; see :mod:`particlegraph.tasks.tracking.cleanup`) applied to the same
  tracks, with the mean TrackML score, double-majority efficiency and fake rate (pT > 1 GeV);
- ``chosen``: the highest mean validation score among the cleanups whose mean validation fake
  rate is at most ``--max-fake`` (ties: the first in the scan, the gentlest). ``--thresholds``
  scans the building threshold with the cleanup (the run's mode). ``--write`` stores the choice
  in ``run.json``'s ``build`` (the previous building is kept as ``build_before_cleanup``, the
  scan as ``cleanup_scan``).
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
from particlegraph.tasks.tracking.build import build_tracks
from particlegraph.tasks.tracking.cleanup import clean_tracks, track_quality
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.learned import LayerPairRun, load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.score import match_tracks, track_metrics, trackml_score


def scored(run: LayerPairRun, ev: HitEvent, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(edges (2, E), scores (E,)) of the event's classified graph, from ``cache`` if there."""
    path = cache / f"scores_{ev.event_id}.npz" if cache is not None else None
    if path is not None and path.is_file():
        z = np.load(path)
        return z["edges"], z["score"]
    _, d, score, _ = reconstruct_event(run, ev)
    edges = d.edge_index.numpy()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, edges=edges, score=score)
    return edges, score


def _quantiles(a: np.ndarray) -> dict[str, float]:
    if a.size == 0:
        return {}
    q = np.quantile(a, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"mean": float(a.mean()), **{f"q{int(p * 100)}": float(v) for p, v in
                                        zip((0.1, 0.25, 0.5, 0.75, 0.9), q, strict=True)}}  # fmt: skip


def describe_fakes(
    ev: HitEvent, track: np.ndarray, edges: np.ndarray, score: np.ndarray
) -> dict[str, Any]:
    """Matched and fake candidate tracks of one event, side by side (see the module docstring)."""
    pid = ev.particle_id.numpy()
    t = match_tracks(pid, track)
    q = track_quality(track, edges, score)
    assert np.array_equal(q["track"], t["track"])
    cand = t["nhits"] >= 3
    fake = cand & ~t["matched"]
    good = cand & t["matched"]
    ppt = ev.particle_pt()
    major_pt = np.array([ppt.get(int(p), 0.0) for p in t["major_particle"]])
    # distinct particles (noise counted as one) and noise hits per track
    order = np.lexsort((pid, track))
    ts, ps = track[order], pid[order]
    new = np.r_[True, (ts[1:] != ts[:-1]) | (ps[1:] != ps[:-1])]
    tix = np.searchsorted(t["track"], ts)
    n_part = np.bincount(tix[new], minlength=t["track"].size)
    n_noise = np.bincount(np.searchsorted(t["track"], track[pid == 0]), minlength=t["track"].size)
    out: dict[str, Any] = {"candidates": int(cand.sum()), "fakes": int(fake.sum())}
    for name, sel in (("fake", fake), ("matched", good)):
        nh = t["nhits"][sel]
        out[name] = {
            "hits": {str(k): int((nh == k).sum()) for k in range(3, 8)}
            | {"8+": int((nh >= 8).sum())},
            "mean_edge_score": _quantiles(q["mean_score"][sel]),
            "min_edge_score": _quantiles(q["min_score"][sel]),
            "share_of_hits_without_edge": _quantiles(q["unlinked_share"][sel]),
            "particles_in_track": _quantiles(n_part[sel].astype(float)),
            "noise_hits": _quantiles(n_noise[sel].astype(float)),
            "major_share": _quantiles(t["major_nhits"][sel] / t["nhits"][sel]),
            "major_pt": _quantiles(major_pt[sel]),
        }
    return out


def metrics(ev: HitEvent, track: np.ndarray) -> dict[str, float]:
    pid = ev.particle_id.numpy()
    m = track_metrics(pid, track, ev.particle_pt())
    return {"score": trackml_score(pid, ev.weight.numpy(), track), "efficiency_pt1": m["efficiency"],
            "fake_rate_pt1": m["fake_rate"], "duplicate_rate_pt1": m["duplicate_rate"]}  # fmt: skip


#: The cleanup settings scanned (``bench/tracking_cleanup.py --grid``): name -> values.
GRID: dict[str, list[float]] = {
    "outlier_mm": [0.0, 5.0, 7.5, 10.0, 15.0, 20.0],
    "max_fit_rms": [0.0, 5.0, 10.0, 20.0],
    "min_hits": [0, 4],
    "min_edge_score": [0.0, 0.5],
}


def scan(
    events: list[HitEvent], built: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    grid: dict[str, list[float]],
) -> list[dict[str, Any]]:  # fmt: skip
    """Mean validation metrics of every cleanup of ``grid`` applied to the built tracks."""
    rows = []
    for values in itertools.product(*grid.values()):
        cut = dict(zip(grid, values, strict=True))
        cut["min_hits"] = int(cut["min_hits"])
        per = [metrics(ev, clean_tracks(track, e, s, xyz=ev.xyz.numpy(), **cut))  # type: ignore[arg-type]
               for ev, (track, e, s) in zip(events, built, strict=True)]  # fmt: skip
        row: dict[str, Any] = dict(cut)
        row |= {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--cache", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grid", default="", help='JSON, e.g. {"outlier_mm": [0, 10]} (default GRID)')
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=[],
        help="building thresholds scanned with the grid (default: the run's)",
    )
    p.add_argument("--max-fake", type=float, default=0.05)
    p.add_argument("--write", action="store_true")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    t0 = time.perf_counter()
    run = load_layerpair_run(args.run)
    base = replace(run.build, min_hits=0, min_edge_score=0.0, outlier_mm=0.0, max_fit_rms=0.0)
    events = load_events(run.cfg.data, run.info["val_events"])
    cache = Path(args.cache) if args.cache else None
    scores = [scored(run, ev, cache) for ev in events]
    grid = {**GRID, **json.loads(args.grid)} if args.grid else GRID
    rows, fakes = [], []
    for t in args.thresholds or [base.threshold]:
        b = replace(base, threshold=t)
        built = [(build_tracks(ev.num_hits, e, s, b, ev.layer.numpy(), ev.xyz.numpy()), e, s)
                 for ev, (e, s) in zip(events, scores, strict=True)]  # fmt: skip
        if t == base.threshold:
            fakes = [{"event_id": ev.event_id, **describe_fakes(ev, *bt)}
                     for ev, bt in zip(events, built, strict=True)]  # fmt: skip
        rows += [{"threshold": t, **r} for r in scan(events, built, grid)]
    ok = [r for r in rows if r["fake_rate_pt1"] <= args.max_fake]
    best = max(ok, key=lambda r: r["score"]) if ok else None  # max keeps the first of ties
    out = {"bench": "tracking_cleanup", "machine": machine(), "run": args.run,
           "val_events": run.info["val_events"], "data": run.cfg.data, "base_build": asdict(base),
           "max_fake": args.max_fake, "fakes": fakes, "scan": rows, "chosen": best,
           "wall_s": time.perf_counter() - t0}  # fmt: skip
    if args.write and best is not None:
        info = dict(run.info)
        info.setdefault("build_before_cleanup", info["build"])
        chosen = {k: int(best[k]) if k == "min_hits" else float(best[k])
                  for k in ("threshold", *GRID)}  # fmt: skip
        info["build"] = {**info["build"], **chosen}
        info["cleanup_scan"] = {"max_fake": args.max_fake, "grid": grid, "scan": rows}
        write_json(Path(args.run) / "run.json", info)
        out["written"] = info["build"]
    emit(out, args.out)


if __name__ == "__main__":
    main()
