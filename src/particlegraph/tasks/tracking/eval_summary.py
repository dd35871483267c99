"""Per-event records of the default pipeline's evaluation, their summary, and merging them.

The evaluation (:mod:`.evaluate_layerpair`) keeps one *record* per event::

    {"event_id": 5000, "hits": 103521,
     "metrics": {"layerpair_gnn": {"score": 0.41, "efficiency_pt1": ...}, "track_follower": ...},
     "graph": {"graph_edge_efficiency": ..., ...},          # only when the learned method ran
     "times": {"graph_s": 1.6, ..., "total_s": 25.0, "track_follower_s": 40.2}}   # seconds

and :func:`summarize` turns a list of them into the summary (``metrics.json``): per method its
``kind`` and mean, standard deviation, standard error and count of every metric; the graph and
time statistics; the paired difference learned minus each classical method over the events both
ran on; and the records themselves, so that a summary can be resumed (the events already done
are reused) and two summaries of the same run and events computed by separate jobs (for example
the learned method in one, the classical methods in another) can be merged
(:func:`merge_summaries`) into the summary one job with all methods would have written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError

#: The learned method's name in every summary.
LEARNED = "layerpair_gnn"
#: What must agree between a partial summary and a resumed evaluation, or two merged summaries.
IDENTITY_KEYS = ("run", "model_sha256", "data", "build", "filter_cut")
#: Identity keys that describe the learned method only (its building and filter cut): a file
#: without the learned method is merged whatever they say (its classical methods ignore them).
LEARNED_KEYS = ("build", "filter_cut")
#: Keys holding a folder (compared after resolving links and relative paths).
PATH_KEYS = ("run", "data", "tuned_on")
#: Settings of the classical methods that must agree (when both sides ran classical methods).
TUNING_KEYS = ("tuned_on", "tune_events")


def stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation, standard error (sample std / sqrt(n)) and n of the finite
    ``values``; the standard error is NaN for fewer than two values."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "sem": float("nan"), "n": 0}
    sem = float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan")
    return {"mean": float(a.mean()), "std": float(a.std()), "sem": sem, "n": int(a.size)}


def time_key(method: str) -> str:
    """The key of a method's seconds per event in a record's ``times``."""
    return "total_s" if method == LEARNED else f"{method}_s"


def method_order(names: Sequence[str]) -> list[str]:
    """The learned method first, then the others in their given order (duplicates dropped)."""
    seen = list(dict.fromkeys(names))
    return [n for n in seen if n == LEARNED] + [n for n in seen if n != LEARNED]


def paired_differences(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Learned minus each classical method, per metric, over the events both ran on.

    Returns ``{classical: {"events": n, "event_ids": [...], metric: stats(differences)}}`` for
    every metric both hold except the counts (``n_particles_*``, ``n_tracks_*``); the standard
    error of the paired mean is the sample standard deviation of the per-event differences over
    sqrt(n).
    """
    names = method_order([m for r in records for m in r["metrics"]])
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == LEARNED:
            continue
        both = [r for r in records if LEARNED in r["metrics"] and name in r["metrics"]]
        if not both:
            continue
        keys = [k for k in both[0]["metrics"][name]
                if not k.startswith("n_") and k in both[0]["metrics"][LEARNED]]  # fmt: skip
        out[name] = {"events": len(both), "event_ids": [r["event_id"] for r in both]}
        for k in keys:
            out[name][k] = stats([r["metrics"][LEARNED][k] - r["metrics"][name][k] for r in both])
    return out


def summarize(records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The summary of ``records`` (ordered as given); ``meta`` (run, data, settings) is copied
    in front. Every method gets ``kind`` (``"learned"`` for :data:`LEARNED`, else
    ``"classical"``), ``events`` and the statistics of each metric and of its seconds per event
    (``time_s``)."""
    names = method_order([m for r in records for m in r["metrics"]])
    methods: dict[str, Any] = {}
    for name in names:
        rows = [r for r in records if name in r["metrics"]]
        keys = list(rows[0]["metrics"][name])
        methods[name] = {"kind": "learned" if name == LEARNED else "classical",
                         "events": len(rows),
                         **{k: stats([r["metrics"][name][k] for r in rows]) for k in keys},
                         "time_s": stats([r["times"][time_key(name)] for r in rows
                                          if time_key(name) in r["times"]])}  # fmt: skip
    graphs = [r["graph"] for r in records if r.get("graph")]
    time_keys = list(dict.fromkeys(k for r in records for k in r["times"]))
    paired = paired_differences(records)
    return {
        **meta,
        "events": len(records),
        "event_ids": [r["event_id"] for r in records],
        "hits_per_event": stats([r["hits"] for r in records]),
        "methods": methods,
        "graph": {k: stats([g[k] for g in graphs]) for k in (graphs[0] if graphs else {})},
        "times": {k: stats([r["times"][k] for r in records if k in r["times"]]) for k in time_keys},
        "score_difference_learned_minus": {k: v["score"] for k, v in paired.items()},
        "paired_difference_learned_minus": paired,
        "per_event_score": {
            n: [r["metrics"][n]["score"] for r in records if n in r["metrics"]] for n in names
        },
        "records": list(records),
    }


def check_same(a: dict[str, Any], b: dict[str, Any], what: str, keys: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming the first of ``keys`` on which ``a`` and ``b`` differ."""
    for k in keys:
        va, vb = _norm(k, a.get(k)), _norm(k, b.get(k))
        if isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb):
            continue
        if va != vb:
            raise ConfigError(f"{what}: {k} differs ({va!r} vs {vb!r})")


def _norm(key: str, value: Any) -> Any:
    """Folders compared by where they lead (``runs/x`` and ``/abs/runs/x`` are one run)."""
    if key in PATH_KEYS and isinstance(value, str) and not value.startswith("pretrained:"):
        return os.path.realpath(value)
    return value


def _classical(summary: dict[str, Any]) -> bool:
    return any(m != LEARNED for r in summary["records"] for m in r["metrics"])


def merge_summaries(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One summary from two of the same run and data whose methods do not overlap.

    Records are joined by event id (events in the order of ``a``, then those only in ``b``);
    the classical methods' settings are taken from the side that ran classical methods (both
    sides that did must agree), the building and filter cut (:data:`LEARNED_KEYS`) from the
    side that ran the learned method (a side without it is not checked against them). The result equals the summary of one evaluation with the
    methods of both, apart from the times.

    Raises:
        ConfigError: not a summary with per-event records, another run, model, data or
            building, different classical tuning, or a method in both.
    """
    for s, name in ((a, "first"), (b, "second")):
        if "records" not in s:
            raise ConfigError(f"the {name} file has no per-event records (written before "
                              "records were kept): evaluate again")  # fmt: skip
    ma = {m for r in a["records"] for m in r["metrics"]}
    mb = {m for r in b["records"] for m in r["metrics"]}
    both_learned = LEARNED in ma and LEARNED in mb
    check_same(a, b, "cannot merge",
               [k for k in IDENTITY_KEYS if both_learned or k not in LEARNED_KEYS])  # fmt: skip
    if ma & mb:
        raise ConfigError(f"cannot merge: both files hold {sorted(ma & mb)}; merge files with "
                          "different methods (--methods)")  # fmt: skip
    if _classical(a) and _classical(b):
        check_same(a, b, "cannot merge", TUNING_KEYS)
    learned_side = b if LEARNED in mb and LEARNED not in ma else a
    meta = {k: (learned_side if k in LEARNED_KEYS else a)[k] for k in IDENTITY_KEYS}
    tuning = b if _classical(b) and not _classical(a) else a
    meta.update({k: tuning.get(k) for k in (*TUNING_KEYS, "classical_events")})
    rb = {r["event_id"]: r for r in b["records"]}
    records = []
    for r in a["records"]:
        records.append(_join(r, rb.pop(r["event_id"])) if r["event_id"] in rb else r)
    records += list(rb.values())
    planned = list(dict.fromkeys([*a.get("planned_event_ids", []),
                                  *b.get("planned_event_ids", [])]))  # fmt: skip
    meta["planned_event_ids"] = planned
    meta["methods_asked"] = method_order([*a.get("methods_asked", []),
                                          *b.get("methods_asked", [])])  # fmt: skip
    meta["complete"] = bool(a.get("complete")) and bool(b.get("complete"))
    return summarize(records, meta)


def _join(r: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    if r["hits"] != s["hits"]:
        raise ConfigError(f"cannot merge: event {r['event_id']} has {r['hits']} hits in one "
                          f"file and {s['hits']} in the other")  # fmt: skip
    return {"event_id": r["event_id"], "hits": r["hits"],
            "metrics": {**r["metrics"], **s["metrics"]},
            "graph": r.get("graph") or s.get("graph") or {},
            "times": {**r["times"], **s["times"]}}  # fmt: skip
