"""Tracking benchmarks: physics (score, efficiencies, baselines), per-stage time and its scaling.

    python bench/tracking.py physics --run RUN --data DIR --label mu200 [--events N] [--out FILE]
        [--methods layerpair_gnn,track_follower,...] [--classical-events K] [--resume]
        [--exercise-run RUN]
    python bench/tracking.py merge A.json B.json --out C.json [--overwrite]
    python bench/tracking.py scaling --run RUN --small DIR --big DIR [--subset] [--out FILE]
    python bench/tracking.py profile --run RUN --data DIR --event ID [--out FILE]
    python bench/tracking.py realism --data DIR [--data DIR ...] [--out FILE]

``physics`` runs ``tracking evaluate`` on a run of either pipeline and saves the summary: for the
default pipeline (layer-pair graph + interaction network) the learned method and the classical
baselines, each with ``"kind"``, mean, std and standard error over events, the per-event records
and the paired difference learned minus each classical method on their common events;
``--methods`` picks the methods (default all), and ``--out`` is rewritten atomically after every
method of every event (``"complete": false`` until the end), so a job stopped by its time limit
keeps what it did and ``--resume`` continues it (finished events of the same run, model, data
and event ids are reused; an existing ``--out`` is refused without ``--resume``). ``merge``
joins two such files of the same run and events with different methods (say the learned
method from one job and the classical ones from another) into the summary one job would have
written. ``--exercise-run`` adds the exercise pipeline's methods (evaluated on the same events)
as ``exercise_*``. ``scaling`` times every inference stage on the event of ``--small`` nearest
25,000 hits and the event of ``--big`` nearest 100,000 hits in one process (wall and CPU time)
and reports time(100k) / time(25k). For a default-pipeline run (graph, filter, interaction
network, track building; ``--threads`` torch threads) the two are timed in turn, ``--repeats``
times (medians per stage and of the per-repeat ratios), and ``--subset`` also times two subsets of
the big event itself, a random share of its particles (with all their hits) and the same share
of its noise hits, cut to about 25,000 and 100,000 hits. ``profile`` runs one event of a
default-pipeline run under cProfile (seconds per stage, the functions with the most own
time). ``realism`` counts hits, particles
with hits and noise per event against the TrackML numbers.

``physics``, ``scaling`` and ``profile`` first tell glibc to keep freed blocks in the heap
(:func:`particlegraph.allocator.keep_freed_memory`, as ``tracking evaluate`` does); ``--allocator
default`` leaves glibc's settings alone (to measure the difference). Their JSON records it
(``allocator``) and the process's peak resident memory (``peak_rss_mb``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import machine
from particlegraph.allocator import keep_freed_memory
from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.eval_summary import LEARNED, merge_summaries
from particlegraph.tasks.tracking.evaluate import evaluate_run
from particlegraph.tasks.tracking.evaluate_layerpair import evaluate_layerpair_run
from particlegraph.tasks.tracking.learned import (
    TRACKING_PACKAGE,
    load_layerpair_run,
    reconstruct_event,
)
from particlegraph.tasks.tracking.pipeline import reconstruct
from particlegraph.tasks.tracking.runconfig import run_pipeline
from particlegraph.tasks.tracking.trackml import list_events, read_event
from particlegraph.tasks.tracking.train import load_run
from particlegraph.train.run import open_run


def physics(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    out = Path(args.eval_out) if args.eval_out else Path(tempfile.mkdtemp(prefix="trk_eval_"))
    t0 = time.perf_counter()
    if _pipeline(args.run) == "layerpair":
        if args.out and Path(args.out).exists() and not args.resume:
            raise ConfigError(f"{args.out} exists: give --resume to continue it, or another --out")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        m = evaluate_layerpair_run(args.run, args.data, out, max_events=args.events,
                                   tune_data=args.tune_data or None, tune_events=args.tune_events,
                                   methods=_methods(args), classical_events=args.classical_events,
                                   partial=args.out or out / "partial.json",
                                   resume=args.resume)  # fmt: skip
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
    if args.methods or args.resume:
        raise ConfigError("--methods and --resume need a run of the default pipeline")
    m = evaluate_run(args.run, args.data, out, max_events=args.events, plots=args.plots,
                     tune_data=args.tune_data or None, tune_events=args.tune_events)  # fmt: skip
    m.pop("baseline_tuning", None)
    return {"bench": "tracking_physics", "label": args.label, "machine": machine(),
            "wall_s": time.perf_counter() - t0, "eval_out": str(out), **m}  # fmt: skip


def _pipeline(spec: str) -> str:
    """The pipeline of a run folder or a shipped ``pretrained:NAME``."""
    return run_pipeline(open_run(spec, "tracking", TRACKING_PACKAGE).path)


def _methods(args: argparse.Namespace) -> list[str] | None:
    """``--methods``, or the learned method plus ``--classical`` (the older option), or all."""
    if args.methods and args.classical:
        raise ConfigError("give --methods or --classical, not both")
    if args.methods:
        return [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.classical:
        return [LEARNED, *(m.strip() for m in args.classical.split(",") if m.strip())]
    return None


def merge(args: argparse.Namespace) -> dict[str, Any]:
    """Join two ``physics`` files of the same run and events with different methods."""
    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists: give --overwrite or another --out")
    if any(Path(args.out).resolve() == Path(f).resolve() for f in args.inputs):
        raise ConfigError("--out must not be one of the merged files")
    parts = []
    for f in args.inputs:
        try:
            parts.append(json.loads(Path(f).read_text()))
        except (OSError, ValueError) as e:
            raise DataFileError(f"{f}: not a readable JSON file ({e})") from e
    m = merge_summaries(*parts)
    for part in parts:  # the exercise pipeline's methods have no per-event records: carried
        for name, v in part.get("methods", {}).items():
            if name.startswith("exercise_"):
                m["methods"][name] = v
        if part.get("exercise_run"):
            m["exercise_run"] = part["exercise_run"]
    first = parts[0]
    return {"bench": "tracking_physics", "label": args.label or first.get("label", ""),
            "machine": first.get("machine"), "threads": first.get("threads"),
            "merged_from": list(args.inputs),
            "wall_s": sum(float(p.get("wall_s", 0.0)) for p in parts), **m}  # fmt: skip


def _nearest(folder: str, target: int, scan: int = 10) -> Any:
    """The event among the first ``scan`` of ``folder`` whose hit count is nearest ``target``."""
    ids = list_events(folder)
    sizes = [(abs(read_event(folder, i, truth=False).num_hits - target), i) for i in ids[:scan]]
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


def _subset(ev: HitEvent, hits: int, seed: int = 0) -> HitEvent:
    """A random share of ``ev``'s particles (all their hits) and the same share of its noise
    hits, the share chosen so that about ``hits`` hits remain (seeded)."""
    rng = np.random.default_rng(seed)
    share = min(hits / ev.num_hits, 1.0)
    pid = ev.particle_id.numpy()
    uniq, inv = np.unique(pid, return_inverse=True)
    keep_particle = rng.random(uniq.size) < share
    keep = np.where(pid == 0, rng.random(pid.size) < share, keep_particle[inv])
    idx = torch.from_numpy(np.nonzero(keep)[0])
    cut = {f.name: getattr(ev, f.name) for f in fields(ev) if f.name != "event_id"}
    return HitEvent(ev.event_id, **{k: v[idx] if v.numel() else v for k, v in cut.items()})


def _time_layerpair_once(run: Any, ev: HitEvent) -> tuple[dict[str, float], int]:
    """Wall seconds per stage of one ``reconstruct_event`` (plus ``cpu_total_s``) and the
    number of filtered edges."""
    c0 = time.process_time()
    _, d, _, times = reconstruct_event(run, ev)
    return {**times, "cpu_total_s": time.process_time() - c0}, int(d.edge_index.shape[1])


def _median_times(ev: HitEvent, runs: list[dict[str, float]], edges: int) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return out | {"hits": ev.num_hits, "event_id": ev.event_id, "filtered_edges": edges}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far [MB] (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pair(run: Any, small: HitEvent, big: HitEvent, repeats: int) -> dict[str, Any]:
    """Per-stage medians of ``repeats`` interleaved timings (small, big, small, big, ...: load
    that comes and goes hits both alike) and the median of the per-repeat total ratios."""
    runs_s, runs_b = [], []
    for _ in range(repeats):
        t, e_s = _time_layerpair_once(run, small)
        runs_s.append(t)
        t, e_b = _time_layerpair_once(run, big)
        runs_b.append(t)
    s, b = _median_times(small, runs_s, e_s), _median_times(big, runs_b, e_b)
    ratio = {k: b[k] / s[k] for k in s if k.endswith("_s") and s[k] > 0}
    per_repeat = [rb["total_s"] / rs["total_s"] for rs, rb in zip(runs_s, runs_b, strict=True)]
    return {"small": s, "big": b, "ratio_big_over_small": ratio, "hits_ratio": b["hits"] / s["hits"],
            "total_ratio_per_repeat": per_repeat, "total_ratio_median": float(np.median(per_repeat)),
            "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


def scaling_layerpair(args: argparse.Namespace) -> dict[str, Any]:
    """Per-stage times of the default pipeline at about 25k and 100k hits, in one process."""
    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    big = _nearest(args.big, 100_000, scan=args.scan)
    small = _nearest(args.small, 25_000, scan=args.scan)
    reconstruct_event(run, small)  # warm-up: first-call allocations are not timed
    load0 = os.getloadavg()
    out = {"bench": "tracking_scaling", "pipeline": "layerpair", "machine": machine(),
           "run": str(args.run), "threads": args.threads, "repeats": args.repeats,
           "small_data": args.small, "big_data": args.big,
           "nearest": _pair(run, small, big, args.repeats)}  # fmt: skip
    if args.subset:
        out["subset"] = _pair(run, _subset(big, 25_000), _subset(big, 100_000), args.repeats)
        out["subset"]["source_event"] = {"event_id": big.event_id, "hits": big.num_hits}
    out["load_avg_1_5_15"] = {"before": list(load0), "after": list(os.getloadavg())}
    return out


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """cProfile of one event through ``reconstruct_event``: seconds per stage and the functions
    with the most own time (one call, no warm-up, as a single evaluation event)."""
    import cProfile
    import pstats

    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    ev = load_events(args.data, [args.event])[0]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    _, d, _, times = reconstruct_event(run, ev)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (_, ncalls, tottime, cumtime, _) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({fn})", "calls": ncalls,
                     "own_s": tottime, "cumulative_s": cumtime})  # fmt: skip
    rows.sort(key=lambda r: -r["own_s"])
    return {"bench": "tracking_profile", "machine": machine(), "run": str(args.run),
            "data": args.data, "event_id": ev.event_id, "hits": ev.num_hits,
            "filtered_edges": int(d.edge_index.shape[1]), "threads": args.threads,
            "wall_s": wall, "stages_s": times, "top_own_time": rows[: args.top],
            "load_avg_1_5_15": list(os.getloadavg())}  # fmt: skip


def scaling(args: argparse.Namespace) -> dict[str, Any]:
    if _pipeline(args.run) == "layerpair":
        return scaling_layerpair(args)
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
    ph.add_argument(
        "--methods",
        default="",
        help="comma-separated methods: layerpair_gnn and classical ones (all)",
    )
    ph.add_argument(
        "--classical",
        default="",
        help="older form: layerpair_gnn plus these comma-separated classical methods",
    )
    ph.add_argument(
        "--resume",
        action="store_true",
        help="continue --out: reuse its finished events (same run, data, events)",
    )
    ph.add_argument("--classical-events", type=int, default=0, help="run them on the first N")
    ph.add_argument("--threads", type=int, default=2, help="torch threads (the bench: 2 cores)")
    ph.add_argument("--out", default="")
    mg = sub.add_parser("merge")
    mg.add_argument("inputs", nargs=2, help="two physics files of the same run and events")
    mg.add_argument("--out", required=True)
    mg.add_argument("--label", default="")
    mg.add_argument("--overwrite", action="store_true")
    sc = sub.add_parser("scaling")
    sc.add_argument("--run", required=True)
    sc.add_argument("--small", required=True)
    sc.add_argument("--big", required=True)
    sc.add_argument("--repeats", type=int, default=2)
    sc.add_argument("--scan", type=int, default=20, help="look at the first N events of each")
    sc.add_argument(
        "--subset",
        action="store_true",
        help="default pipeline: also time 25k- and 100k-hit subsets of the big event",
    )
    sc.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads for the default pipeline (the exercise's: 1)",
    )
    sc.add_argument("--out", default="")
    pr = sub.add_parser("profile")
    pr.add_argument("--run", required=True)
    pr.add_argument("--data", required=True)
    pr.add_argument("--event", type=int, required=True)
    pr.add_argument("--threads", type=int, default=2)
    pr.add_argument("--top", type=int, default=25)
    pr.add_argument("--out", default="")
    re_ = sub.add_parser("realism")
    re_.add_argument("--data", nargs="+", required=True)
    re_.add_argument("--events", type=int, default=0)
    re_.add_argument("--out", default="")
    for sp in (ph, sc, pr):
        sp.add_argument("--allocator", choices=("keep", "default"), default="keep",
                        help="keep: glibc keeps freed blocks in the heap (particlegraph.allocator)")  # fmt: skip
    args = p.parse_args()
    applied = keep_freed_memory() if getattr(args, "allocator", "default") == "keep" else False
    fn = {"physics": physics, "merge": merge, "scaling": scaling, "profile": profile,
          "realism": realism}[args.mode]  # fmt: skip
    try:
        result = fn(args)
    except (ConfigError, DataFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if hasattr(args, "allocator"):
        result["allocator"] = {"mode": args.allocator, "applied": applied}
        result["peak_rss_mb"] = result.get("peak_rss_mb") or _peak_rss_mb()
    print(json.dumps(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
