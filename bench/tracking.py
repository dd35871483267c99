"""Tracking benchmarks: physics (score, efficiencies, baselines), per-stage time and its scaling.

    python bench/tracking.py physics --run RUN --data DIR --label mu200 [--events N] [--out FILE]
        [--exercise-run RUN]
    python bench/tracking.py scaling --run RUN --small DIR --big DIR [--out FILE]
    python bench/tracking.py realism --data DIR [--data DIR ...] [--out FILE]

``physics`` runs ``tracking evaluate`` on a run of either pipeline and saves the summary: for the
default pipeline (layer-pair graph + interaction network) the learned method and the classical
baselines, each with ``"kind"``, mean, std and standard error over events; ``--exercise-run``
adds the exercise pipeline's methods (evaluated on the same events) as ``exercise_*``; ``scaling`` times every inference stage on the event of ``--small`` nearest
25,000 hits and the event of ``--big`` nearest 100,000 hits in one process (wall and CPU time,
one torch thread) and reports time(100k) / time(25k); ``realism`` counts hits, particles with
hits and noise per event against the TrackML numbers.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.evaluate import evaluate_run
from particlegraph.tasks.tracking.evaluate_layerpair import evaluate_layerpair_run
from particlegraph.tasks.tracking.pipeline import reconstruct
from particlegraph.tasks.tracking.runconfig import run_pipeline
from particlegraph.tasks.tracking.trackml import list_events, read_event
from particlegraph.tasks.tracking.train import load_run


def physics(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    out = Path(args.eval_out) if args.eval_out else Path(tempfile.mkdtemp(prefix="trk_eval_"))
    t0 = time.perf_counter()
    if run_pipeline(args.run) == "layerpair":
        classical = args.classical.split(",") if args.classical else None
        m = evaluate_layerpair_run(args.run, args.data, out, max_events=args.events,
                                   tune_data=args.tune_data or None, tune_events=args.tune_events,
                                   classical=classical, classical_events=args.classical_events)  # fmt: skip
        if args.exercise_run:
            ex = evaluate_run(args.exercise_run, args.data, out / "exercise", max_events=args.events,
                              plots=False, tune_data=args.tune_data or None,
                              tune_events=args.tune_events)  # fmt: skip
            for name, v in ex["methods"].items():
                if name in ("gnn", "stage1_dbscan"):
                    m["methods"][f"exercise_{name}"] = {"kind": "learned", **v}
            m["exercise_run"] = args.exercise_run
        return {"bench": "tracking_physics", "label": args.label, "machine": machine(),
                "threads": args.threads, "wall_s": time.perf_counter() - t0, **m}  # fmt: skip
    m = evaluate_run(args.run, args.data, out, max_events=args.events, plots=args.plots,
                     tune_data=args.tune_data or None, tune_events=args.tune_events)  # fmt: skip
    m.pop("baseline_tuning", None)
    return {"bench": "tracking_physics", "label": args.label, "machine": machine(),
            "wall_s": time.perf_counter() - t0, "eval_out": str(out), **m}  # fmt: skip


def _nearest(folder: str, target: int) -> Any:
    ids = list_events(folder)
    sizes = [(abs(read_event(folder, i, truth=False).num_hits - target), i) for i in ids[:10]]
    return load_events(folder, [min(sizes)[1]])[0]


def _time_stages(model: Any, cfg: Any, cluster: Any, ev: Any, repeats: int) -> dict[str, float]:
    walls: dict[str, list[float]] = {}
    cpu = []
    for _ in range(repeats):
        c0 = time.process_time()
        rec = reconstruct(model, ev.x, cfg.graph, cluster)
        cpu.append(time.process_time() - c0)
        for k, v in rec.times.items():
            walls.setdefault(k, []).append(v)
    out = {k: float(np.median(v)) for k, v in walls.items()}
    out["cpu_total_s"] = float(np.median(cpu))
    out["hits"] = ev.num_hits
    out["edges"] = int(rec.edge_index.shape[1])
    return out


def scaling(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    model, cfg, cluster = load_run(args.run)
    small, big = _nearest(args.small, 25_000), _nearest(args.big, 100_000)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = _time_stages(model, cfg, cluster, small, args.repeats)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    b = _time_stages(model, cfg, cluster, big, args.repeats)
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = {k: b[k] / s[k] for k in s if k not in ("hits", "edges") and s[k] > 0}
    return {
        "bench": "tracking_scaling", "machine": machine(), "run": str(args.run), "threads": 1,
        "small": s, "big": b,
        "ratio_big_over_small": ratio, "hits_ratio": b["hits"] / s["hits"],
        "peak_rss_mb": {"before": rss0, "after_small": rss1, "after_big": rss2},
    }  # fmt: skip


def realism(args: argparse.Namespace) -> dict[str, Any]:
    rows = {}
    for folder in args.data:
        hits, parts, noise = [], [], []
        for i in list_events(folder)[: args.events or None]:
            ev = read_event(folder, i)
            assert ev.truth is not None and ev.particles is not None
            hits.append(ev.num_hits)
            parts.append(int((ev.particles["nhits"] > 0).sum()))
            noise.append(float(np.mean(ev.truth["particle_id"] == 0)))
        rows[folder] = {"events": len(hits), "hits": float(np.mean(hits)), "hits_std": float(np.std(hits)),
                        "particles_with_hits": float(np.mean(parts)), "noise_fraction": float(np.mean(noise)),
                        "hits_per_particle": float(np.sum(hits) * (1 - np.mean(noise)) / max(np.sum(parts), 1))}  # fmt: skip
    return {
        "bench": "tracking_realism",
        "trackml_mu200": {"hits": 100_000, "particles": 10_000},
        "samples": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    ph = sub.add_parser("physics")
    ph.add_argument("--run", required=True)
    ph.add_argument("--data", required=True)
    ph.add_argument("--label", default="")
    ph.add_argument("--events", type=int, default=0)
    ph.add_argument("--eval-out", default="")
    ph.add_argument("--plots", action="store_true")
    ph.add_argument("--tune-data", default="", help="re-tune every DBSCAN on these events")
    ph.add_argument("--tune-events", type=int, default=2)
    ph.add_argument("--exercise-run", default="", help="also evaluate this exercise-pipeline run")
    ph.add_argument("--classical", default="", help="comma-separated classical methods (all)")
    ph.add_argument("--classical-events", type=int, default=0, help="run them on the first N")
    ph.add_argument("--threads", type=int, default=2, help="torch threads (the bench: 2 cores)")
    ph.add_argument("--out", default="")
    sc = sub.add_parser("scaling")
    sc.add_argument("--run", required=True)
    sc.add_argument("--small", required=True)
    sc.add_argument("--big", required=True)
    sc.add_argument("--repeats", type=int, default=2)
    sc.add_argument("--out", default="")
    re_ = sub.add_parser("realism")
    re_.add_argument("--data", nargs="+", required=True)
    re_.add_argument("--events", type=int, default=0)
    re_.add_argument("--out", default="")
    args = p.parse_args()
    fn = {"physics": physics, "scaling": scaling, "realism": realism}[args.mode]
    emit(fn(args), args.out or None)


if __name__ == "__main__":
    main()
