"""Scores that are not the event scale: calibration within HT bins, and the sculpting of HT by a cut.

:class:`HTCalibration` maps a score to its *background quantile at the same HT*: background
events (never the test events, never a signal) are split into ``n_bins`` HT bins of equal
population; within a bin the score becomes the normal quantile of its empirical background CDF,

    s' = Phi^-1(F_bin(s)),   F_bin from the sorted background scores of the bin (mid-ranks),

linearly interpolated between background values and continued linearly beyond the smallest and
largest one (slope 1 / std of the bin's scores) so events past every background event keep their
order instead of tying. On background s' is close to a standard normal in every HT bin, so a cut
on s' keeps about the same fraction at every HT: the score says how unusual an event is *for its
HT*, not how hard it is. Limits: HT beyond the background's range falls into the first / last bin,
so the calibration there extrapolates.

Sculpting (:func:`sculpting`): the background HT distribution of the events that pass a cut at
eps_B (1e-2 by default: the ``round(eps_B N)`` highest-scoring events, ties broken at random) against all background events, as a Jensen-Shannon divergence (bits) in
``n_bins`` HT bins of equal background population, with its bootstrap error over events and the
value expected from a *random* selection of as many events (the finite-sample floor: ~10 events
out of 1,000 never give 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from particlegraph.errors import ConfigError
from particlegraph.metrics.roc import bootstrap_indices


@dataclass(frozen=True)
class HTCalibration:
    """Per-HT-bin background quantile transform of one score (see the module docstring)."""

    edges: np.ndarray  # (n_bins - 1,) inner HT bin edges [GeV]
    refs: tuple[np.ndarray, ...]  # per bin: sorted distinct background scores
    quantiles: tuple[np.ndarray, ...]  # per bin: normal quantile of each distinct score
    scales: np.ndarray  # (n_bins,) std of the background scores per bin (> 0)

    @classmethod
    def fit(cls, score: np.ndarray, ht: np.ndarray, n_bins: int = 5) -> HTCalibration:
        """Fit on background ``score`` (N,) and ``ht`` (N,), at least 10 events per bin."""
        s = np.asarray(score, dtype=np.float64)
        h = np.asarray(ht, dtype=np.float64)
        if s.shape != h.shape or s.ndim != 1:
            raise ConfigError("HT calibration: score and ht must be 1-d arrays of one length")
        if n_bins < 1 or s.size < 10 * n_bins:
            raise ConfigError(
                f"HT calibration needs >= 10 background events per bin: {s.size} for {n_bins} bins"
            )
        if not (np.isfinite(s).all() and np.isfinite(h).all()):
            raise ConfigError("HT calibration: scores and HT must be finite")
        edges = np.quantile(h, np.linspace(0, 1, n_bins + 1)[1:-1])
        which = np.searchsorted(edges, h, side="right")
        refs, quants, scales = [], [], []
        for b in range(n_bins):
            v = np.sort(s[which == b])
            if v.size < 2:
                raise ConfigError(
                    "HT calibration: an HT bin holds fewer than 2 events (ties in HT)"
                )
            q = ndtri((np.arange(v.size) + 0.5) / v.size)
            uniq, start = np.unique(v, return_index=True)
            stop = np.r_[start[1:], v.size]
            qm = np.array([q[a:z].mean() for a, z in zip(start, stop, strict=True)])
            refs.append(uniq)
            quants.append(qm)
            scales.append(max(float(v.std()), 1e-12))
        return cls(edges, tuple(refs), tuple(quants), np.array(scales))

    @property
    def n_bins(self) -> int:
        return len(self.refs)

    def transform(self, score: np.ndarray, ht: np.ndarray) -> np.ndarray:
        """Calibrated score (N,) of ``score`` (N,) at ``ht`` (N,) [GeV]."""
        s = np.asarray(score, dtype=np.float64)
        which = np.searchsorted(self.edges, np.asarray(ht, dtype=np.float64), side="right")
        out = np.empty_like(s)
        for b in range(self.n_bins):
            sel = which == b
            r, q, sc = self.refs[b], self.quantiles[b], self.scales[b]
            v = s[sel]
            o = np.interp(v, r, q)
            lo, hi = v < r[0], v > r[-1]
            o[lo] = q[0] - (r[0] - v[lo]) / sc
            o[hi] = q[-1] + (v[hi] - r[-1]) / sc
            out[sel] = o
        return out


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence [bits] of two histograms (normalised here); 0 .. 1."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def _jsd_sel(sel: np.ndarray, ht: np.ndarray, edges: np.ndarray) -> float:
    """JSD between the HT histogram of the selected events and that of all events."""
    which = np.searchsorted(edges, ht, side="right")
    all_h = np.bincount(which, minlength=edges.size + 1)
    return jensen_shannon(np.bincount(which[sel], minlength=edges.size + 1), all_h)


def top_fraction(score: np.ndarray, eps_b: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``max(1, round(eps_b N))`` highest scores (N,); ties broken at random, so
    a score with a plateau (e.g. a floored tail probability) still selects the asked fraction."""
    k = max(1, round(eps_b * score.size))
    order = np.lexsort((rng.random(score.size), -score))
    return order[:k]


def _jsd_cut(
    score: np.ndarray, ht: np.ndarray, edges: np.ndarray, eps_b: float, rng: np.random.Generator
) -> float:
    return _jsd_sel(top_fraction(score, eps_b, rng), ht, edges)


def sculpting(
    score: np.ndarray,
    ht: np.ndarray,
    *,
    eps_b: float = 1e-2,
    n_bins: int = 5,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """HT sculpting of a cut at ``eps_b`` on background ``score`` (N,) with ``ht`` (N,).

    Returns ``jsd`` (bits), ``jsd_err`` (bootstrap std over events), ``jsd_random`` and
    ``jsd_random_std`` (the same for random selections of as many events: the floor),
    ``ht_pass_over_all`` (mean HT of passing events / mean HT of all) and ``n_pass``.
    """
    s = np.asarray(score, dtype=np.float64)
    h = np.asarray(ht, dtype=np.float64)
    if s.shape != h.shape or s.size < 2:
        raise ConfigError("sculpting: score and ht must have one length >= 2")
    edges = np.quantile(h, np.linspace(0, 1, n_bins + 1)[1:-1])
    rng = np.random.default_rng(seed)
    sel = top_fraction(s, eps_b, rng)
    boots = [
        _jsd_cut(s[i], h[i], edges, eps_b, rng) for i in bootstrap_indices(s.size, n_boot, rng)
    ]
    rand = [_jsd_sel(rng.choice(s.size, size=sel.size, replace=False), h, edges)
            for _ in range(n_boot)]  # fmt: skip
    return {
        "eps_b": eps_b,
        "n_pass": int(sel.size),
        "jsd": _jsd_sel(sel, h, edges),
        "jsd_err": float(np.nanstd(boots, ddof=1)),
        "jsd_random": float(np.nanmean(rand)),
        "jsd_random_std": float(np.nanstd(rand, ddof=1)),
        "ht_pass_over_all": float(h[sel].mean() / h.mean()) if h.mean() else None,
    }
