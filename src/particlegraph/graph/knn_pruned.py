"""Exact kNN of one large event in about linear time: the dense search's edges, bit for bit.

The dense search of :func:`~particlegraph.graph.knn.knn_graph` ranks the candidates of a query
``q`` by the float32 value ``d'(q, c) = fl(|c|^2 - 2 q.c)`` of one ``addmm`` and keeps the k
smallest (``topk``); it costs O(n^2) per event (4 x 12,800^2 distances and their selection per
GravNet layer at 12,800 elements). Here a k-d tree (:class:`scipy.spatial.cKDTree`, float64)
finds for each query a candidate set that provably holds its k dense neighbours, and the same
formula is evaluated on those candidates only, tiles of spatially close queries against the
union of their candidates, so every value is the dense search's value:

- bound: with ``r_k`` the k-th smallest exact distance of the query (from the tree) and
  ``delta`` a bound of the float32 error of ``d'`` (:data:`ERROR_MARGIN` times its worst case,
  proportional to ``(|q| + max |c|)^2``), every point farther than ``r_k^2 + 2 delta`` has a
  float32 value strictly above those of the k nearest, so it is never selected;
- same values: the ``baddbmm`` of the tiles (:data:`TILE` queries against at least
  :data:`MIN_COLS` candidates each) gives the same float32 bits as the dense ``addmm`` for each
  entry (measured with MKL; checked at every call: the first tile's rows are also searched
  densely and must agree, values included, else the caller falls back to the dense search);
- same order: ``topk`` of a tile returns the same sorted neighbours as the dense row unless two
  of the first k + 1 values are equal (exact float ties, e.g. duplicated points), where the
  choice depends on the row's layout; such rows are searched densely.

Used on CPU for single events of at least ``knn.PRUNED_MIN_POINTS`` points with loops or without.
"""

from __future__ import annotations

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
#: Distances computed at once (tiles x queries x candidates; 8 MiB of float32).
TILE_BLOCK_VALUES = 1 << 21
#: Smallest products: below 4 rows or 12 columns MKL takes other kernels whose values differ
#: from the dense block's in the last bit (measured); with margin (tiles have TILE rows).
MIN_ROWS, MIN_COLS = 16, 32
#: Neighbours asked of the tree per point beyond the k needed; a query whose bound reaches
#: beyond them (about 1 % of random 4-D points with 1 extra, none with 4) gets a ball query.
TREE_EXTRA = 2
#: Above this fraction of such queries (coordinates far from the origin compared with their
#: spacing: the float32 ranking is then mostly round-off and the bound holds most points) the
#: pruned search gives up and the caller runs the dense one.
MAX_LOOSE = 0.125


def _search(
    c: Tensor, sq: Tensor, rows: Tensor, cols: None, kk: int, loop: bool
) -> tuple[Tensor, Tensor]:
    """The dense search of queries ``rows`` (R,) of event ``c`` (M, D): ``(values (R, kk),
    neighbours (R, kk))``, the same ``addmm`` and ``topk`` as the dense blocks of
    ``knn._exact_blocks``; fewer than :data:`MIN_ROWS` rows are padded with others (a smaller
    product may round differently). ``cols`` is None (all M candidates)."""
    pad = rows if len(rows) >= MIN_ROWS else torch.cat([rows, torch.arange(MIN_ROWS)])
    d2 = torch.addmm(sq[None, :], c[pad], c.T, alpha=-2.0)  # (R, M)
    d2[torch.arange(len(pad)), pad] = -math.inf if loop else math.inf
    vals, pos = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # kk, as the dense blocks
    return vals[: len(rows)], pos[: len(rows)]


def _search_tiles(
    c: Tensor, sq: Tensor, rows: Tensor, cols: Tensor, kk: int, loop: bool
) -> tuple[Tensor, Tensor]:
    """Tiles of queries ``rows`` (B, T) against their candidates ``cols`` (B, U), ascending,
    padded with M: ``(values (B, T, kk + 1), neighbours (B, T, kk))``.

    One ``baddbmm`` (each entry the dense ``addmm``'s value, bit for bit: measured, and
    checked at every call) and one ``topk`` for all the tiles of the block.
    """
    m = c.shape[0]
    safe = cols.clamp(max=m - 1)
    d2 = torch.baddbmm(sq[safe][:, None, :], c[rows], c[safe].transpose(1, 2), alpha=-2.0)
    d2.masked_fill_((cols == m)[:, None, :], math.inf)  # padding: never a neighbour
    self_pos = torch.searchsorted(cols, rows)  # (B, T): every query is its own candidate
    d2.scatter_(2, self_pos[..., None], -math.inf if loop else math.inf)
    vals, pos = torch.topk(d2, kk + 1, dim=2, largest=False, sorted=True)
    nbr = cols.gather(1, pos[..., :kk].reshape(len(cols), -1)).view(*rows.shape, kk)
    return vals, nbr


def _tiles(
    idx: np.ndarray, balls: dict[int, np.ndarray], leaf_order: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Queries in tiles of :data:`TILE` consecutive leaves (B, TILE) (the last one padded by
    repeating its first query) and each tile's candidates: the union of its queries' candidate
    sets, ascending, at least :data:`MIN_COLS`, padded with M to a common width (B, U)."""
    num = -(-m // TILE)
    order = np.concatenate([leaf_order, np.full(num * TILE - m, leaf_order[-1])])
    rows = order.reshape(num, TILE)
    unions = []
    for tile in rows:
        parts = [idx[tile].ravel()]
        parts += [balls[i] for i in tile.tolist() if i in balls] if balls else []
        union = np.unique(np.concatenate(parts))
        if len(union) < MIN_COLS:  # widen tiny unions (never the case for k >= 16)
            union = np.union1d(union, np.arange(MIN_COLS))
        unions.append(union)
    cols = np.full((num, max(len(u) for u in unions)), m, dtype=np.int64)
    for t, union in enumerate(unions):
        cols[t, : len(union)] = union
    return rows, cols


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
    rows_np, cols_np = _tiles(idx, balls, leaf_order, m)
    rows, cols = torch.from_numpy(rows_np), torch.from_numpy(cols_np)
    valid = torch.ones(rows.shape, dtype=torch.bool)
    valid.view(-1)[m:] = False  # the last tile's padding repeats a row: its results are dropped
    out = torch.empty(m, kk, dtype=torch.long)
    tie = torch.empty(rows.shape, dtype=torch.bool)
    step = max(1, TILE_BLOCK_VALUES // (rows.shape[1] * cols.shape[1]))
    for b in range(0, len(rows), step):
        vals, nbr = _search_tiles(c, sq_c, rows[b : b + step], cols[b : b + step], kk, loop)
        keep = valid[b : b + step]
        out[rows[b : b + step][keep]] = nbr[keep]
        tie[b : b + step] = (vals[..., 1:] == vals[..., :-1]).any(-1)  # topk's choice: layout's
        if b == 0:  # this BLAS must round a tile as the dense block: compare with the dense rows
            first = rows[0]
            dense_vals, dense_nbr = _search(c, sq_c, first, None, kk, loop)
            same = torch.equal(vals[0, :, :kk], dense_vals)
            if not (same and torch.equal(nbr[0][~tie[0]], dense_nbr[~tie[0]])):
                return None
    redo = rows[tie & valid]
    if len(redo):
        out[redo] = _search(c, sq_c, redo, None, kk, loop)[1]
    tgt = torch.arange(lo, hi)[:, None].expand(-1, kk)
    return (out + lo).reshape(-1), tgt.reshape(-1)
