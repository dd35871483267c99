"""Evaluate a run of the default pipeline beside the classical baselines on the same events.

Per event and method: TrackML score, double-majority efficiency, fake and duplicate rates for
pT > 1 and > 0.5 GeV; for the learned pipeline also the graph (edge efficiency for all true edges
and pT > 1 GeV, purity, edges per hit) before and after the classifier, and seconds per stage.
Summaries are mean, standard deviation and standard error of the mean over events. Every
method carries ``kind``: ``"learned"`` or ``"classical"``. The classical methods' settings are
tuned on the run's validation events (or ``tune_data``), never on the evaluated events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.graphs import edge_truth
from particlegraph.tasks.tracking.learned import LayerPairRun, load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.score import track_metrics, trackml_score
from particlegraph.tasks.tracking.trackml import list_events

log = logging.getLogger(__name__)
#: A classical method: ``tune(validation events) -> run(event) -> track ids``.
Classical = Callable[[list[HitEvent]], Callable[[HitEvent], np.ndarray]]


def classical_methods() -> dict[str, Classical]:
    """The classical baselines evaluated beside the learned pipeline."""
    from particlegraph.tasks.tracking import classical

    return classical.METHODS


def event_metrics(ev: HitEvent, track_id: np.ndarray) -> dict[str, float]:
    """Score, efficiency, fake and duplicate rates (pT > 1 and > 0.5 GeV) of one event."""
    pid = ev.particle_id.numpy()
    m = {"score": trackml_score(pid, ev.weight.numpy(), track_id)}
    ppt = ev.particle_pt()
    for cut in (1.0, 0.5):
        tm = track_metrics(pid, track_id, ppt, pt_min=cut)
        m.update({f"{k}_pt{cut:g}": v for k, v in tm.items()})
    return m


def graph_metrics(ev: HitEvent, edges: np.ndarray, prefix: str) -> dict[str, float]:
    """Edge efficiency (all, pT > 1 GeV), purity, edges per hit of ``edges`` (2, E)."""
    is_true, t = edge_truth(ev, edges)
    n = ev.num_hits
    key = np.unique(np.minimum(edges[0], edges[1]) * n + np.maximum(edges[0], edges[1]))
    tkey = np.minimum(t[0], t[1]) * n + np.maximum(t[0], t[1])
    found = np.isin(tkey, key)
    hi = ev.pt.numpy()[t[0]] > 1.0
    return {
        f"{prefix}edge_efficiency": float(found.mean()) if found.size else float("nan"),
        f"{prefix}edge_efficiency_pt1": float(found[hi].mean()) if hi.any() else float("nan"),
        f"{prefix}edge_purity": float(is_true.mean()) if is_true.size else float("nan"),
        f"{prefix}edges_per_hit": edges.shape[1] / max(n, 1),
    }


def stats(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation and standard error of the finite ``values``."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "sem": float("nan"), "n": 0}
    sem = float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan")
    return {"mean": float(a.mean()), "std": float(a.std()), "sem": sem, "n": int(a.size)}


def evaluate_layerpair_run(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    *,
    max_events: int = 0,
    baselines: bool = True,
    tune_data: str | Path | None = None,
    tune_events: int = 2,
    classical: list[str] | None = None,
    classical_events: int = 0,
) -> dict[str, Any]:
    """Evaluate the run (and the classical methods) on ``data``; write ``out/metrics.json``.

    ``classical`` names the classical methods (default all); ``classical_events`` > 0 runs them
    on the first that many events only (they can take minutes per event at high pile-up).
    Classical settings are tuned on the run's validation events, or on the first
    ``tune_events`` events of ``tune_data`` (at most ``tune_events`` of the run's); a run whose
    training data is not at hand (a shipped ``pretrained:NAME``) without ``tune_data`` is
    evaluated alone (the classical methods are never tuned on the evaluated events).
    """
    run = load_layerpair_run(run_dir)
    if baselines and tune_data is None and not _has_data(run.cfg.data):
        log.warning("the run's validation events (%r) are not here: classical methods skipped "
                    "(give tune_data to run them)", run.cfg.data)  # fmt: skip
        baselines = False
    ids = list_events(data)
    ids = ids[:max_events] if max_events > 0 else ids
    tuned: dict[str, Callable[[HitEvent], np.ndarray]] = {}
    if baselines:
        if tune_data is not None:
            val = load_events(tune_data, list_events(tune_data)[:tune_events])
        else:
            val = load_events(run.cfg.data, run.info["val_events"][:tune_events])
        for name, tune in classical_methods().items():
            if classical is None or name in classical:
                tuned[name] = tune(val)
    rows: dict[str, list[dict[str, float]]] = {"layerpair_gnn": []}
    rows.update({k: [] for k in tuned})
    graph_rows, time_rows = [], []
    for n_done, i in enumerate(ids):
        ev = load_events(data, [i])[0]
        use = tuned if classical_events <= 0 or n_done < classical_events else {}
        r = _one_event(run, ev, use)
        for k, v in r["metrics"].items():
            rows[k].append(v)
        graph_rows.append(r["graph"])
        time_rows.append(r["times"])
        log.info("event %d: score %.3f (%.1f s)", i, r["metrics"]["layerpair_gnn"]["score"],
                 r["times"]["total_s"])  # fmt: skip
    methods = {}
    for name, evs in rows.items():
        keys = evs[0].keys() if evs else []
        methods[name] = {"kind": "learned" if name == "layerpair_gnn" else "classical",
                         "events": len(evs), **{k: stats([e[k] for e in evs]) for k in keys}}  # fmt: skip
        key = "total_s" if name == "layerpair_gnn" else f"{name}_s"
        methods[name]["time_s"] = stats([t[key] for t in time_rows if key in t])
    # paired differences (learned - classical) on the events both ran on
    learned = [e["score"] for e in rows["layerpair_gnn"]]
    comparison = {
        name: stats([a - b["score"] for a, b in zip(learned, evs, strict=False)])
        for name, evs in rows.items()
        if name != "layerpair_gnn"
    }
    summary = {
        "run": str(run_dir), "data": str(data), "events": len(ids), "event_ids": list(ids),
        "hits_per_event": stats([g["hits"] for g in graph_rows]),
        "methods": methods,
        "graph": {k: stats([g[k] for g in graph_rows]) for k in graph_rows[0] if k != "hits"},
        "times": {k: stats([t[k] for t in time_rows if k in t]) for k in time_rows[0]},
        "score_difference_learned_minus": comparison,
        "per_event_score": {name: [e["score"] for e in evs] for name, evs in rows.items()},
        "build": run.info["build"], "filter_cut": run.filter_cut,
        "tuned_on": (str(tune_data) if tune_data is not None
                     else "run validation events" if baselines else "no classical methods"),
        "tune_events": tune_events, "classical_events": classical_events or len(ids),
    }  # fmt: skip
    if out is not None:
        write_json(Path(out) / "metrics.json", summary)
    return summary


def _has_data(folder: str) -> bool:
    """Whether ``folder`` (a run's training data) holds TrackML events here."""
    if not folder or not Path(folder).is_dir():
        return False
    try:
        return bool(list_events(folder))
    except DataFileError:
        return False


def _one_event(
    run: LayerPairRun, ev: HitEvent, tuned: dict[str, Callable[[HitEvent], np.ndarray]]
) -> dict[str, Any]:
    track, d, score, times = reconstruct_event(run, ev)
    metrics = {"layerpair_gnn": event_metrics(ev, track)}
    graph = {"hits": float(ev.num_hits)}
    graph.update(graph_metrics(ev, _full_graph(run, ev), "graph_"))
    e = d.edge_index.numpy()
    graph.update(graph_metrics(ev, e, "filtered_"))
    graph.update(graph_metrics(ev, e[:, score > run.build.threshold], "classified_"))
    for name, fn in tuned.items():
        t = time.perf_counter()
        tid = fn(ev)
        times[f"{name}_s"] = time.perf_counter() - t
        metrics[name] = event_metrics(ev, tid)
    return {"metrics": metrics, "graph": graph, "times": times}


def _full_graph(run: LayerPairRun, ev: HitEvent) -> np.ndarray:
    from particlegraph.tasks.tracking.graphs import event_hits
    from particlegraph.tasks.tracking.module_map import build_graph

    return build_graph(run.map, event_hits(ev))
