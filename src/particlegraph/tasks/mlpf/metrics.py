"""Particle-flow metrics on arrays in the ygen layout (MLPF, Pata et al. 2021, arXiv:2101.08578).

Every function here is pure and works on numpy arrays whose columns follow
:mod:`particlegraph.sim.elements` (``pid, charge, pt [GeV], eta, sin phi, cos phi, E [GeV]``).
"Gen" is ``ygen`` (the particle an element should reconstruct); "reco" is either the rule-based
baseline ``ycand`` or the MLPF prediction ``ypred``. Definitions (also in docs/evaluation.md):

* **confusion matrix** ``C[t, p]``: number of elements with true class ``t`` (ygen pid) and
  predicted class ``p`` (reco pid), classes 0..5 including "none".
* **efficiency** of class c: ``C[c, c] / sum_p C[c, p]``, the fraction of elements with true
  class c that are predicted as a particle of class c.
* **fake rate** of class c: ``(sum_t C[t, c] - C[c, c]) / sum_t C[t, c]``, the fraction of
  elements predicted as class c whose true class is not c.
* **response** of pT (or E): median of ``reco / gen`` on elements where both gen and reco are of
  class c; **resolution**: ``IQR / median`` of that ratio. For eta: median and IQR of
  ``reco - gen``.
* **MET**: ``|sum over particles of the transverse momentum vector|`` per event [GeV].

Why ~550 lines: every definition of docs/evaluation.md in one place, next to the streaming
collector that computes them, so a definition is read once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from particlegraph.errors import DataFileError
from particlegraph.physics import jets
from particlegraph.physics.kinematics import phi_from_sincos
from particlegraph.sim.elements import (
    CLASS_NAMES,
    NUM_CLASSES,
    NUM_Y_FEATURES,
    Y_COS_PHI,
    Y_ENERGY,
    Y_ETA,
    Y_PID,
    Y_PT,
    Y_SIN_PHI,
)


def check_targets(y: np.ndarray, name: str = "y") -> np.ndarray:
    """Return ``y`` as a float array after checking its shape is (N, 7); raise otherwise."""
    arr = np.asarray(y)
    if arr.ndim != 2 or arr.shape[1] != NUM_Y_FEATURES:
        raise DataFileError(
            f"{name} must have shape (N, {NUM_Y_FEATURES}) in the ygen layout, got {arr.shape}"
        )
    return arr


def class_ids(y: np.ndarray) -> np.ndarray:
    """Integer class per row of ``y`` (N, 7) -> (N,) int64, rounded from the pid column."""
    cls: np.ndarray = np.rint(np.asarray(y)[:, Y_PID]).astype(np.int64)
    if cls.size and (cls.min() < 0 or cls.max() >= NUM_CLASSES):
        raise DataFileError(f"pid column holds classes outside 0..{NUM_CLASSES - 1}")
    return cls


def phi(y: np.ndarray) -> np.ndarray:
    """Azimuth [rad] in (-pi, pi] from the sin/cos columns, (N,). Works for unnormalised pairs."""
    return phi_from_sincos(y[:, Y_SIN_PHI], y[:, Y_COS_PHI])


def particles(y: np.ndarray) -> np.ndarray:
    """(M, 3) float64 ``(pT [GeV], eta, phi [rad])`` of the rows of ``y`` (N, 7) with class != 0,
    the input of :func:`particlegraph.physics.jets.cluster_jets`."""
    y = check_targets(y)
    keep = class_ids(y) != 0
    return np.stack([y[keep, Y_PT], y[keep, Y_ETA], phi(y[keep])], axis=1).astype(np.float64)


def confusion_matrix(
    true_cls: np.ndarray, pred_cls: np.ndarray, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """Counts ``C[t, p]`` of elements with true class t and predicted class p.

    Args:
        true_cls: (N,) integer classes (ygen pid).
        pred_cls: (N,) integer classes (reco pid).
        num_classes: size of the square matrix.

    Returns:
        (num_classes, num_classes) int64; rows = true class, columns = predicted class.
    """
    t = np.asarray(true_cls, dtype=np.int64)
    p = np.asarray(pred_cls, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"true and predicted classes differ in shape: {t.shape} vs {p.shape}")
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def efficiency_and_fake_rate(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class efficiency and fake rate from a confusion matrix.

    Args:
        cm: (C, C) counts, rows = true class, columns = predicted class.

    Returns:
        ``(efficiency, fake_rate)``, each (C,) float64; NaN where the denominator is zero
        (no true elements of that class, respectively no elements predicted as that class).
    """
    cm = np.asarray(cm, dtype=np.float64)
    diag = np.diag(cm)
    n_true = cm.sum(axis=1)
    n_pred = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(n_true > 0, diag / n_true, np.nan)
        fake = np.where(n_pred > 0, (n_pred - diag) / n_pred, np.nan)
    return eff, fake


def iqr(values: np.ndarray) -> float:
    """Interquartile range ``q75 - q25`` of a 1-d sample (linear interpolation); NaN if empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    q25, q75 = np.percentile(v, [25.0, 75.0])
    return float(q75 - q25)


def iqr_over_median(values: np.ndarray) -> float:
    """Relative resolution ``IQR / median`` of a sample of ratios; NaN if empty or median 0."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    med = float(np.median(v))
    if med == 0.0:
        return float("nan")
    return iqr(v) / med


def response_pairs(
    ygen: np.ndarray, yreco: np.ndarray, cls: int, column: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gen and reco values of ``column`` on elements where gen and reco are both of class ``cls``.

    Returns:
        ``(gen, reco)``, each (M,) float64.
    """
    mask = (class_ids(ygen) == cls) & (class_ids(yreco) == cls)
    return ygen[mask, column].astype(np.float64), yreco[mask, column].astype(np.float64)


def ratio_response(gen: np.ndarray, reco: np.ndarray) -> dict[str, float]:
    """Response (median) and resolution (IQR/median) of ``reco / gen`` over pairs with gen > 0.

    Args:
        gen, reco: (M,) positive quantities such as pT or E [GeV].

    Returns:
        ``{"response": median, "resolution": IQR / median, "n": M_used}`` (NaN when empty).
    """
    gen = np.asarray(gen, dtype=np.float64)
    reco = np.asarray(reco, dtype=np.float64)
    ok = gen > 0
    ratio = reco[ok] / gen[ok]
    med = float(np.median(ratio)) if ratio.size else float("nan")
    return {"response": med, "resolution": iqr_over_median(ratio), "n": int(ratio.size)}


def difference_response(gen: np.ndarray, reco: np.ndarray) -> dict[str, float]:
    """Bias (median) and resolution (IQR) of ``reco - gen``, used for eta.

    Returns:
        ``{"response": median, "resolution": IQR, "n": M}`` (NaN when empty).
    """
    diff = np.asarray(reco, dtype=np.float64) - np.asarray(gen, dtype=np.float64)
    med = float(np.median(diff)) if diff.size else float("nan")
    return {"response": med, "resolution": iqr(diff), "n": int(diff.size)}


def multiplicity(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Number of particles per class in one event, (num_classes,) int64 (index 0 = empty rows)."""
    return np.bincount(class_ids(y), minlength=num_classes)


def met(y: np.ndarray) -> float:
    """Missing transverse momentum [GeV] of one event: ``|sum_i pT_i (cos phi_i, sin phi_i)|``.

    Rows of class 0 are skipped; phi comes from ``atan2(sin, cos)`` so unnormalised predicted
    (sin, cos) pairs are handled.
    """
    y = check_targets(y)
    keep = class_ids(y) != 0
    pt = y[keep, Y_PT].astype(np.float64)
    ph = phi(y[keep])
    return float(np.hypot(np.sum(pt * np.cos(ph)), np.sum(pt * np.sin(ph))))


def binned_rate(
    values: np.ndarray, passed: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of ``passed`` in bins of ``values`` (e.g. efficiency vs gen pT).

    Args:
        values: (M,) binning variable.
        passed: (M,) bool.
        edges: (B+1,) bin edges; values outside are ignored.

    Returns:
        ``(rate, count)``: (B,) float64 rate (NaN in empty bins) and (B,) int64 entries.
    """
    values = np.asarray(values, dtype=np.float64)
    passed = np.asarray(passed, dtype=bool)
    count, _ = np.histogram(values, bins=edges)
    npass, _ = np.histogram(values[passed], bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, npass / np.maximum(count, 1), np.nan)
    return rate, count.astype(np.int64)


# --- event-level collection and the MLPF-vs-baseline comparison ------------------------------

#: Names of the reconstructed sides, in the order they appear in metrics.json.
SIDES = ("mlpf", "baseline")
#: Classes that get efficiency / fake rate / response entries (class 0, "none", is no particle).
PARTICLE_CLASSES = tuple(range(1, NUM_CLASSES))


def _empty_columns() -> dict[str, list[np.ndarray]]:
    return {"cls": [], "pt": [], "eta": [], "phi": [], "energy": []}


@dataclass
class PFCollection:
    """Everything the evaluation keeps from a stream of events (concatenated by :meth:`finish`).

    Attributes:
        events: number of events K.
        sides: names of the reconstructed sides present ("mlpf", "baseline").
        gen: per element column arrays ``cls`` (M,) int8, ``pt``/``eta``/``phi``/``energy`` (M,)
            float32 of ygen (phi in rad, from atan2), for the M elements where gen or any reco side has a particle.
        reco: per side the same columns for the same M elements.
        confusion: per side the (6, 6) confusion matrix over all elements.
        gen_multiplicity / reco_multiplicity: (K, 6) particles per class and event.
        gen_met / reco_met: (K,) MET [GeV].
        gen_jets_pt: (G,) pT of all gen jets [GeV]; jet_pairs: per side (P, 3)
            ``(gen pT, reco pT, gen eta)`` of matched jets.
        element_event: (M,) event index of each kept element; jet_pair_events: per side (P,)
            event index of each matched jet; confusion_events: per side (K, 6, 6) the
            confusion matrix of each event. They drive the bootstrap over events
            (:mod:`.uncertainty`).
    """

    events: int = 0
    sides: tuple[str, ...] = ()
    gen: dict[str, Any] = field(default_factory=_empty_columns)
    reco: dict[str, dict[str, Any]] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    gen_multiplicity: Any = field(default_factory=list)
    reco_multiplicity: dict[str, Any] = field(default_factory=dict)
    gen_met: Any = field(default_factory=list)
    reco_met: dict[str, Any] = field(default_factory=dict)
    gen_jets_pt: Any = field(default_factory=list)
    jet_pairs: dict[str, Any] = field(default_factory=dict)
    element_event: Any = field(default_factory=list)
    jet_pair_events: dict[str, Any] = field(default_factory=dict)
    confusion_events: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)


class PFCollector:
    """Streams events into a :class:`PFCollection`, clustering jets in chunks of events.

    Args:
        jet_radius: anti-kT R.
        gen_jet_min_pt / reco_jet_min_pt: jet pT thresholds [GeV].
        match_dr: largest Delta R of a gen-reco jet match.
        jet_chunk: events clustered per fastjet call.
    """

    def __init__(
        self,
        *,
        jet_radius: float | None = None,
        gen_jet_min_pt: float | None = None,
        reco_jet_min_pt: float | None = None,
        match_dr: float | None = None,
        jet_chunk: int = 64,
    ) -> None:
        self.jet_radius = jets.JET_RADIUS if jet_radius is None else jet_radius
        self.gen_jet_min_pt = jets.GEN_JET_MIN_PT if gen_jet_min_pt is None else gen_jet_min_pt
        self.reco_jet_min_pt = jets.RECO_JET_MIN_PT if reco_jet_min_pt is None else reco_jet_min_pt
        self.match_dr = jets.MATCH_DR if match_dr is None else match_dr
        self.jet_chunk = max(1, int(jet_chunk))
        self.out = PFCollection()
        self.out.settings = {
            "jet_radius": self.jet_radius,
            "gen_jet_min_pt_gev": self.gen_jet_min_pt,
            "reco_jet_min_pt_gev": self.reco_jet_min_pt,
            "jet_match_dr": self.match_dr,
        }
        self._pending: list[dict[str, np.ndarray]] = []

    def add(
        self,
        X: np.ndarray,
        ygen: np.ndarray,
        ycand: np.ndarray,
        ypred: np.ndarray | None = None,
    ) -> None:
        """Add one event: ``X`` (N, 12) is only checked for length; targets are (N, 7)."""
        ygen = check_targets(ygen, "ygen")
        recos = {"baseline": check_targets(ycand, "ycand")}
        if ypred is not None:
            recos["mlpf"] = check_targets(np.asarray(ypred), "ypred")
        sides = tuple(s for s in SIDES if s in recos)
        out = self.out
        if out.events == 0:
            out.sides = sides
            for s in sides:
                out.reco[s] = _empty_columns()
                out.confusion[s] = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
                out.reco_multiplicity[s] = []
                out.reco_met[s] = []
                out.jet_pairs[s] = []
                out.jet_pair_events[s] = []
                out.confusion_events[s] = []
        elif sides != out.sides:
            raise DataFileError(
                f"event {out.events} has sides {sides} but earlier events had {out.sides}"
            )
        n = len(ygen)
        if len(X) != n or any(len(r) != n for r in recos.values()):
            raise DataFileError(
                f"event {out.events}: X, ygen, ycand (and ypred) must have the same number of "
                f"rows, got {len(X)}, {n}, {[len(r) for r in recos.values()]}"
            )
        gcls = class_ids(ygen)
        rcls = {s: class_ids(recos[s]) for s in sides}
        keep = gcls != 0
        for s in sides:
            keep |= rcls[s] != 0
        _append_columns(out.gen, ygen, gcls, keep)
        out.element_event.append(np.full(int(keep.sum()), out.events, dtype=np.int32))
        out.gen_multiplicity.append(np.bincount(gcls, minlength=NUM_CLASSES))
        out.gen_met.append(met(ygen))
        for s in sides:
            cm = confusion_matrix(gcls, rcls[s])
            out.confusion[s] += cm
            out.confusion_events[s].append(cm.astype(np.int32))
            _append_columns(out.reco[s], recos[s], rcls[s], keep)
            out.reco_multiplicity[s].append(np.bincount(rcls[s], minlength=NUM_CLASSES))
            out.reco_met[s].append(met(recos[s]))
        out.events += 1
        self._pending.append({"gen": ygen, **recos})
        if len(self._pending) >= self.jet_chunk:
            self._flush_jets()

    def _flush_jets(self) -> None:
        if not self._pending:
            return
        gen_jets = jets.cluster_jets(
            [particles(p["gen"]) for p in self._pending], self.jet_radius, self.gen_jet_min_pt
        )
        first = self.out.events - len(self._pending)  # event index of the first pending event
        self.out.gen_jets_pt.extend(j[:, 0] for j in gen_jets)
        for s in self.out.sides:
            reco_jets = jets.cluster_jets(
                [particles(p[s]) for p in self._pending], self.jet_radius, self.reco_jet_min_pt
            )
            for k, (g, r) in enumerate(zip(gen_jets, reco_jets, strict=True)):
                gi, ri = jets.match_jets(g, r, self.match_dr)
                self.out.jet_pairs[s].append(np.stack([g[gi, 0], r[ri, 0], g[gi, 1]], axis=1))
                self.out.jet_pair_events[s].append(np.full(len(gi), first + k, dtype=np.int32))
        self._pending = []

    def finish(self) -> PFCollection:
        """Cluster the remaining jets and concatenate everything into arrays."""
        self._flush_jets()
        out = self.out
        if out.events == 0:
            raise DataFileError("no events to evaluate: the event stream was empty")
        out.gen = _concat_columns(out.gen)
        out.gen_multiplicity = np.stack(out.gen_multiplicity)
        out.gen_met = np.asarray(out.gen_met, dtype=np.float64)
        out.gen_jets_pt = np.concatenate(out.gen_jets_pt) if out.gen_jets_pt else np.zeros(0)
        out.element_event = np.concatenate(out.element_event)
        for s in out.sides:
            out.reco[s] = _concat_columns(out.reco[s])
            out.reco_multiplicity[s] = np.stack(out.reco_multiplicity[s])
            out.reco_met[s] = np.asarray(out.reco_met[s], dtype=np.float64)
            pairs = out.jet_pairs[s]
            out.jet_pairs[s] = np.concatenate(pairs) if pairs else np.zeros((0, 3))
            ev = out.jet_pair_events[s]
            out.jet_pair_events[s] = np.concatenate(ev) if ev else np.zeros(0, dtype=np.int32)
            out.confusion_events[s] = np.stack(out.confusion_events[s])
        return out


def _append_columns(
    cols: dict[str, list[np.ndarray]], y: np.ndarray, cls: np.ndarray, keep: np.ndarray
) -> None:
    cols["cls"].append(cls[keep].astype(np.int8))
    cols["pt"].append(y[keep, Y_PT].astype(np.float32))
    cols["eta"].append(y[keep, Y_ETA].astype(np.float32))
    cols["phi"].append(phi(y[keep]).astype(np.float32))
    cols["energy"].append(y[keep, Y_ENERGY].astype(np.float32))


def _concat_columns(cols: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def _num(x: float) -> float | None:
    """JSON-friendly float: NaN and inf become None."""
    x = float(x)
    return x if np.isfinite(x) else None


def summarize_side(col: PFCollection, side: str) -> dict[str, Any]:
    """Metrics of one reconstructed side ("mlpf" or "baseline") against gen, JSON-ready.

    Per class (names from ``CLASS_NAMES``, classes 1..5): ``efficiency``, ``fake_rate``,
    ``pt_response``/``pt_resolution`` and ``energy_response``/``energy_resolution`` (median and
    IQR/median of reco/gen), ``eta_bias``/``eta_resolution`` (median and IQR of reco - gen),
    ``multiplicity_mean`` (particles per event). Event level: ``jet_pt_response``,
    ``jet_pt_resolution``, ``jet_matching_efficiency``, ``met_response``, ``met_resolution``
    (IQR/median of MET_reco/MET_gen over events with MET_gen > 0) and ``met_std_gev``
    (standard deviation of MET_reco - MET_gen [GeV]). Missing values are None.
    """
    cm = col.confusion[side]
    eff, fake = efficiency_and_fake_rate(cm)
    gen, reco = col.gen, col.reco[side]
    res: dict[str, Any] = {key: {} for key in _PER_CLASS_KEYS}
    for c in PARTICLE_CLASSES:
        name = CLASS_NAMES[c]
        res["efficiency"][name] = _num(eff[c])
        res["fake_rate"][name] = _num(fake[c])
        both = (gen["cls"] == c) & (reco["cls"] == c)
        pt = ratio_response(gen["pt"][both], reco["pt"][both])
        en = ratio_response(gen["energy"][both], reco["energy"][both])
        et = difference_response(gen["eta"][both], reco["eta"][both])
        res["pt_response"][name] = _num(pt["response"])
        res["pt_resolution"][name] = _num(pt["resolution"])
        res["energy_response"][name] = _num(en["response"])
        res["energy_resolution"][name] = _num(en["resolution"])
        res["eta_bias"][name] = _num(et["response"])
        res["eta_resolution"][name] = _num(et["resolution"])
        res["multiplicity_mean"][name] = _num(col.reco_multiplicity[side][:, c].mean())
    pairs = col.jet_pairs[side]
    jet = ratio_response(pairs[:, 0], pairs[:, 1])
    n_gen_jets = len(col.gen_jets_pt)
    res["jet_pt_response"] = _num(jet["response"])
    res["jet_pt_resolution"] = _num(jet["resolution"])
    res["jets_matched"] = len(pairs)
    res["jet_matching_efficiency"] = _num(len(pairs) / n_gen_jets if n_gen_jets else np.nan)
    res["jet_pt_binned"] = jet_pt_binned(pairs)
    mr = ratio_response(col.gen_met, col.reco_met[side])
    res["met_response"] = _num(mr["response"])
    res["met_resolution"] = _num(mr["resolution"])
    diff = col.reco_met[side] - col.gen_met
    res["met_std_gev"] = _num(np.std(diff)) if diff.size else None
    res["confusion_matrix"] = cm.tolist()
    return res


def jet_pt_binned(pairs: np.ndarray) -> dict[str, list[Any]]:
    """Jet pT response and resolution in bins of gen jet pT, JSON-ready.

    Args:
        pairs: (P, 3) matched jets ``(gen pT, reco pT, gen eta)``.

    Returns:
        ``{"edges_gev": (B+1,), "response": (B,), "resolution": (B,), "count": (B,)}`` as lists.
    """
    from particlegraph.physics.jets import JET_PT_EDGES

    edges = np.asarray(JET_PT_EDGES)
    ok = pairs[:, 0] > 0
    resp, reso, count = binned_response(pairs[ok, 0], pairs[ok, 1] / pairs[ok, 0], edges)
    return {
        "edges_gev": edges.tolist(),
        "response": [_num(v) for v in resp],
        "resolution": [_num(v) for v in reso],
        "count": count.tolist(),
    }


_PER_CLASS_KEYS = (
    "efficiency", "fake_rate", "pt_response", "pt_resolution", "energy_response",
    "energy_resolution", "eta_bias", "eta_resolution", "multiplicity_mean",
)  # fmt: skip


def summarize(col: PFCollection) -> dict[str, Any]:
    """JSON-ready ``{"mlpf": {...}, "baseline": {...}, "gen": {...}, "events": K, "settings"}``.

    The "mlpf" entry is present only when predictions were given. "gen" holds the mean
    multiplicity per class, the number of gen jets and the mean gen MET [GeV].
    """
    out: dict[str, Any] = {s: summarize_side(col, s) for s in col.sides}
    out["gen"] = {
        "multiplicity_mean": {
            CLASS_NAMES[c]: _num(col.gen_multiplicity[:, c].mean()) for c in PARTICLE_CLASSES
        },
        "jets": len(col.gen_jets_pt),
        "met_mean_gev": _num(col.gen_met.mean()),
    }
    out["events"] = col.events
    out["settings"] = dict(col.settings)
    return out


def collect(events: Iterable[Sequence[Any]], **jet_options: Any) -> PFCollection:
    """Run a :class:`PFCollector` over ``events`` of ``(X, ygen, ycand[, ypred])``."""
    collector = PFCollector(**jet_options)
    for ev in events:
        if len(ev) not in (3, 4):
            raise DataFileError(
                f"each event must be (X, ygen, ycand) or (X, ygen, ycand, ypred), got {len(ev)} items"
            )
        collector.add(*ev)
    return collector.finish()


def compare(events: Iterable[Sequence[Any]], **jet_options: Any) -> dict[str, Any]:
    """MLPF vs baseline metrics of a stream of events, without a model.

    Args:
        events: iterable of ``(X (N, 12), ygen (N, 7), ycand (N, 7), ypred (N, 7) | None)``;
            ``ypred`` is the MLPF output in the ygen layout (``models.mlpf.decode_predictions``).
        **jet_options: ``jet_radius``, ``gen_jet_min_pt``, ``reco_jet_min_pt``, ``match_dr``,
            ``jet_chunk`` of :class:`PFCollector`.

    Returns:
        ``{"mlpf": {...}, "baseline": {...}, "gen": {...}, "events": K}``; see
        :func:`summarize_side` for the keys of each side.
    """
    return summarize(collect(events, **jet_options))


def binned_response(
    values: np.ndarray, ratio: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and ``IQR / median`` of ``ratio`` in bins of ``values`` (e.g. jet response vs pT).

    Args:
        values: (M,) binning variable, e.g. gen jet pT [GeV].
        ratio: (M,) reco / gen ratios.
        edges: (B+1,) bin edges; values outside are ignored.

    Returns:
        ``(response, resolution, count)``, each (B,); NaN in empty bins.
    """
    values = np.asarray(values, dtype=np.float64)
    ratio = np.asarray(ratio, dtype=np.float64)
    idx = np.digitize(values, edges) - 1  # bin b holds edges[b] <= v < edges[b + 1]
    nbins = len(edges) - 1
    response = np.full(nbins, np.nan)
    resolution = np.full(nbins, np.nan)
    count = np.zeros(nbins, dtype=np.int64)
    for b in range(nbins):
        r = ratio[idx == b]
        count[b] = r.size
        if r.size:
            response[b] = np.median(r)
            resolution[b] = iqr_over_median(r)
    return response, resolution, count
