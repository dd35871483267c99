"""Metrics of every score against every signal, under three protocols, and the gain over trivial.

Protocols (rows of the table carry ``protocol``):

- ``plain``: the scores as they are, signal and background as generated. Here the event scale
  (HT) alone separates most heavy signals from QCD.
- ``ht-calibrated``: every score replaced by its background quantile at the same HT
  (:class:`~.decorrelate.HTCalibration`, fitted on background reference events); the samples are
  unchanged, so a signal whose HT lies beyond the background's still profits from the scale.
- ``ht-matched``: the calibrated scores, and every signal event weighted by
  ``p_bkg(HT bin) / p_sig(HT bin)`` (10 HT bins of equal reference-background population; signal
  events outside the reference HT range get weight 0): signal and background then have the same
  HT distribution, HT itself has AUC 0.5 up to its within-bin shape, and a score wins only with
  what it sees *beyond* the event scale. The signal statistics become the effective count
  ``n_sig_eff`` (Kish), reported per row.

Gain over the best trivial score: for each (signal, metric) the *best trivial* is the trivial
score (:mod:`.trivial`) with the highest value of that metric **on the test events** among the
plain *and* the HT-calibrated trivial scores (both are unweighted on the same events; for
``ht-matched`` among the weighted HT-calibrated ones), reported in ``best_trivial_<metric>``: the
most favourable choice for the trivial side, so a positive gain is conservative. The gain of a learned score is its value minus that, per seed, with a
bootstrap error over test events (paired: both scores on the same resampled events; the trivial
choice kept fixed); the table gives the mean over seeds, the seed spread and the mean bootstrap
error. No learned model is chosen on the test signal: every learned score is listed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from particlegraph.metrics.roc import (
    auc,
    bootstrap_indices,
    eps_s_at_eps_b,
    roc_curve,
    summarize,
)

METRICS = ("auc", "eps_s_at_1e2", "eps_s_at_1e3", "inv_eps_b_at_0p3", "max_sic")
PROTOCOLS = ("plain", "ht-calibrated", "ht-matched")
TRIVIAL = "trivial"
CAL_SUFFIX = "_htcal"
GAIN_METRICS = ("auc", "eps_s_at_1e2")


def split_key(key: str) -> tuple[str, str, int]:
    """``model:score@seed`` -> (model, score, seed)."""
    ms, _, seed = key.rpartition("@")
    model, _, score = ms.partition(":")
    return model, score, int(seed)


def protocol_of(score: str, matched: bool) -> str:
    if not score.endswith(CAL_SUFFIX):
        return "plain"
    return "ht-matched" if matched else "ht-calibrated"


def matching_weights(ht_sig: np.ndarray, ht_ref: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Per signal event (S,) weight ``p_ref(bin) / p_sig(bin)`` in ``n_bins`` HT bins of equal
    reference population; 0 outside the reference HT range. Sums to the signal count in the
    covered bins' share."""
    edges = np.quantile(ht_ref, np.linspace(0, 1, n_bins + 1))
    inside = (ht_sig >= edges[0]) & (ht_sig <= edges[-1])
    b = np.clip(np.searchsorted(edges, ht_sig, side="right") - 1, 0, n_bins - 1)
    n_sig = np.bincount(b[inside], minlength=n_bins).astype(np.float64)
    p_ref = np.full(n_bins, 1.0 / n_bins)
    w = np.zeros(ht_sig.size)
    ok = inside & (n_sig[b] > 0)
    w[ok] = p_ref[b[ok]] / n_sig[b[ok]]
    return w * inside.sum() / max(w.sum(), 1e-300) if w.sum() > 0 else w


def _row_metrics(s: np.ndarray, b: np.ndarray, w: np.ndarray | None) -> dict[str, Any]:
    labels = np.r_[np.ones(s.size), np.zeros(b.size)]
    weights = None if w is None else np.r_[w, np.ones(b.size)]
    d = summarize(np.r_[s, b], labels, weights).as_dict()
    return d


def per_seed_rows(
    scores: dict[str, dict[str, np.ndarray]],
    background: str,
    signals: list[str],
    weights: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """One row per (score key, signal, protocol): every metric of :func:`summarize`."""
    rows = []
    for key, b in scores[background].items():
        model, score, seed = split_key(key)
        for sig in signals:
            s = scores[sig][key]
            protos = [False, True] if score.endswith(CAL_SUFFIX) else [False]
            for matched in protos:
                w = weights.get(sig) if matched else None
                if matched and (w is None or w.sum() <= 0):
                    continue
                m = _row_metrics(s, b, w)
                rows.append({"model": model, "score": score, "signal": sig, "seed": seed,
                             "protocol": protocol_of(score, matched), "key": key, **m})  # fmt: skip
    return rows


def mean_over_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group per-seed rows by (protocol, model, score, signal): mean and sample std over seeds
    (``None`` with one seed)."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["protocol"], r["model"], r["score"], r["signal"])].append(r)
    out = []
    for (proto, model, score, sig), rs in groups.items():
        o: dict[str, Any] = {"protocol": proto, "model": model, "score": score, "signal": sig,
                             "n_seeds": len(rs), "trivial": model == TRIVIAL,
                             "n_sig_eff": _mean(rs, "n_sig_eff"), "n_bkg": rs[0]["n_bkg"]}  # fmt: skip
        for k in (*METRICS, "eps_s_at_1e2_err", "eps_s_at_1e3_err"):
            vals = np.array([np.inf if r[k] is None else r[k] for r in rs], dtype=float)
            fin = vals[np.isfinite(vals)]
            o[k] = float(np.mean(fin)) if fin.size == vals.size else None
            if k in METRICS:
                # one seed has no spread (None, shown without "±"), not a spread of 0
                o[f"{k}_std"] = float(np.std(fin, ddof=1)) if fin.size > 1 else None
        out.append(o)
    return out


def _mean(rs: list[dict[str, Any]], k: str) -> float:
    return float(np.mean([r[k] for r in rs]))


def _metric_fn(metric: str):  # type: ignore[no-untyped-def]
    if metric == "auc":
        return auc
    return lambda c: eps_s_at_eps_b(c, 1e-2)


def gains(
    per_seed: list[dict[str, Any]],
    scores: dict[str, dict[str, np.ndarray]],
    background: str,
    weights: dict[str, np.ndarray],
    n_boot: int = 100,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Gain of every learned score over the best trivial score (module docstring), per
    (protocol, model, score, signal) with the mean over seeds, seed std and bootstrap error."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in per_seed:
        if r["model"] != TRIVIAL:
            continue
        for m in GAIN_METRICS:
            k = (_family(r["protocol"]), r["signal"], m)
            if r[m] is not None and (k not in best or r[m] > best[k][m]):
                best[k] = r
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in per_seed:
        if r["model"] != TRIVIAL:
            groups[(r["protocol"], r["model"], r["score"], r["signal"])].append(r)
    out = []
    rng = np.random.default_rng(seed)
    for (proto, model, score, sig), rs in groups.items():
        o: dict[str, Any] = {"protocol": proto, "model": model, "score": score, "signal": sig}
        for m in GAIN_METRICS:
            t = best.get((_family(proto), sig, m))
            if t is None:
                continue
            d, e = [], []
            for r in rs:
                diff, err = paired_difference(scores, background, sig, r["key"], t["key"], proto,
                                    weights.get(sig), m, n_boot, rng)  # fmt: skip
                d.append(diff)
                e.append(err)
            o[f"best_trivial_{m}"] = t["score"]  # a name ending in _htcal: calibrated
            o[f"best_trivial_{m}_value"] = t[m]
            o[f"gain_{m}"] = float(np.mean(d))
            o[f"gain_{m}_seed_std"] = float(np.std(d, ddof=1)) if len(d) > 1 else None
            o[f"gain_{m}_boot_err"] = float(np.mean(e))
        out.append(o)
    return out


def _family(protocol: str) -> str:
    """Protocols whose rows share events and weights (their trivial scores compete together)."""
    return "weighted" if protocol == "ht-matched" else "unweighted"


def paired_difference(
    scores: dict[str, dict[str, np.ndarray]],
    background: str,
    sig: str,
    key_a: str,
    key_b: str,
    proto: str,
    w_sig: np.ndarray | None,
    metric: str,
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """(metric(a) - metric(b), bootstrap std) on the same resampled signal + background events.

    ``scores[sample][key]`` holds each score per event; ``metric`` is one of
    :data:`GAIN_METRICS` (AUC, or eps_S at eps_B = 1e-2); with ``proto == "ht-matched"`` the signal events carry ``w_sig``.
    """
    fn = _metric_fn(metric)
    sa, ba = scores[sig][key_a], scores[background][key_a]
    sb, bb = scores[sig][key_b], scores[background][key_b]
    w = w_sig if proto == "ht-matched" else None
    ws = np.ones(sa.size) if w is None else w
    lab = np.r_[np.ones(sa.size), np.zeros(ba.size)]

    def value(i_s: np.ndarray, i_b: np.ndarray) -> float:
        ww = np.r_[ws[i_s], np.ones(i_b.size)]
        if ww[: i_s.size].sum() <= 0:
            return float("nan")
        ca = roc_curve(np.r_[sa[i_s], ba[i_b]], lab, ww)
        cb = roc_curve(np.r_[sb[i_s], bb[i_b]], lab, ww)
        return float(fn(ca) - fn(cb))

    full = value(np.arange(sa.size), np.arange(ba.size))
    bs = bootstrap_indices(sa.size, n_boot, rng)
    bbk = bootstrap_indices(ba.size, n_boot, rng)
    boots = np.array([value(i, j) for i, j in zip(bs, bbk, strict=True)])
    return full, float(np.nanstd(boots, ddof=1))
