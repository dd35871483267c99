"""Exact kNN of one large event in about linear time: the dense search's edges, bit for bit.

The dense search of :func:`~particlegraph.graph.knn.knn_graph` ranks the candidates of a query
``q`` by the float32 value ``d'(q, c) = fl(|c|^2 - 2 q.c)`` of one ``addmm`` and keeps the k
smallest (``topk``); it costs O(n^2) per event (4 x 12,800^2 distances and their selection per
GravNet layer at 12,800 elements). Here a k-d tree (:class:`scipy.spatial.cKDTree`, float64)
finds for each query a candidate set that provably holds its k dense neighbours, and the same
``addmm`` formula is evaluated on those candidates only, a tile of spatially close queries
against the union of their candidates, so every value is the dense search's value:

- bound: with ``r_k`` the k-th smallest exact distance of the query (from the tree) and
  ``delta`` a bound of the float32 error of ``d'`` (:data:`ERROR_ULPS` units of float32
  round-off times ``(|q| + max |c|)^2``), every point farther than ``r_k^2 + 2 delta`` has a
  float32 value strictly above those of the k nearest, so it is never selected;
- same values: the ``addmm`` of a tile (at least :data:`MIN_ROWS` queries against at least
  :data:`MIN_COLS` candidates) gives the same float32 bits as the dense block for each entry
  (checked on this machine's BLAS at every call: a tile's rows are also searched densely and
  must agree, else the caller falls back to the dense search);
- same order: ``topk`` of a tile returns the same sorted neighbours as the dense row unless two
  of the first k + 1 values are equal (exact float ties, e.g. duplicated points), where the
  choice depends on the row's layout; such rows are searched densely.

Used on CPU for single events of at least ``knn.PRUNED_MIN_POINTS`` points with loops or without.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

#: Margin on the float32 error bound of ``fl(|c|^2 - 2 q.c)``: the error is at most
#: ``(D + 1) u (|q| + |c|)^2`` (D-term sums for ``|c|^2`` and ``q.c``, one subtraction; u the
#: unit round-off, half of float32's eps); the bound used is this many times that.
ERROR_MARGIN = 4.0
#: Queries per tile (spatially close: consecutive leaves of the k-d tree).
TILE = 64
#: Smallest tile shape searched with ``addmm``: below 4 rows or 12 columns MKL takes other
#: kernels whose values differ from the dense block's in the last bit (measured); with margin.
MIN_ROWS, MIN_COLS = 16, 32
#: Neighbours asked of the tree per point beyond the k needed; a query whose bound reaches
#: beyond them (about 1 % of random 4-D points with 1 extra, none with 4) gets a ball query.
TREE_EXTRA = 2
#: Above this fraction of such queries (coordinates far from the origin compared with their
#: spacing: the float32 ranking is then mostly round-off and the bound holds most points) the
#: pruned search gives up and the caller runs the dense one.
MAX_LOOSE = 0.125


def _search(
    c: Tensor, sq: Tensor, rows: Tensor, cols: Tensor | None, kk: int, loop: bool
) -> tuple[Tensor, Tensor]:
    """Queries ``rows`` (R,) of event ``c`` (M, D) against candidates ``cols`` (U,) ascending
    (None: all M, the dense search): ``(values (R, kk + 1), neighbours (R, kk))``, values
    (R, kk) for the dense search.

    The same ``addmm`` and ``topk`` as the dense blocks of ``knn._exact_blocks``; fewer than
    :data:`MIN_ROWS` rows are padded with others (a smaller product may round differently).
    """
    pad = rows if len(rows) >= MIN_ROWS else torch.cat([rows, torch.arange(MIN_ROWS)])
    if cols is None:
        d2 = torch.addmm(sq[None, :], c[pad], c.T, alpha=-2.0)  # (R, M)
        self_pos = pad
    else:
        d2 = torch.addmm(sq[cols][None, :], c[pad], c[cols].T, alpha=-2.0)  # (R, U)
        self_pos = torch.searchsorted(cols, pad)  # the tree always finds the point itself
    d2[torch.arange(len(pad)), self_pos] = -math.inf if loop else math.inf
    # the dense search takes kk exactly as the dense blocks do (topk orders exact ties by k)
    take = kk if cols is None else min(kk + 1, d2.shape[1])
    vals, pos = torch.topk(d2, take, dim=1, largest=False, sorted=True)
    nbr = pos[: len(rows), :kk] if cols is None else cols[pos[: len(rows), :kk]]
    return vals[: len(rows)], nbr


def _candidates(
    c64: np.ndarray, kk: int, loop: bool, workers: int
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray] | None:
    """Candidates of every query (indices into the event) holding its dense neighbours.

    Returns the tree's nearest ``(M, need + TREE_EXTRA)`` for every point, the full ball of
    the queries whose bound reaches beyond them (``{row: indices}``), and the tree's leaf order
    of the points (spatially close runs: the tiles); None when too many queries need a ball.
    """
    from scipy.spatial import cKDTree

    m, dim = c64.shape
    tree = cKDTree(c64)
    need = kk if loop else kk + 1  # the tree's list includes the point itself
    kq = min(m, need + TREE_EXTRA)
    dist, idx = tree.query(c64, k=kq, workers=workers)
    norm = np.sqrt((c64 * c64).sum(1))
    unit = float(np.finfo(np.float32).eps) / 2
    delta = ERROR_MARGIN * (dim + 1) * unit * (norm + norm.max()) ** 2
    bound = (dist[:, need - 1] ** 2 + 2 * delta) * (1 + 1e-9) + 1e-300
    loose = np.nonzero(dist[:, kq - 1] ** 2 <= bound)[0] if kq < m else np.zeros(0, np.int64)
    if len(loose) > MAX_LOOSE * m:
        return None
    balls: dict[int, np.ndarray] = {}
    if len(loose):
        found = tree.query_ball_point(c64[loose], np.sqrt(bound[loose]), workers=workers)
        balls = {
            i: np.asarray(ball, dtype=np.int64)
            for i, ball in zip(loose.tolist(), found, strict=True)
        }
    return idx.astype(np.int64), balls, np.asarray(tree.indices, dtype=np.int64)


def pruned_exact_event(
    x: Tensor, sq: Tensor, lo: int, hi: int, k: int, *, loop: bool
) -> tuple[Tensor, Tensor] | None:
    """kNN of rows ``lo:hi`` of ``x`` (one event, CPU) equal to the dense search's.

    Args:
        x: (N, D) float32 points; sq: (N,) ``|x|^2`` as the dense search computes it.
        lo, hi: the event's rows; k, loop: as in :func:`~particlegraph.graph.knn.knn_graph`.

    Returns:
        ``(source, target)`` (E,) each with global row numbers, grouped by target in ascending
        order, neighbours by distance; None when the result cannot be vouched for (non-finite
        points, too few points, or this BLAS rounds a tile differently from the dense block):
        the caller then runs the dense search.
    """
    c = x[lo:hi]
    m = c.shape[0]
    kk = min(k, m)
    need = kk if loop else kk + 1
    if m < max(4 * TILE, MIN_COLS, 4 * (need + TREE_EXTRA)) or not bool(torch.isfinite(c).all()):
        return None
    sq_c = sq[lo:hi]
    found = _candidates(c.double().numpy(), kk, loop, max(1, torch.get_num_threads()))
    if found is None:
        return None
    idx, balls, leaf_order = found
    out = torch.empty(m, kk, dtype=torch.long)
    redo: list[Tensor] = []
    bounds = np.linspace(0, m, m // TILE + 1).round().astype(np.int64).tolist()
    for t, (a, b) in enumerate(itertools.pairwise(bounds)):  # tiles of TILE to 2 TILE - 1
        rows_np = leaf_order[a:b]
        parts = [idx[rows_np].ravel()]
        parts += [balls[i] for i in rows_np.tolist() if i in balls] if balls else []
        union = np.unique(np.concatenate(parts))
        if len(union) < MIN_COLS:  # widen tiny unions (never the case for k >= 16)
            union = np.union1d(union, np.arange(MIN_COLS))
        rows = torch.from_numpy(rows_np)
        vals, out[rows] = _search(c, sq_c, rows, torch.from_numpy(union), kk, loop)
        tie = (vals[:, 1:] == vals[:, :-1]).any(1)  # exact ties: topk's choice is the layout's
        redo.append(rows[tie])
        if t == 0:  # this BLAS must round a tile as the dense block: compare with the dense rows
            dense_vals, dense_nbr = _search(c, sq_c, rows, None, kk, loop)
            if not (
                torch.equal(vals[:, :kk], dense_vals)
                and torch.equal(out[rows][~tie], dense_nbr[~tie])
            ):
                return None
    rows = torch.cat(redo)
    if len(rows):
        out[rows] = _search(c, sq_c, rows, None, kk, loop)[1]
    tgt = torch.arange(lo, hi)[:, None].expand(-1, kk)
    return (out + lo).reshape(-1), tgt.reshape(-1)
