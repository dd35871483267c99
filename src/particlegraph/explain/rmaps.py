"""Relevance maps: aggregations of sparse (target element, source element, feature) relevance.

The LRP engine returns, for one explained output neuron, the relevance ``R[t, s, f]`` of input
feature ``f`` of source element ``s`` for the output at target element ``t``, stored sparsely as
pairs (``target`` (P,), ``source`` (P,), ``values`` (P, F)). This module turns that into

* a relevance map of one target: its own row of F feature relevances followed by the rows of its
  ``K`` most relevant neighbours (ranked by |sum over features|), shape (1 + K, F);
* the same maps averaged over many targets, per true class and split into correct / wrong
  predictions (:class:`ClassMapAccumulator`);
* per-class histograms of each feature's relevance (:class:`FeatureHistogram`);
* per-element and per-edge totals for event displays and flipping.

Maps to be averaged are first normalised per target by its total absolute relevance
``sum_{s,f} |R[t, s, f]|``, so every target weighs the same and map entries are fractions in
[-1, 1] whatever the size of the explained output. Targets with zero total relevance are skipped.

Everything works on plain arrays (numpy or torch) through :func:`as_pairs`, so any object with
``target``, ``source`` and ``values`` attributes (the engine's ``SparseRelevance``) can be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from particlegraph.errors import ConfigError


class Pairs(NamedTuple):
    """Sparse relevance as numpy arrays: ``target`` (P,), ``source`` (P,), ``values`` (P, F)."""

    target: np.ndarray
    source: np.ndarray
    values: np.ndarray


def _np(a: Any, dtype: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def as_pairs(rel: Any) -> Pairs:
    """Numpy view of a ``SparseRelevance``-like object (``target``, ``source``, ``values``)."""
    target = _np(rel.target, np.int64).reshape(-1)
    source = _np(rel.source, np.int64).reshape(-1)
    values = _np(rel.values, np.float64)
    if values.ndim != 2 or values.shape[0] != target.size or source.size != target.size:
        raise ConfigError(
            f"sparse relevance needs target (P,), source (P,), values (P, F); got "
            f"{target.shape}, {source.shape}, {values.shape}"
        )
    return Pairs(target, source, values)


def source_feature_relevance(rel: Any, num_elements: int | None = None) -> np.ndarray:
    """(N, F) relevance of each source element's features summed over all explained targets."""
    p = as_pairs(rel)
    n = _num_elements(rel, p, num_elements)
    return _scatter_rows(p.source, p.values, n)


def target_feature_relevance(rel: Any, targets: np.ndarray) -> np.ndarray:
    """(T, F) relevance per feature for each target in ``targets``, summed over its sources."""
    p = as_pairs(rel)
    row = row_of(np.asarray(targets, np.int64), p.target)
    keep = row >= 0
    return _scatter_rows(row[keep], p.values[keep], len(targets))


def target_abs_total(rel: Any, targets: np.ndarray) -> np.ndarray:
    """(T,) total absolute relevance ``sum_{s,f} |R[t, s, f]|`` for each target."""
    p = as_pairs(rel)
    row = row_of(np.asarray(targets, np.int64), p.target)
    keep = row >= 0
    return np.bincount(
        row[keep], weights=np.abs(p.values[keep]).sum(axis=1), minlength=len(targets)
    )


def edge_relevance(rel: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (target, source) pair with target != source: ``(target, source, relevance)``.

    The relevance of a pair is summed over features; self pairs are left out (they are the
    element's own relevance, not an edge).
    """
    p = as_pairs(rel)
    keep = p.target != p.source
    return p.target[keep], p.source[keep], p.values[keep].sum(axis=1)


def _scatter_rows(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, F) sums of the rows of ``values`` (P, F) grouped by ``index`` (P,); bincount is fast."""
    if values.shape[1] == 0:
        return np.zeros((n, 0))
    cols = [np.bincount(index, weights=values[:, f], minlength=n) for f in range(values.shape[1])]
    return np.stack(cols, axis=1)


def _num_elements(rel: Any, p: Pairs, num_elements: int | None) -> int:
    if num_elements is None:
        num_elements = getattr(rel, "num_elements", None)
    if num_elements is None:
        num_elements = int(max(p.target.max(initial=-1), p.source.max(initial=-1)) + 1)
    return int(num_elements)


def row_of(targets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each id in ``targets`` (unique), -1 where absent."""
    if targets.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    order = np.argsort(targets)
    pos = np.clip(np.searchsorted(targets[order], ids), 0, targets.size - 1)
    found = targets[order][pos] == ids
    return np.where(found, order[pos], -1)


@dataclass(frozen=True)
class RelevanceMap:
    """Relevance map of one target element.

    Attributes:
        target: index of the explained element.
        sources: (1 + K,) element indices of the rows; row 0 is the target itself, -1 marks a
            padding row (fewer than K neighbours).
        values: (1 + K, F) relevance of each row's features (not normalised).
        total: sum of all relevance of this target (all sources, all features).
    """

    target: int
    sources: np.ndarray
    values: np.ndarray
    total: float


def neighbour_maps(
    rel: Any, targets: np.ndarray | None = None, *, num_neighbours: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevance maps of many targets at once, vectorised.

    Args:
        rel: sparse relevance (see :func:`as_pairs`).
        targets: (T,) targets to map; default every target present in ``rel``.
        num_neighbours: K, the number of most relevant neighbours kept after the self row.

    Returns:
        ``targets`` (T,), ``sources`` (T, 1 + K) element index per row (-1 padding, row 0 is the
        target itself or -1 if it has no self relevance), ``maps`` (T, 1 + K, F).
    """
    if num_neighbours < 0:
        raise ConfigError(f"num_neighbours must be >= 0; got {num_neighbours}")
    p = as_pairs(rel)
    if targets is None:
        targets = np.unique(p.target)
    targets = np.asarray(targets, np.int64)
    k1 = num_neighbours + 1
    num_features = p.values.shape[1]
    maps = np.zeros((targets.size, k1, num_features))
    sources = np.full((targets.size, k1), -1, dtype=np.int64)
    row = row_of(targets, p.target)
    keep = row >= 0
    row, src, vals, tgt = row[keep], p.source[keep], p.values[keep], p.target[keep]
    is_self = src == tgt
    maps[row[is_self], 0] = vals[is_self]
    sources[row[is_self], 0] = src[is_self]
    # Neighbours: sort by (row, decreasing |sum over features|) and keep the first K of each row.
    nb = ~is_self
    row_nb, src_nb, vals_nb = row[nb], src[nb], vals[nb]
    score = np.abs(vals_nb.sum(axis=1))
    order = np.lexsort((src_nb, -score, row_nb))  # ties broken by element index: deterministic
    row_sorted = row_nb[order]
    starts = (
        np.r_[0, np.flatnonzero(np.diff(row_sorted)) + 1] if row_sorted.size else np.zeros(0, int)
    )
    lengths = np.diff(np.r_[starts, row_sorted.size])
    rank = np.arange(row_sorted.size) - np.repeat(starts, lengths)
    top = rank < num_neighbours
    sel = order[top]
    maps[row_nb[sel], 1 + rank[top]] = vals_nb[sel]
    sources[row_nb[sel], 1 + rank[top]] = src_nb[sel]
    return targets, sources, maps


def relevance_map(rel: Any, target: int, *, num_neighbours: int = 8) -> RelevanceMap:
    """Relevance map (self row + K most relevant neighbours x features) of one target element."""
    p = as_pairs(rel)
    if not np.any(p.target == target):
        raise ConfigError(f"element {target} is not among the explained targets")
    _, sources, maps = neighbour_maps(rel, np.array([target]), num_neighbours=num_neighbours)
    total = float(p.values[p.target == target].sum())
    return RelevanceMap(target=int(target), sources=sources[0], values=maps[0], total=total)


class ClassMapAccumulator:
    """Running mean of normalised relevance maps per true class, split correct / wrong.

    ``result()["mean"]`` has shape (C, 2, 1 + K, F): index 0 of the second axis holds targets
    whose predicted class equals the true class, index 1 the others; ``result()["count"]`` is
    (C, 2). Maps are normalised per target by its total absolute relevance (module docstring).
    """

    def __init__(self, num_classes: int, num_features: int, num_neighbours: int = 8) -> None:
        self.num_neighbours = num_neighbours
        self.sum = np.zeros((num_classes, 2, num_neighbours + 1, num_features))
        self.count = np.zeros((num_classes, 2), dtype=np.int64)

    def add(self, rel: Any, true_class: Any, pred_class: Any, targets: Any = None) -> None:
        """Add the targets of one event; ``true_class``/``pred_class`` are (N,) per element."""
        true = _np(true_class, np.int64)
        pred = _np(pred_class, np.int64)
        tgts, _, maps = neighbour_maps(
            rel,
            None if targets is None else _np(targets, np.int64),
            num_neighbours=self.num_neighbours,
        )
        norm = target_abs_total(rel, tgts)
        ok = norm > 0
        tgts, maps, norm = tgts[ok], maps[ok], norm[ok]
        maps = maps / norm[:, None, None]
        cls = true[tgts]
        if np.any((cls < 0) | (cls >= self.sum.shape[0])):
            raise ConfigError(f"true classes must lie in 0..{self.sum.shape[0] - 1}")
        wrong = (pred[tgts] != cls).astype(np.int64)
        np.add.at(self.sum, (cls, wrong), maps)
        np.add.at(self.count, (cls, wrong), 1)

    def result(self) -> dict[str, np.ndarray]:
        """``mean`` (C, 2, 1 + K, F), zero where no target was seen, and ``count`` (C, 2)."""
        denom = np.maximum(self.count, 1)[:, :, None, None]
        return {"mean": self.sum / denom, "count": self.count.copy()}


class FeatureHistogram:
    """Per-class histograms of the relevance fraction of each input feature.

    For a target t the value of feature f is ``sum_s R[t, s, f] / sum_{s,f} |R[t, s, f]|`` in
    [-1, 1] (the feature's share of the target's relevance, neighbours included). ``counts`` has
    shape (C, F, B) for B bins; values outside the edges are clipped into the outer bins.
    """

    def __init__(self, num_classes: int, num_features: int, bins: np.ndarray | int = 40) -> None:
        self.edges = np.linspace(-1.0, 1.0, bins + 1) if isinstance(bins, int) else np.asarray(bins)
        self.counts = np.zeros((num_classes, num_features, self.edges.size - 1), dtype=np.int64)

    def add(self, rel: Any, true_class: Any, targets: Any = None) -> None:
        """Add the targets of one event; ``true_class`` is (N,) per element."""
        p = as_pairs(rel)
        tgts = np.unique(p.target) if targets is None else _np(targets, np.int64)
        norm = target_abs_total(rel, tgts)
        ok = norm > 0
        tgts = tgts[ok]
        frac = target_feature_relevance(rel, tgts) / norm[ok][:, None]  # (T, F)
        cls = _np(true_class, np.int64)[tgts]
        nbins = self.edges.size - 1
        b = np.clip(np.searchsorted(self.edges, frac, side="right") - 1, 0, nbins - 1)
        num_features = frac.shape[1]
        feat = np.broadcast_to(np.arange(num_features), frac.shape)
        np.add.at(self.counts, (np.broadcast_to(cls[:, None], frac.shape), feat, b), 1)


def restrict_targets(rel: Any, targets: Any) -> Pairs:
    """The pairs of ``rel`` whose target is in ``targets`` (e.g. the elements of one class)."""
    p = as_pairs(rel)
    keep = np.isin(p.target, _np(targets, np.int64))
    return Pairs(p.target[keep], p.source[keep], p.values[keep])
