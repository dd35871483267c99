"""Evaluate a run of the default pipeline beside the classical baselines on the same events.

Per event and method: TrackML score, double-majority efficiency, fake and duplicate rates for
pT > 1 and > 0.5 GeV; for the learned pipeline also the graph (edge efficiency for all true edges
and pT > 1 GeV, purity, edges per hit) before and after the classifier, and seconds per stage.
Summaries are mean, standard deviation and standard error of the mean over events. Every
method carries ``kind``: ``"learned"`` or ``"classical"``. The classical methods' settings are
tuned on the run's validation events (or ``tune_data``), never on the evaluated events.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.progress import progress
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.eval_summary import (
    IDENTITY_KEYS,
    LEARNED,
    TUNING_KEYS,
    check_same,
    method_order,
    summarize,
    time_key,
)
from particlegraph.tasks.tracking.graphs import edge_truth, event_hits
from particlegraph.tasks.tracking.learned import (
    TRACKING_PACKAGE,
    LayerPairRun,
    load_layerpair_run,
    reconstruct_from_graph,
)
from particlegraph.tasks.tracking.module_map import build_graph
from particlegraph.tasks.tracking.score import track_metrics, trackml_score
from particlegraph.tasks.tracking.trackml import list_events
from particlegraph.train.run import open_run

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


def evaluate_layerpair_run(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    *,
    max_events: int = 0,
    baselines: bool = True,
    tune_data: str | Path | None = None,
    tune_events: int = 2,
    methods: Sequence[str] | None = None,
    classical_events: int = 0,
    partial: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the run (and the classical methods) on ``data``; write ``out/metrics.json``.

    ``methods`` names the methods (``"layerpair_gnn"`` and any of :func:`classical_methods`;
    default: all, the classical ones only when ``baselines``); ``classical_events`` > 0 runs
    the classical ones on the first that many events only (they can take minutes per event at
    high pile-up). Classical settings are tuned on the run's validation events, or on the first
    ``tune_events`` events of ``tune_data`` (at most ``tune_events`` of the run's), each method
    when it is first needed; a run whose training data is not at hand (a shipped
    ``pretrained:NAME``) without ``tune_data`` is evaluated alone (the classical methods are
    never tuned on the evaluated events).

    With ``partial``, the summary of the events done so far (with their per-event records,
    ``"complete": false``) is written there atomically after every method of every event;
    ``resume`` reads that file first and reuses its finished (event, method) results when it
    was made with the same run, model, data, building and event ids (a missing file starts
    afresh). The summary format is :func:`.eval_summary.summarize`'s.

    Raises:
        ConfigError: an unknown method, classical methods asked for without events to tune
            them on, or a ``partial`` file of another evaluation.
    """
    run = load_layerpair_run(run_dir)
    wanted = _select(methods, baselines)
    classical = [m for m in wanted if m != LEARNED]
    if classical and tune_data is None and not _has_data(run.cfg.data):
        if methods is not None:
            raise ConfigError(f"the run's validation events ({run.cfg.data!r}) are not here: "
                              f"give tune_data to run {classical}")  # fmt: skip
        log.warning("the run's validation events (%r) are not here: classical methods skipped "
                    "(give tune_data to run them)", run.cfg.data)  # fmt: skip
        classical = []
    ids = list_events(data)
    ids = ids[:max_events] if max_events > 0 else ids
    meta = {"run": str(run_dir), "model_sha256": _model_hash(run_dir), "data": str(data),
            "build": run.info["build"], "filter_cut": run.filter_cut,
            "tuned_on": _tuned_on(tune_data, classical), "tune_events": tune_events,
            "classical_events": classical_events or len(ids), "planned_event_ids": list(ids),
            "methods_asked": [m for m in wanted if m == LEARNED] + classical}  # fmt: skip
    done = _resumed(partial, meta) if resume and partial is not None else {}
    tuner = _Tuner(run, tune_data, tune_events)
    records: list[dict[str, Any]] = []
    bar = progress(total=len(ids), desc="evaluate", unit="ev", enabled=show_progress)
    for n_done, i in enumerate(ids):
        todo = ([LEARNED] if LEARNED in wanted else []) + (
            classical if classical_events <= 0 or n_done < classical_events else []
        )
        rec = done.get(i) or {"event_id": i, "hits": 0, "metrics": {}, "graph": {}, "times": {}}
        ev = None
        for name in [m for m in todo if m not in rec["metrics"]]:
            ev = ev if ev is not None else load_events(data, [i])[0]
            _run_method(run, ev, name, tuner, rec)
            if partial is not None:
                write_json(Path(partial), summarize([*records, rec], {**meta, "complete": False}))
        if rec["metrics"]:
            records.append(rec)
        bar.update(1)
        if LEARNED in rec["metrics"]:
            bar.set_postfix_str(f"score {rec['metrics'][LEARNED]['score']:.3f}")
    bar.close()
    summary = summarize(records, {**meta, "complete": True})
    if partial is not None:
        write_json(Path(partial), summary)
    if out is not None:
        write_json(Path(out) / "metrics.json", summary)
    return summary


def _select(methods: Sequence[str] | None, baselines: bool) -> list[str]:
    """The methods to run: ``methods`` checked against the known names, or all of them."""
    known = [LEARNED, *classical_methods()]
    if methods is None:
        return known if baselines else [LEARNED]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}: choose from {known}" if unknown
                          else f"no methods given: choose from {known}")  # fmt: skip
    return method_order(methods)


def _tuned_on(tune_data: str | Path | None, classical: list[str]) -> str:
    if not classical:
        return "no classical methods"
    return str(tune_data) if tune_data is not None else "run validation events"


def _model_hash(run_dir: str | Path) -> str:
    """SHA-256 of the run's weights (a retrained run in the same folder is another run)."""
    path = open_run(run_dir, "tracking", TRACKING_PACKAGE).path / "model.pt"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resumed(partial: str | Path, meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The records of a partial file of the same evaluation, by event id ({} if none)."""
    path = Path(partial)
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataFileError(f"{path}: not a readable evaluation summary ({e})") from e
    if not isinstance(old, dict) or "records" not in old:
        raise ConfigError(f"{path}: has no per-event records; cannot resume from it")
    what = f"{path} was made by another evaluation; cannot resume"
    check_same(old, meta, what, (*IDENTITY_KEYS, "planned_event_ids"))
    if any(m != LEARNED for r in old["records"] for m in r["metrics"]):
        check_same(old, meta, what, TUNING_KEYS)
    return {int(r["event_id"]): r for r in old["records"]}


class _Tuner:
    """The classical methods, each tuned on the validation events when first asked for."""

    def __init__(self, run: LayerPairRun, tune_data: str | Path | None, tune_events: int) -> None:
        self.run, self.tune_data, self.tune_events = run, tune_data, tune_events
        self.tuned: dict[str, Callable[[HitEvent], np.ndarray]] = {}
        self._val: list[HitEvent] | None = None

    def __call__(self, name: str) -> Callable[[HitEvent], np.ndarray]:
        if name not in self.tuned:
            if self._val is None:
                if self.tune_data is not None:
                    ids = list_events(self.tune_data)[: self.tune_events]
                    self._val = load_events(self.tune_data, ids)
                else:
                    ids = self.run.info["val_events"][: self.tune_events]
                    self._val = load_events(self.run.cfg.data, ids)
            self.tuned[name] = classical_methods()[name](self._val)
        return self.tuned[name]


def _run_method(
    run: LayerPairRun, ev: HitEvent, name: str, tuner: _Tuner, rec: dict[str, Any]
) -> None:
    """Run one method on one event and add its metrics, times (and graph) to ``rec``."""
    rec["hits"] = ev.num_hits
    if name == LEARNED:
        t = time.perf_counter()
        full = build_graph(run.map, event_hits(ev))
        track, d, score, times = reconstruct_from_graph(run, ev, full, time.perf_counter() - t)
        rec["metrics"][LEARNED] = event_metrics(ev, track)
        graph = graph_metrics(ev, full, "graph_")
        e = d.edge_index.numpy()
        graph.update(graph_metrics(ev, e, "filtered_"))
        graph.update(graph_metrics(ev, e[:, score > run.build.threshold], "classified_"))
        rec["graph"] = graph
        rec["times"] = {**times, **rec["times"]}
        log.info("event %d: score %.3f (%.1f s)", rec["event_id"],
                 rec["metrics"][LEARNED]["score"], times["total_s"])  # fmt: skip
        return
    fn = tuner(name)
    t = time.perf_counter()
    tid = fn(ev)
    rec["times"][time_key(name)] = time.perf_counter() - t
    rec["metrics"][name] = event_metrics(ev, tid)


def _has_data(folder: str) -> bool:
    """Whether ``folder`` (a run's training data) holds TrackML events here."""
    if not folder or not Path(folder).is_dir():
        return False
    try:
        return bool(list_events(folder))
    except DataFileError:
        return False
