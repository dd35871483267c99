"""Headline MLPF numbers with bootstrap errors over events, and MLPF - baseline comparisons.

From a :class:`~particlegraph.tasks.mlpf.metrics.PFCollection` this recomputes, on B seeded
replicas of the events (:mod:`particlegraph.metrics.bootstrap`), the numbers physicists look at
first, with the definitions of :mod:`.metrics`:

* jets: pT response (median of reco/gen) and resolution (IQR/median) over all matched jets,
  over jets with gen pT > 50 GeV (``jets_hard``) and per gen-pT bin (``JET_PT_EDGES``);
* MET: resolution (IQR/median of MET_reco/MET_gen over events with MET_gen > 0), response
  (median) and ``std(MET_reco - MET_gen)`` [GeV];
* per class: efficiency and fake rate (from per-event confusion matrices), pT response and
  resolution, phi resolution (IQR of the wrapped delta phi) [rad].

Every quantity gets ``{"value", "error"}`` per side and, when both sides are present, the paired
MLPF - baseline difference with its error and the verdicts ``better`` (beyond 2 sigma) and
``at_least_as_good`` (not worse by more than 1 sigma). Responses are compared by their distance
to 1 (``|response - 1|``, lower is better). Result: ``metrics.json["uncertainty"]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from particlegraph.metrics import bootstrap as bs
from particlegraph.physics.jets import JET_PT_EDGES
from particlegraph.physics.kinematics import delta_phi
from particlegraph.sim.elements import CLASS_NAMES
from particlegraph.tasks.mlpf.diagnostics import HARD_JET_PT
from particlegraph.tasks.mlpf.metrics import PARTICLE_CLASSES, SIDES, PFCollection

_Q = (0.25, 0.5, 0.75)

#: Quantity kinds: how a comparison reads ("lower", "higher" or "unit": closer to 1 is better).
LOWER, HIGHER, UNIT = "lower", "higher", "unit"


def _ratio(values: np.ndarray, events: np.ndarray, counts: np.ndarray) -> dict[str, bs.Estimate]:
    """Response (median) and resolution (IQR/median) estimates of a sample of ratios."""
    if values.size == 0:
        nan = bs.Estimate(float("nan"), np.full(len(counts), np.nan))
        return {"response": nan, "resolution": nan}
    nom, reps = bs.quantile_replicas(values, events, counts, _Q)
    med, reso = bs.ratio_stats(nom)
    rmed, rreso = bs.ratio_stats(reps)
    return {
        "response": bs.Estimate(float(med), rmed),
        "resolution": bs.Estimate(float(reso), rreso),
    }


def _iqr(values: np.ndarray, events: np.ndarray, counts: np.ndarray) -> bs.Estimate:
    if values.size == 0:
        return bs.Estimate(float("nan"), np.full(len(counts), np.nan))
    nom, reps = bs.quantile_replicas(values, events, counts, (0.25, 0.75))
    return bs.Estimate(float(nom[1] - nom[0]), reps[:, 1] - reps[:, 0])


def _rates(cm_events: np.ndarray, counts: np.ndarray, c: int) -> dict[str, bs.Estimate]:
    """Efficiency and fake rate of class ``c`` from per-event confusion matrices (K, 6, 6)."""
    total = cm_events.sum(0).astype(np.float64)[None]  # (1, 6, 6)
    reps = bs.replica_sums(cm_events, counts)  # (B, 6, 6)
    out = {}
    for name, arr in (("nominal", total), ("replicas", reps)):
        diag = arr[:, c, c]
        n_true, n_pred = arr[:, c, :].sum(1), arr[:, :, c].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = (
                np.where(n_true > 0, diag / n_true, np.nan),
                np.where(n_pred > 0, (n_pred - diag) / n_pred, np.nan),
            )
    return {
        "efficiency": bs.Estimate(float(out["nominal"][0][0]), out["replicas"][0]),
        "fake_rate": bs.Estimate(float(out["nominal"][1][0]), out["replicas"][1]),
    }


def side_estimates(
    col: PFCollection, side: str, counts: np.ndarray
) -> Iterator[tuple[str, str, bs.Estimate]]:
    """``(name, kind, estimate)`` of every headline quantity of one side."""
    pairs, pev = col.jet_pairs[side], col.jet_pair_events[side]
    ok = pairs[:, 0] > 0
    ratio, gpt, ev = pairs[ok, 1] / pairs[ok, 0], pairs[ok, 0], pev[ok]
    for label, sel in (("all", np.ones(ratio.size, bool)), ("hard", gpt > HARD_JET_PT)):
        est = _ratio(ratio[sel], ev[sel], counts)
        yield f"jet_pt_response/{label}", UNIT, est["response"]
        yield f"jet_pt_resolution/{label}", LOWER, est["resolution"]
    edges = np.asarray(JET_PT_EDGES)
    for lo, hi in itertools.pairwise(edges):
        sel = (gpt >= lo) & (gpt < hi)
        est = _ratio(ratio[sel], ev[sel], counts)
        yield f"jet_pt_response/{lo:g}-{hi:g}", UNIT, est["response"]
        yield f"jet_pt_resolution/{lo:g}-{hi:g}", LOWER, est["resolution"]
    gmet, rmet = col.gen_met, col.reco_met[side]
    has = gmet > 0
    met = _ratio(rmet[has] / gmet[has], np.flatnonzero(has), counts)
    yield "met_response", UNIT, met["response"]
    yield "met_resolution", LOWER, met["resolution"]
    nom, reps = bs.weighted_std(rmet - gmet, counts)
    yield "met_std_gev", LOWER, bs.Estimate(nom, reps)
    gen, reco = col.gen, col.reco[side]
    for c in PARTICLE_CLASSES:
        name = CLASS_NAMES[c]
        rates = _rates(col.confusion_events[side], counts, c)
        yield f"efficiency/{name}", HIGHER, rates["efficiency"]
        yield f"fake_rate/{name}", LOWER, rates["fake_rate"]
        both = (gen["cls"] == c) & (reco["cls"] == c) & (gen["pt"] > 0)
        g = gen["pt"][both].astype(np.float64)
        est = _ratio(reco["pt"][both] / g, col.element_event[both], counts)
        yield f"pt_response/{name}", UNIT, est["response"]
        yield f"pt_resolution/{name}", LOWER, est["resolution"]
        dphi = delta_phi(reco["phi"][both].astype(np.float64), gen["phi"][both].astype(np.float64))
        yield f"phi_resolution/{name}", LOWER, _iqr(dphi, col.element_event[both], counts)


def summarize_uncertainties(
    col: PFCollection, replicas: int = bs.DEFAULT_REPLICAS, seed: int = bs.DEFAULT_SEED
) -> dict[str, Any]:
    """Headline quantities with bootstrap errors and the paired comparison, JSON-ready.

    Returns:
        ``{"method", "replicas", "seed", "events", "quantities": {name: {"kind", side:
        {"value", "error"}, ..., "comparison": {...}}}}``; ``comparison`` (MLPF - baseline, from
        :func:`particlegraph.metrics.bootstrap.compare`) only when both sides are present.
        Kinds: "lower"/"higher" is better, "unit": a response, compared by ``|response - 1|``.
    """
    counts = bs.event_counts(col.events, replicas, seed)
    per_side = {s: list(side_estimates(col, s, counts)) for s in col.sides}
    quantities: dict[str, Any] = {}
    for s in col.sides:
        for name, kind, est in per_side[s]:
            quantities.setdefault(name, {"kind": kind})[s] = bs.describe(est)
    if all(s in col.sides for s in SIDES):
        base = {name: est for name, _, est in per_side["baseline"]}
        for name, kind, est in per_side["mlpf"]:
            a, b = est, base[name]
            if kind == UNIT:
                a, b = a.map(lambda r: np.abs(r - 1.0)), b.map(lambda r: np.abs(r - 1.0))
            comp = bs.compare(a, b, lower_is_better=kind != HIGHER)
            if kind == UNIT:  # a ratio of distances to 1 says nothing
                comp["relative_difference"] = {"value": None, "error": None}
            quantities[name]["comparison"] = comp
    return {
        "method": "bootstrap over events (resampled with replacement), paired for differences",
        "replicas": replicas,
        "seed": seed,
        "events": col.events,
        "quantities": quantities,
    }
