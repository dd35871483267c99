"""Candidate pairs between two sets of points within an azimuthal window, vectorised.

The building block of layer-pair ("module map") graphs in tracking: the hits of an inner layer
``a`` are paired with the hits of an outer layer ``b`` whose azimuth lies in
``[phi_a + lo, phi_a + hi]``. The hits of ``b`` are sorted by phi once, the window of every hit of
``a`` is found with two binary searches (``np.searchsorted``), and the windows are expanded into
pairs without a Python loop over hits; the work is O((N_a + N_b) log N_b + pairs). The window
wraps around at +-pi (the sorted azimuths are tiled over (-3 pi, 3 pi)).
"""

from __future__ import annotations

import math

import numpy as np


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Angle differences mapped into [-pi, pi)."""
    return (np.asarray(dphi) + math.pi) % (2.0 * math.pi) - math.pi


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (row, k) with lo[row] <= k < hi[row], as two int64 arrays (row-major order).

    Example: lo = [0, 5], hi = [2, 6] -> rows [0, 0, 1], k [0, 1, 5].
    """
    counts = np.maximum(np.asarray(hi, dtype=np.int64) - np.asarray(lo, dtype=np.int64), 0)
    rows = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    if rows.size == 0:
        return rows, rows.copy()
    starts = np.cumsum(counts) - counts
    k = np.arange(rows.size, dtype=np.int64) - np.repeat(starts, counts) + np.repeat(lo, counts)
    return rows, k


def phi_window_pairs(
    phi_a: np.ndarray, phi_b: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with ``wrap(phi_b[j] - phi_a[i])`` in ``[lo, hi]``.

    Args:
        phi_a: (N_a,) azimuths [rad] of the first set.
        phi_b: (N_b,) azimuths [rad] of the second set.
        lo, hi: the window [rad], ``-pi <= lo <= hi <= pi`` (a window wider than 2 pi is clipped).

    Returns:
        ``(i, j)``: int64 arrays (P,) of indices into ``phi_a`` and ``phi_b``; each pair once.
    """
    phi_a = np.asarray(phi_a, dtype=np.float64)
    phi_b = np.asarray(phi_b, dtype=np.float64)
    if phi_a.size == 0 or phi_b.size == 0 or hi < lo:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    lo, hi = max(lo, -math.pi), min(hi, math.pi - 1e-12)
    order = np.argsort(phi_b, kind="stable")
    sb = phi_b[order]
    n = sb.size
    # tiled copies so that a window crossing +-pi is one contiguous range
    tiled = np.concatenate([sb - 2.0 * math.pi, sb, sb + 2.0 * math.pi])
    start = np.searchsorted(tiled, phi_a + lo, side="left")
    stop = np.searchsorted(tiled, phi_a + hi, side="right")
    stop = np.minimum(stop, start + n)  # never the same hit twice
    i, k = expand_ranges(start, stop)
    return i, order[k % n]


class PhiBins:
    """The points of a set ``b`` split into equal-population bins of a second coordinate ``u``,
    each bin sorted by phi (three copies: -2 pi, 0, +2 pi): built once per set and searched by
    :meth:`pairs` for any number of sets ``a`` (a layer is the outer layer of several pairs).

    Args:
        phi_b, u_b: (N_b,) azimuths [rad] and second coordinates of the set.
        bins: number of u bins (at most N_b).
    """

    def __init__(self, phi_b: np.ndarray, u_b: np.ndarray, bins: int = 16) -> None:
        phi_b = np.asarray(phi_b, dtype=np.float64)
        self.size = int(phi_b.size)
        nb = int(max(1, min(bins, self.size)))
        self.edges = (
            np.quantile(u_b, np.linspace(0.0, 1.0, nb + 1)[1:-1]) if nb > 1 else np.zeros(0)
        )
        bin_b = np.searchsorted(self.edges, u_b, side="right")
        # bins 20 rad apart keep their key ranges apart
        key = np.tile(bin_b, 3) * 20.0 + np.concatenate(
            [phi_b - 2.0 * math.pi, phi_b, phi_b + 2.0 * math.pi]
        )
        self.order = np.argsort(key, kind="stable")
        self.skey = key[self.order]

    def pairs(
        self, phi_a: np.ndarray, u_lo: np.ndarray, u_hi: np.ndarray, lo: float, hi: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, j) as :func:`binned_window_pairs` with this set as ``b``."""
        phi_a = np.asarray(phi_a, dtype=np.float64)
        if phi_a.size == 0 or self.size == 0 or hi < lo:
            e = np.zeros(0, dtype=np.int64)
            return e, e.copy()
        lo, hi = max(lo, -math.pi), min(hi, math.pi - 1e-12)
        first = np.searchsorted(self.edges, u_lo, side="right")
        last = np.searchsorted(self.edges, u_hi, side="right")
        rows, b = expand_ranges(first, last + 1)
        base = b * 20.0 + phi_a[rows]
        start = np.searchsorted(self.skey, base + lo, side="left")
        stop = np.searchsorted(self.skey, base + hi, side="right")
        k_rows, k = expand_ranges(start, stop)
        i = rows[k_rows]
        j = self.order[k] % self.size
        if hi - lo > math.pi:  # a window wider than pi could meet one point through two copies
            uniq = np.unique(i * self.size + j)
            i, j = uniq // self.size, uniq % self.size
        return i, j


def binned_window_pairs(
    phi_a: np.ndarray,
    u_lo: np.ndarray,
    u_hi: np.ndarray,
    phi_b: np.ndarray,
    u_b: np.ndarray,
    lo: float,
    hi: float,
    bins: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with ``wrap(phi_b[j] - phi_a[i])`` in ``[lo, hi]`` whose second coordinate
    ``u_b[j]`` lies in a bin touching ``[u_lo[i], u_hi[i]]``.

    A superset of the pairs with ``u_lo[i] <= u_b[j] <= u_hi[i]`` (cut exactly afterwards):
    the points of ``b`` are split into ``bins`` equal-population bins of ``u``, each sorted by
    phi (:class:`PhiBins`), and every (point of ``a``, overlapping bin) pair gets its own
    binary searches, so the work follows the pairs that survive both windows rather than the
    phi window alone.

    Args:
        phi_a: (N_a,) [rad]; u_lo, u_hi: (N_a,) interval of the second coordinate per point.
        phi_b, u_b: (N_b,) the second set.
        lo, hi: the phi window [rad] (as :func:`phi_window_pairs`).
        bins: number of u bins (at most N_b).

    Returns:
        ``(i, j)`` int64 (P,), each pair at most once.
    """
    return PhiBins(phi_b, u_b, bins).pairs(phi_a, u_lo, u_hi, lo, hi)
