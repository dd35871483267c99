"""Evaluate a tracking run and the clustering baselines on the same events.

Methods (one table): ``raw_dbscan`` (DBSCAN on x, y, z), ``unrolled_dbscan`` (helix-unrolled
features with a curvature scan), ``stage1_dbscan`` (the metric-learning embedding without the
GNN) and ``gnn`` (the full pipeline). Each baseline's DBSCAN settings are tuned on the run's
validation events, as the pipeline's are. Per event: TrackML score, double-majority and perfect
efficiencies, fake and duplicate rates (pT > 1 and > 0.5 GeV), edge efficiency / purity of the
predicted graph and after the GNN, seconds per stage. Outputs in ``out``: ``metrics.json``,
``events/`` (TrackML hits, truth, particles and each method's submission per event), figures and
``index.html`` (see :mod:`.report`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from particlegraph.atomic import write_json
from particlegraph.tasks.tracking.baselines import (
    ClusterConfig,
    dbscan_labels,
    raw_features,
    unrolled_dbscan,
)
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.model import TrackingModel
from particlegraph.tasks.tracking.pipeline import GraphConfig, reconstruct
from particlegraph.tasks.tracking.score import match_tracks, track_metrics, trackml_score
from particlegraph.tasks.tracking.trackml import (
    event_prefix,
    read_event,
    write_submission,
    write_table,
)
from particlegraph.tasks.tracking.train import graph_quality, load_run, tune_dbscan

log = logging.getLogger(__name__)
METHODS = ("raw_dbscan", "unrolled_dbscan", "stage1_dbscan", "gnn")
#: Curvature hypotheses [1/m] of the unrolled baseline: |k| = 0.3 B / pT, pT >= ~0.4 GeV at 2 T.
CURVATURES = np.linspace(-1.5, 1.5, 13)
RAW_EPS = (0.005, 0.01, 0.02, 0.05, 0.1)  # m
UNROLLED_EPS = (0.002, 0.004, 0.008, 0.015)


@dataclass
class EventResult:
    """One event: ``track_id`` per method (H,), metrics per method, graph quality and times."""

    event_id: int
    tracks: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    graph: dict[str, float]
    times: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Baselines:
    """DBSCAN settings of the baselines (tuned on validation events)."""

    raw: ClusterConfig
    unrolled: ClusterConfig
    stage1: ClusterConfig


def tune_baselines(model: TrackingModel, val: list[HitEvent]) -> tuple[Baselines, dict[str, Any]]:
    """Choose each baseline's DBSCAN eps and min_samples by the mean TrackML score on ``val``."""
    raw, t_raw = tune_dbscan([raw_features(e.xyz.numpy()) for e in val], val, RAW_EPS, (1, 2, 3))
    with torch.no_grad():
        pts = [model.embed(e.x).double().numpy() for e in val]
    st1, t_st1 = tune_dbscan(pts, val, (0.02, 0.05, 0.1, 0.2, 0.3), (1, 2, 3))
    best_u, best_s, t_u = ClusterConfig(eps=UNROLLED_EPS[0], min_samples=1), -1.0, []
    for eps in UNROLLED_EPS:
        c = ClusterConfig(eps=eps, min_samples=1)
        s = float(
            np.mean([score_of(e, unrolled_dbscan(e.xyz.numpy(), c, CURVATURES)) for e in val])
        )
        t_u.append({"eps": eps, "min_samples": 1, "score": s})
        if s > best_s:
            best_u, best_s = c, s
    return Baselines(raw, best_u, st1), {
        "raw_dbscan": t_raw,
        "unrolled_dbscan": t_u,
        "stage1_dbscan": t_st1,
    }


def score_of(ev: HitEvent, track_id: np.ndarray) -> float:
    return trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), track_id)


def evaluate_event(
    model: TrackingModel, ev: HitEvent, graph: GraphConfig, cluster: ClusterConfig, base: Baselines
) -> EventResult:
    """Every method on one event."""
    rec = reconstruct(model, ev.x, graph, cluster)
    times = dict(rec.times)
    tracks = {"gnn": rec.track_id}
    t = time.perf_counter()
    tracks["stage1_dbscan"] = dbscan_labels(rec.stage1.double().numpy(), base.stage1)
    times["stage1_dbscan_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tracks["raw_dbscan"] = dbscan_labels(raw_features(ev.xyz.numpy()), base.raw)
    times["raw_dbscan_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tracks["unrolled_dbscan"] = unrolled_dbscan(ev.xyz.numpy(), base.unrolled, CURVATURES)
    times["unrolled_dbscan_s"] = time.perf_counter() - t
    pid = ev.particle_id.numpy()
    ppt = ev.particle_pt()
    metrics = {}
    for name, tid in tracks.items():
        m = {"score": score_of(ev, tid)}
        for cut in (1.0, 0.5):
            tm = track_metrics(pid, tid, ppt, pt_min=cut)
            m.update({f"{k}_pt{cut:g}": v for k, v in tm.items()})
        metrics[name] = m
    # graph after the GNN: predicted edges whose refined distance is within the DBSCAN eps
    ei = rec.edge_index
    d = (rec.refined[ei[0]] - rec.refined[ei[1]]).norm(dim=1)
    before = graph_quality([ei], [ev])
    after = graph_quality([ei[:, d < cluster.eps]], [ev])
    g = {f"predicted_{k}": v for k, v in before.items()}
    g.update({f"after_gnn_{k}": v for k, v in after.items()})
    return EventResult(
        ev.event_id, tracks, metrics, g, times, {"refined": rec.refined, "stage1": rec.stage1}
    )


def efficiency_table(ev: HitEvent, track_id: np.ndarray) -> dict[str, np.ndarray]:
    """Per particle with >= 3 hits: pT, eta, double-majority reconstructed (bool)."""
    pid = ev.particle_id.numpy()
    t = match_tracks(pid, track_id)
    found = set(t["major_particle"][t["double"]].tolist())
    uniq, first, counts = np.unique(pid, return_index=True, return_counts=True)
    keep = (uniq != 0) & (counts >= 3)
    return {
        "pt": ev.pt.numpy()[first[keep]],
        "eta": ev.eta.numpy()[first[keep]],
        "found": np.array([p in found for p in uniq[keep].tolist()], dtype=bool),
    }


def fake_table(ev: HitEvent, track_id: np.ndarray, min_hits: int = 3) -> dict[str, np.ndarray]:
    """Per candidate track (>= ``min_hits`` hits): mean eta of its hits and whether it is fake."""
    t = match_tracks(ev.particle_id.numpy(), track_id)
    xyz = ev.xyz.numpy().astype(np.float64)
    eta = np.arcsinh(xyz[:, 2] / np.maximum(np.hypot(xyz[:, 0], xyz[:, 1]), 1e-9))
    inv = np.searchsorted(t["track"], track_id)
    mean_eta = np.bincount(inv, weights=eta, minlength=t["track"].size) / np.maximum(t["nhits"], 1)
    cand = t["nhits"] >= min_hits
    return {"eta": mean_eta[cand], "fake": ~t["matched"][cand]}


def write_event_files(folder: Path, data: str | Path, res: EventResult) -> None:
    """TrackML hits, truth, particles and one submission per method for one event."""
    ev = read_event(data, res.event_id)
    prefix = event_prefix(res.event_id)
    write_table(folder / f"{prefix}-hits.csv", ev.hits, "hits")
    if ev.truth is not None and ev.particles is not None:
        write_table(folder / f"{prefix}-truth.csv", ev.truth, "truth")
        write_table(folder / f"{prefix}-particles.csv", ev.particles, "particles")
    for name, tid in res.tracks.items():
        suffix = "" if name == "gnn" else f"-{name}"
        write_submission(folder / f"{prefix}-submission{suffix}.csv", ev.hits["hit_id"], tid)


def summarize(results: list[EventResult]) -> dict[str, Any]:
    """Mean and standard deviation over events of every metric and time."""
    out: dict[str, Any] = {"events": len(results), "methods": {}, "graph": {}, "times": {}}
    for name in METHODS:
        keys = results[0].metrics[name].keys()
        out["methods"][name] = {k: _mean_std([r.metrics[name][k] for r in results]) for k in keys}
    for k in results[0].graph:
        out["graph"][k] = _mean_std([r.graph[k] for r in results])
    for k in results[0].times:
        out["times"][k] = _mean_std([r.times[k] for r in results])
    return out


def _mean_std(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(a.mean()), "std": float(a.std())}


Tables = dict[str, list[dict[str, np.ndarray]]]


@dataclass
class Evaluation:
    """What :func:`evaluate_events` found; :func:`write_evaluation` turns it into files.

    Attributes:
        summary: the content of ``metrics.json`` (means and spreads over events, settings).
        results: one :class:`EventResult` per event (tracks kept, embeddings dropped).
        eff: per method, one :func:`efficiency_table` per event.
        fakes: per method, one :func:`fake_table` per event.
        first: the first event, its tracks per method and its stage-1 / refined embeddings
            (N, D) for the figures; None when no event was evaluated.
    """

    summary: dict[str, Any]
    results: list[EventResult]
    eff: Tables
    fakes: Tables
    first: tuple[HitEvent, dict[str, np.ndarray], np.ndarray, np.ndarray] | None


def _settings(
    model: TrackingModel, cfg: Any, val: list[HitEvent], cluster: ClusterConfig, retune: bool
) -> tuple[Baselines, ClusterConfig, dict[str, Any]]:
    """The baselines' DBSCAN settings tuned on ``val``; the pipeline's re-tuned too if ``retune``."""
    base, scans = tune_baselines(model, val)
    if retune:
        from particlegraph.tasks.tracking.train import predicted_graphs, tune_dbscan

        with torch.no_grad():
            graphs = predicted_graphs(model, val, cfg.graph)
            pts = [model(e.x, g).double().numpy() for e, g in zip(val, graphs, strict=True)]
        cluster, scans["gnn"] = tune_dbscan(pts, val, cfg.eps_grid, cfg.min_samples_grid)
    return base, cluster, scans


def evaluate_events(
    run_dir: str | Path,
    data: str | Path,
    *,
    events: list[int] | None = None,
    max_events: int = 0,
    tune_data: str | Path | None = None,
    tune_events: int = 2,
) -> Evaluation:
    """Every method on the events of ``data`` (default all; ``max_events`` > 0 caps them).

    DBSCAN settings: the baselines are tuned on the run's validation events and the pipeline
    keeps those stored with the run; with ``tune_data`` every method (the pipeline included) is
    re-tuned on the first ``tune_events`` events of that folder instead (e.g. validation events
    at the pile-up of the test sample, when the run was trained at another one). Writes nothing.
    """
    from particlegraph.tasks.tracking.trackml import list_events
    from particlegraph.train.run import open_run

    run_dir = open_run(run_dir, "tracking", "particlegraph.tasks.tracking").path
    model, cfg, cluster = load_run(run_dir)
    info = json.loads((Path(run_dir) / "run.json").read_text())
    if tune_data is not None:
        val = load_events(tune_data, list_events(tune_data)[:tune_events])
    else:
        val = load_events(cfg.data, info["val_events"])
    base, cluster, scans = _settings(model, cfg, val, cluster, tune_data is not None)
    ids = events or list_events(data)
    if max_events > 0:
        ids = ids[:max_events]
    results: list[EventResult] = []
    eff: Tables = {m: [] for m in METHODS}
    fakes: Tables = {m: [] for m in METHODS}
    first = None
    for i in ids:
        ev = load_events(data, [i])[0]
        res = evaluate_event(model, ev, cfg.graph, cluster, base)
        for m in METHODS:
            eff[m].append(efficiency_table(ev, res.tracks[m]))
            fakes[m].append(fake_table(ev, res.tracks[m]))
        if first is None:
            emb = (res.extra["stage1"].double().numpy(), res.extra["refined"].double().numpy())
            first = (ev, res.tracks, *emb)
        res.extra = {}
        results.append(res)
        log.info("event %d: score %.3f", i, res.metrics["gnn"]["score"])
    summary = summarize(results)
    summary.update({
        "run": str(run_dir),
        "data": str(data),
        "event_ids": list(ids),
        "dbscan": {"gnn": asdict(cluster), "raw_dbscan": asdict(base.raw),
                   "unrolled_dbscan": asdict(base.unrolled), "stage1_dbscan": asdict(base.stage1)},
        "baseline_tuning": scans,
        "tuned_on": str(tune_data) if tune_data is not None else "run validation events",
        "hits_per_event": float(np.mean([len(r.tracks["gnn"]) for r in results])),
    })  # fmt: skip
    return Evaluation(summary, results, eff, fakes, first)


def write_evaluation(
    result: Evaluation, data: str | Path, out: str | Path, *, plots: bool = True
) -> None:
    """``out/metrics.json``, ``out/events/`` (TrackML files and submissions per event), and
    with ``plots`` the figures under ``out/figures/``; then ``out/index.html``."""
    from particlegraph.tasks.tracking.report import write_evaluation_figures, write_evaluation_page

    out = Path(out)
    for res in result.results:
        write_event_files(out / "events", data, res)
    write_json(out / "metrics.json", result.summary)
    if plots and result.first is not None:
        ev0, tracks0, stage1, refined = result.first
        write_evaluation_figures(out, result.eff, result.fakes, ev0, tracks0, stage1, refined)
    write_evaluation_page(out, result.summary)


def evaluate_run(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    events: list[int] | None = None,
    max_events: int = 0,
    plots: bool = True,
    tune_data: str | Path | None = None,
    tune_events: int = 2,
) -> dict[str, Any]:
    """Evaluate ``run_dir`` on ``data`` (:func:`evaluate_events`) and write the result into
    ``out`` (:func:`write_evaluation`); returns the content of ``out/metrics.json``."""
    result = evaluate_events(run_dir, data, events=events, max_events=max_events,
                             tune_data=tune_data, tune_events=tune_events)  # fmt: skip
    write_evaluation(result, data, out, plots=plots)
    return result.summary


def evaluate(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    max_events: int = 0,
    tune_data: str | Path | None = None,
    tune_events: int = 2,
) -> dict[str, Any]:
    """Evaluate a run of either pipeline on ``data`` into ``out`` (``metrics.json``,
    ``index.html``; for the exercise's pipeline also the TrackML files and figures).

    The default pipeline's runs go to
    :func:`~particlegraph.tasks.tracking.evaluate_layerpair.evaluate_layerpair_run`, the
    exercise's to :func:`evaluate_run`. Returns the content of ``out/metrics.json``.
    """
    from particlegraph.tasks.tracking.report import write_evaluation_page
    from particlegraph.tasks.tracking.runconfig import run_pipeline

    if run_pipeline(run_dir) == "layerpair":
        from particlegraph.tasks.tracking.evaluate_layerpair import evaluate_layerpair_run

        m = evaluate_layerpair_run(run_dir, data, out, max_events=max_events, tune_data=tune_data,
                                   tune_events=tune_events)  # fmt: skip
        write_evaluation_page(Path(out), m)
        return m
    return evaluate_run(run_dir, data, out, max_events=max_events, tune_data=tune_data,
                        tune_events=tune_events)  # fmt: skip
