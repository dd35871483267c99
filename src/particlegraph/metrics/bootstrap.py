"""Bootstrap over events: statistical errors of any statistic and paired comparisons.

A data set of K events is resampled with replacement B times (seeded); replica b gives event k
the integer weight ``counts[b, k]`` (how often k was drawn, sum over k = K). A statistic of
elements (a median of jet responses, an IQR of delta phi) is recomputed on every replica with
each element weighted by the count of its event, so correlations inside an event are kept.
The error of the statistic is the standard deviation over replicas (ddof=1).

Comparisons are *paired*: two algorithms reconstruct the same events, so their statistics are
recomputed on the same replicas and the error of ``a - b`` is the standard deviation of the
replica differences. Identical inputs give exactly ``0 +- 0``. Verdicts (docs/evaluation.md):

* ``better``: ``a`` improves on ``b`` by more than 2 sigma of the paired difference;
* ``at_least_as_good``: ``a`` is not worse than ``b`` by more than 1 sigma.

Weighted quantiles with integer weights equal ``np.percentile(..., method="linear")`` on the
sample with each value repeated by its weight, so replica and nominal values use one definition.
Memory is O(M) per statistic (replicas are looped, never stored as a (B, M) matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Replicas of the evaluation's bootstrap (relative error of an error about 1/sqrt(2B) = 5 %).
DEFAULT_REPLICAS = 200
#: Seed of the evaluation's bootstrap.
DEFAULT_SEED = 12345
#: Relative size of a difference that is float32 round-off, not a difference (verdicts).
ROUNDOFF = 1e-6


def event_counts(
    num_events: int, replicas: int = DEFAULT_REPLICAS, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """How often each event is drawn in each replica.

    Args:
        num_events: K, events of the data set (>= 1).
        replicas: B, bootstrap replicas (>= 2).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        (B, K) int64 counts; every row sums to K.
    """
    if num_events < 1:
        raise ValueError(f"the bootstrap needs at least one event, got {num_events}")
    if replicas < 2:
        raise ValueError(f"the bootstrap needs at least 2 replicas, got {replicas}")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, num_events, size=(replicas, num_events))  # (B, K)
    flat = (drawn + num_events * np.arange(replicas)[:, None]).ravel()
    return np.bincount(flat, minlength=replicas * num_events).reshape(replicas, num_events)


def weighted_quantiles(
    sorted_values: np.ndarray, weights: np.ndarray, qs: Sequence[float]
) -> np.ndarray:
    """Quantiles of a sorted sample whose value i is repeated ``weights[i]`` times.

    Args:
        sorted_values: (M,) ascending values.
        weights: (M,) non-negative integer weights.
        qs: quantiles in [0, 1].

    Returns:
        (len(qs),) float64, linear interpolation as ``np.percentile``; NaN if all weights are 0.
    """
    cum = np.cumsum(weights)
    n = int(cum[-1]) if cum.size else 0
    if n == 0:
        return np.full(len(qs), np.nan)
    pos = np.asarray(qs, dtype=np.float64) * (n - 1)  # index into the expanded sample
    lo = np.floor(pos)
    hi = np.minimum(lo + 1, n - 1)
    v_lo = sorted_values[np.searchsorted(cum, lo, side="right")]
    v_hi = sorted_values[np.searchsorted(cum, hi, side="right")]
    return np.asarray(v_lo + (pos - lo) * (v_hi - v_lo), dtype=np.float64)


def quantile_replicas(
    values: np.ndarray, events: np.ndarray, counts: np.ndarray, qs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Nominal and per-replica quantiles of element values weighted by their event's count.

    Args:
        values: (M,) values (one per element, jet, ...).
        events: (M,) event index of each value, in 0..K-1.
        counts: (B, K) from :func:`event_counts`.
        qs: quantiles in [0, 1].

    Returns:
        ``(nominal (Q,), replicas (B, Q))``; NaN rows where a replica holds no value.
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    v = values[order]
    ev = np.asarray(events, dtype=np.int64)[order]
    nominal = weighted_quantiles(v, np.ones(v.size, dtype=np.int64), qs)
    reps = np.stack([weighted_quantiles(v, row[ev], qs) for row in counts])
    return nominal, reps


def ratio_stats(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(median, IQR / median)`` from quantiles ``(..., 3)`` at (0.25, 0.5, 0.75)."""
    med = q[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        reso = np.where(med != 0, (q[..., 2] - q[..., 0]) / med, np.nan)
    return med, reso


def weighted_std(per_event: np.ndarray, counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Nominal and per-replica standard deviation (ddof=0, as ``np.std``) of one value per event.

    Args:
        per_event: (K,) values.
        counts: (B, K).

    Returns:
        ``(nominal, (B,) replicas)``.
    """
    x = np.asarray(per_event, dtype=np.float64)
    w = counts.astype(np.float64)
    mean = (w @ x) / w.sum(1)
    var = (w * (x[None, :] - mean[:, None]) ** 2).sum(1) / w.sum(1)
    return float(np.std(x)), np.sqrt(var)


def replica_sums(per_event: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-replica sums of per-event arrays: (K, ...) -> (B, ...), e.g. confusion matrices."""
    arr = np.asarray(per_event, dtype=np.float64)
    return np.tensordot(counts.astype(np.float64), arr, axes=(1, 0))


def spread(replicas: np.ndarray) -> float:
    """Standard deviation (ddof=1) over replicas, ignoring NaN; NaN if fewer than 2 are finite."""
    r = np.asarray(replicas, dtype=np.float64)
    r = r[np.isfinite(r)]
    return float(np.std(r, ddof=1)) if r.size >= 2 else float("nan")


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap replicas.

    Attributes:
        value: the statistic on the data set.
        replicas: (B,) the statistic on each replica (NaN where undefined).
    """

    value: float
    replicas: np.ndarray

    @property
    def error(self) -> float:
        """Standard deviation over replicas."""
        return spread(self.replicas)

    def map(self, fn: Callable[[Any], Any]) -> Estimate:
        """The same estimate of ``fn(statistic)`` (e.g. ``abs(response - 1)``)."""
        return Estimate(float(fn(self.value)), np.asarray(fn(self.replicas), dtype=np.float64))


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def describe(est: Estimate) -> dict[str, float | None]:
    """``{"value", "error"}`` JSON-ready (None for NaN)."""
    return {"value": _num(est.value), "error": _num(est.error)}


def compare(a: Estimate, b: Estimate, *, lower_is_better: bool) -> dict[str, Any]:
    """Paired comparison of ``a`` (e.g. MLPF) with ``b`` (the baseline) on the same replicas.

    Returns:
        JSON-ready ``{"difference": {value, error}, "relative_difference": {value, error},
        "lower_is_better", "better", "at_least_as_good"}``; ``relative_difference`` is
        ``a / b - 1``. ``better``: the improvement exceeds 2 sigma of the difference;
        ``at_least_as_good``: ``a`` is not worse by more than 1 sigma (or by more than float32
        round-off, ``ROUNDOFF`` times the values, when sigma is smaller). Verdicts are None when
        either value is undefined.
    """
    diff = Estimate(a.value - b.value, a.replicas - b.replicas)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = Estimate(
            a.value / b.value - 1.0 if b.value else float("nan"),
            np.where(b.replicas != 0, a.replicas / b.replicas - 1.0, np.nan),
        )
    d, err = diff.value, diff.error
    gain = -d if lower_is_better else d  # > 0: a is better
    # float32 round-off (e.g. a phi passed through sin/cos) is no difference
    tol = max(err, ROUNDOFF * max(abs(a.value), abs(b.value)))
    if not (np.isfinite(d) and np.isfinite(err)):
        better = at_least = None
    else:
        better = bool(gain > 2.0 * err and gain > tol)
        at_least = bool(gain >= -tol)
    return {
        "difference": describe(diff),
        "relative_difference": describe(rel),
        "lower_is_better": lower_is_better,
        "better": better,
        "at_least_as_good": at_least,
    }
