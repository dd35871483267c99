"""ROC curves and the figures of merit of a score that separates signal from background.

Pure numpy. Convention: a larger score means "more signal-like" (more anomalous). The curve is
computed at every distinct score threshold, with tied scores handled as one step, so the area
equals ``P(s_sig > s_bkg) + 0.5 P(s_sig = s_bkg)`` (the Mann-Whitney statistic), the same value
``sklearn.metrics.roc_auc_score`` returns.

Figures of merit (all from the empirical curve, with linear interpolation between its points):

- ``eps_s_at_eps_b(eps_b)``: signal efficiency at a background efficiency (mistag rate);
- ``inv_eps_b_at_eps_s(eps_s)``: background rejection 1/eps_B at a signal efficiency;
- ``max_sic``: maximum significance improvement ``eps_S / sqrt(eps_B)`` over thresholds with
  ``eps_B >= min_eps_b`` (one background event by default, so the ratio stays finite).

Errors: :func:`binomial_error` (``sqrt(eps (1 - eps) / n)``, with the effective number of
weighted events ``(sum w)^2 / sum w^2``); the error of eps_S at a fixed eps_B is the binomial error
of the signal efficiency there (the threshold itself is treated as exact; a comparison of two
scores on the same events should bootstrap instead, see :func:`bootstrap_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class RocCurve:
    """An empirical ROC curve: ``eps_b`` (T,), ``eps_s`` (T,), ``thresholds`` (T,).

    Point t keeps the events with ``score >= thresholds[t]``; the first point is (0, 0) with
    threshold +inf, the last (1, 1). Both efficiencies are non-decreasing.
    """

    eps_b: np.ndarray
    eps_s: np.ndarray
    thresholds: np.ndarray
    n_sig: float
    n_bkg: float
    n_sig_eff: float = float("nan")  # (sum w)^2 / sum w^2 of the signal (= n_sig unweighted)
    n_bkg_eff: float = float("nan")


def _check(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must have the same length")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (background) or 1 (signal)")
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != s.shape or (w < 0).any():
        raise ValueError("weights must be non-negative with one per score")
    y = y.astype(bool)
    if w[y].sum() <= 0 or w[~y].sum() <= 0:
        raise ValueError("need at least one signal (label 1) and one background (label 0) event")
    return s, y, w


def roc_curve(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> RocCurve:
    """The ROC curve of ``scores`` (N,) for ``labels`` (N,) in {0, 1}, optional ``weights`` (N,)."""
    s, y, w = _check(scores, labels, weights)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    tp = np.cumsum(w * y)
    fp = np.cumsum(w * ~y)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each distinct score
    n_s, n_b = tp[-1], fp[-1]
    return RocCurve(
        eps_b=np.r_[0.0, fp[last] / n_b],
        eps_s=np.r_[0.0, tp[last] / n_s],
        thresholds=np.r_[np.inf, s[last]],
        n_sig=float(n_s),
        n_bkg=float(n_b),
        n_sig_eff=effective_count(w[y]),
        n_bkg_eff=effective_count(w[~y]),
    )


def effective_count(weights: np.ndarray) -> float:
    """Kish's effective number of events ``(sum w)^2 / sum w^2`` (= N for unit weights)."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float((w * w).sum())
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def binomial_error(eps: float | np.ndarray, n: float | np.ndarray) -> float | np.ndarray:
    """Standard error ``sqrt(eps (1 - eps) / n)`` of an efficiency ``eps`` measured on ``n`` events.

    It is 0 at eps = 0 or 1 (use a Wilson interval where that matters); ``n <= 0`` gives nan.
    """
    e = np.clip(np.asarray(eps, dtype=np.float64), 0.0, 1.0)
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n_arr > 0, np.sqrt(e * (1.0 - e) / n_arr), np.nan)
    return float(out) if out.ndim == 0 else out


def bootstrap_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` resamplings with replacement of ``n`` events: (n_boot, n) indices."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 and n_boot >= 1, got {n} and {n_boot}")
    return rng.integers(0, n, size=(n_boot, n))


def threshold_at_eps_b(background: np.ndarray, eps_b: float) -> float:
    """Score cut keeping a fraction ``eps_b`` of ``background`` scores (N,): ``score > cut``.

    The cut is the (1 - eps_b) quantile with linear interpolation between order statistics, so
    on a continuous score about ``eps_b N`` events pass.
    """
    if not 0.0 < eps_b < 1.0:
        raise ValueError(f"eps_b must be in (0, 1), got {eps_b}")
    b = np.asarray(background, dtype=np.float64).reshape(-1)
    if b.size == 0 or not np.isfinite(b).all():
        raise ValueError("background scores must be finite and not empty")
    return float(np.quantile(b, 1.0 - eps_b))


def auc(curve: RocCurve) -> float:
    """Area under the curve (trapezoids in eps_B); 0.5 = no separation, 1 = perfect."""
    return float(np.trapezoid(curve.eps_s, curve.eps_b))


def roc_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Shortcut: ``auc(roc_curve(scores, labels, weights))``."""
    return auc(roc_curve(scores, labels, weights))


def rank_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` (N,) for labels ``y`` (N,) (1 = signal).

    The Mann-Whitney form: the probability that a random signal event scores above a random
    background event, ties counted one half. Equal to the trapezoid area of
    :func:`roc_auc` (tested), but O(N log N) without building a curve.
    """
    y = np.asarray(y).astype(bool)
    n_s, n_b = int(y.sum()), int((~y).sum())
    if n_s == 0 or n_b == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_s * (n_s + 1) / 2.0) / (n_s * n_b))


def eps_s_at_eps_b(curve: RocCurve, eps_b: float) -> float:
    """Signal efficiency at background efficiency ``eps_b`` (linear interpolation on the curve).

    Where the curve is vertical at ``eps_b`` (several signal events gained at once), the largest
    signal efficiency reached at that background efficiency is returned.
    """
    if not 0.0 <= eps_b <= 1.0:
        raise ValueError(f"eps_b must be in [0, 1], got {eps_b}")
    # the upper envelope: for each eps_b value keep the largest eps_s
    xb, idx = np.unique(curve.eps_b[::-1], return_index=True)
    ys = curve.eps_s[::-1][idx]
    return float(np.interp(eps_b, xb, ys))


def inv_eps_b_at_eps_s(curve: RocCurve, eps_s: float) -> float:
    """Background rejection ``1 / eps_B`` at signal efficiency ``eps_s`` (inf when eps_B = 0)."""
    if not 0.0 < eps_s <= 1.0:
        raise ValueError(f"eps_s must be in (0, 1], got {eps_s}")
    # the lower envelope: for each eps_s value the smallest eps_b
    xs, idx = np.unique(curve.eps_s, return_index=True)
    eb = float(np.interp(eps_s, xs, curve.eps_b[idx]))
    return float("inf") if eb <= 0 else 1.0 / eb


def max_sic(curve: RocCurve, min_eps_b: float | None = None) -> float:
    """Maximum of ``eps_S / sqrt(eps_B)`` over the curve's points with ``eps_B >= min_eps_b``.

    ``min_eps_b`` defaults to ``1 / n_bkg`` (one background event); points below it carry a
    statistical uncertainty of 100 % or more and would make the maximum meaningless.
    """
    floor = 1.0 / curve.n_bkg if min_eps_b is None else float(min_eps_b)
    ok = curve.eps_b >= max(floor, np.finfo(float).tiny)
    if not ok.any():
        return 0.0
    return float(np.max(curve.eps_s[ok] / np.sqrt(curve.eps_b[ok])))


@dataclass(frozen=True)
class RocSummary:
    """The figures of merit of one (score, signal, background) comparison."""

    auc: float
    eps_s_at_1e2: float  # signal efficiency at eps_B = 1e-2
    eps_s_at_1e3: float  # signal efficiency at eps_B = 1e-3
    inv_eps_b_at_0p3: float  # 1/eps_B at eps_S = 0.3
    max_sic: float  # max eps_S / sqrt(eps_B) with eps_B >= 1 / n_bkg
    n_sig: float
    n_bkg: float
    eps_s_at_1e2_err: float = float("nan")  # binomial error of eps_S at eps_B = 1e-2
    eps_s_at_1e3_err: float = float("nan")  # binomial error of eps_S at eps_B = 1e-3
    n_sig_eff: float = float("nan")  # effective signal count (sum w)^2 / sum w^2

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON-ready; an infinite rejection becomes None)."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)  # type: ignore[misc]
                for k, v in self.__dict__.items()}  # fmt: skip


def summarize(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> RocSummary:
    """All figures of merit of :class:`RocSummary` for one set of scores."""
    c = roc_curve(scores, labels, weights)
    e2, e3 = eps_s_at_eps_b(c, 1e-2), eps_s_at_eps_b(c, 1e-3)
    return RocSummary(
        auc=auc(c),
        eps_s_at_1e2=e2,
        eps_s_at_1e3=e3,
        inv_eps_b_at_0p3=inv_eps_b_at_eps_s(c, 0.3),
        max_sic=max_sic(c),
        n_sig=c.n_sig,
        n_bkg=c.n_bkg,
        eps_s_at_1e2_err=float(binomial_error(e2, c.n_sig_eff)),
        eps_s_at_1e3_err=float(binomial_error(e3, c.n_sig_eff)),
        n_sig_eff=c.n_sig_eff,
    )
