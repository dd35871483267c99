"""Diagnostics a physicist asks for, MLPF and the rule-based baseline side by side.

From a :class:`~particlegraph.tasks.mlpf.metrics.PFCollection` (every number on elements whose
gen and reco class agree, as the per-class response of :mod:`.metrics`):

* per class, pT response (median of reco/gen) and resolution (IQR/median) in bins of gen pT
  (:data:`CLASS_PT_EDGES`) and of gen |eta| (:data:`ETA_EDGES`);
* per class, phi bias (median) and resolution (IQR) of the wrapped ``phi_reco - phi_gen`` [rad],
  in all and per gen-pT bin, and the fraction with ``|delta phi| > 0.1``;
* jets: response and resolution in bins of gen jet |eta| (the pT bins are in ``jet_pt_binned``)
  and over all jets with gen pT > :data:`HARD_JET_PT`;
* confusion matrices normalised per true class (each row sums to 1).

The result is JSON-ready (``metrics.json["diagnostics"]``); the figures are in :mod:`.plots`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from particlegraph.physics.kinematics import delta_phi
from particlegraph.sim.elements import CLASS_NAMES
from particlegraph.tasks.mlpf.metrics import (
    PARTICLE_CLASSES,
    PFCollection,
    binned_response,
    iqr,
    ratio_response,
)

#: Gen pT bin edges [GeV] of the per-class diagnostics.
CLASS_PT_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1.0e4)
#: Gen |eta| bin edges: barrel, endcap (tracker coverage ends at 2.5), transition, forward.
ETA_EDGES = (0.0, 1.5, 2.5, 3.0, 5.0)
#: |delta phi| [rad] above which a particle counts as thrown out of place (jet cone 0.4).
FAR_DPHI = 0.1


def _num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _nums(values: np.ndarray) -> list[float | None]:
    return [_num(v) for v in values]


def binned_difference(
    values: np.ndarray, diff: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and IQR of ``diff`` in bins of ``values`` -> ``(bias, resolution, count)``, (B,) each."""
    idx = np.digitize(np.asarray(values, dtype=np.float64), edges) - 1
    nb = len(edges) - 1
    bias, reso = np.full(nb, np.nan), np.full(nb, np.nan)
    count = np.zeros(nb, dtype=np.int64)
    for b in range(nb):
        d = np.asarray(diff, dtype=np.float64)[idx == b]
        count[b] = d.size
        if d.size:
            bias[b], reso[b] = np.median(d), iqr(d)
    return bias, reso, count


def normalised_confusion(cm: np.ndarray) -> list[list[float | None]]:
    """Rows of ``cm`` (6, 6) divided by their sums (None for an empty true class)."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(sums > 0, cm / np.maximum(sums, 1.0), np.nan)
    return [_nums(row) for row in norm]


def class_diagnostics(col: PFCollection, side: str) -> dict[str, Any]:
    """Per-class binned pT response/resolution and phi resolution of one side, JSON-ready."""
    gen, reco = col.gen, col.reco[side]
    pt_edges, eta_edges = np.asarray(CLASS_PT_EDGES), np.asarray(ETA_EDGES)
    out: dict[str, Any] = {}
    for c in PARTICLE_CLASSES:
        both = (gen["cls"] == c) & (reco["cls"] == c) & (gen["pt"] > 0)
        gpt = gen["pt"][both].astype(np.float64)
        ratio = reco["pt"][both].astype(np.float64) / np.where(gpt > 0, gpt, 1.0)
        geta = np.abs(gen["eta"][both].astype(np.float64))
        dphi = delta_phi(reco["phi"][both].astype(np.float64), gen["phi"][both].astype(np.float64))
        r_pt, s_pt, n_pt = binned_response(gpt, ratio, pt_edges)
        r_eta, s_eta, n_eta = binned_response(geta, ratio, eta_edges)
        b_phi, s_phi, _ = binned_difference(gpt, dphi, pt_edges)
        out[CLASS_NAMES[c]] = {
            "pt_binned": {
                "response": _nums(r_pt),
                "resolution": _nums(s_pt),
                "count": n_pt.tolist(),
            },
            "abs_eta_binned": {
                "response": _nums(r_eta),
                "resolution": _nums(s_eta),
                "count": n_eta.tolist(),
            },
            "phi_bias": _num(np.median(dphi)) if dphi.size else None,
            "phi_resolution": _num(iqr(dphi)) if dphi.size else None,
            "phi_far_fraction": _num(np.mean(np.abs(dphi) > FAR_DPHI)) if dphi.size else None,
            "phi_binned": {"bias": _nums(b_phi), "resolution": _nums(s_phi)},
        }
    return out


def jet_eta_binned(pairs: np.ndarray) -> dict[str, Any]:
    """Jet pT response and resolution in bins of gen jet |eta|; ``pairs`` (P, 3) from the collection."""
    ok = pairs[:, 0] > 0
    resp, reso, count = binned_response(
        np.abs(pairs[ok, 2]), pairs[ok, 1] / pairs[ok, 0], np.asarray(ETA_EDGES)
    )
    return {"response": _nums(resp), "resolution": _nums(reso), "count": count.tolist()}


#: Gen jet pT [GeV] above which the "hard jets" resolution of the MLPF targets is taken.
HARD_JET_PT = 50.0


def hard_jets(pairs: np.ndarray, min_pt: float = HARD_JET_PT) -> dict[str, Any]:
    """Response and resolution of matched jets with gen pT > ``min_pt`` [GeV], JSON-ready."""
    sel = pairs[:, 0] > min_pt
    r = ratio_response(pairs[sel, 0], pairs[sel, 1])
    return {
        "min_gen_pt_gev": min_pt,
        "response": _num(r["response"]),
        "resolution": _num(r["resolution"]),
        "count": int(r["n"]),
    }


def summarize_diagnostics(col: PFCollection) -> dict[str, Any]:
    """``{"settings": {edges}, side: {"classes", "jet_abs_eta_binned", "confusion_normalised"}}``."""
    out: dict[str, Any] = {
        "settings": {
            "class_pt_edges_gev": list(CLASS_PT_EDGES),
            "abs_eta_edges": list(ETA_EDGES),
            "far_dphi_rad": FAR_DPHI,
        }
    }
    for side in col.sides:
        out[side] = {
            "classes": class_diagnostics(col, side),
            "jet_abs_eta_binned": jet_eta_binned(col.jet_pairs[side]),
            "jets_hard": hard_jets(col.jet_pairs[side]),
            "confusion_normalised": normalised_confusion(col.confusion[side]),
        }
    return out
