"""Neighbour graphs within a radius (and at most k neighbours) through a k-d tree.

For low-dimensional embeddings (D <= ~12) a k-d tree (``scipy.spatial.cKDTree``) finds the k
nearest neighbours of N points in O(N log N) time and O(N k) memory, where the dense blocks of
:func:`particlegraph.graph.knn.knn_graph` cost O(N^2) distances. Used to build the graph of hits
in a learned embedding (metric learning, Exa.TrkX); the tree runs on the CPU.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor


def radius_graph(
    x: Tensor,
    r: float = math.inf,
    k: int = 32,
    batch: Tensor | None = None,
    *,
    loop: bool = False,
    workers: int = 1,
) -> Tensor:
    """Edges from each point's neighbours within distance ``r`` (at most ``k``, nearest first).

    Args:
        x: coordinates (N, D), any device (the search runs on the CPU in float64).
        r: radius; ``inf`` gives plain kNN.
        k: maximum neighbours per point (the point itself not counted unless ``loop``).
        batch: (N,) event index per point (sorted); points connect within their event only.
        loop: include the self-edge (i, i).
        workers: threads of the tree query (-1: all cores).

    Returns:
        ``edge_index`` (2, E) long on ``x.device``; row 0 = source (neighbour j), row 1 = target
        (query i), grouped by target in ascending order, nearest neighbours first.

    Shapes:
        x (N, D), batch (N,) -> (2, E), E <= N * k
    """
    from scipy.spatial import cKDTree

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
    n = x.size(0)
    pts = x.detach().double().cpu().numpy()
    bounds = [0, n]
    if batch is not None and n:
        b = batch.detach().cpu().numpy()
        if np.any(b[1:] < b[:-1]):
            raise ValueError("batch must be sorted in ascending order")
        bounds = [0, *(np.flatnonzero(b[1:] != b[:-1]) + 1).tolist(), n]
    sources, targets = [], []
    for lo, hi in itertools.pairwise(bounds):
        m = hi - lo
        if m == 0:
            continue
        kk = min(k + (0 if loop else 1), m)  # the query returns the point itself first
        tree = cKDTree(pts[lo:hi])
        dist, idx = tree.query(pts[lo:hi], k=kk, distance_upper_bound=r, workers=workers)
        dist, idx = dist.reshape(m, kk), idx.reshape(m, kk)
        tgt = np.broadcast_to(np.arange(m)[:, None], idx.shape)
        valid = np.isfinite(dist) & (idx < m)
        if not loop:
            valid &= idx != tgt
        sources.append(idx[valid] + lo)
        targets.append(tgt[valid] + lo)
    if not sources:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    ei = np.stack([np.concatenate(sources), np.concatenate(targets)])
    return torch.from_numpy(ei.astype(np.int64)).to(x.device)


def radius_graph_bruteforce(
    x: Tensor, r: float = math.inf, k: int = 32, *, loop: bool = False
) -> Tensor:
    """Reference: a full (N, N) distance matrix. O(N^2) memory; for tests."""
    d = torch.cdist(x.double(), x.double())
    if not loop:
        d.fill_diagonal_(math.inf)
    d = d.masked_fill(d > r, math.inf)
    kk = min(k, x.size(0))
    dist, idx = torch.topk(d, kk, dim=1, largest=False)
    tgt = torch.arange(x.size(0), device=x.device)[:, None].expand(-1, kk)
    valid = torch.isfinite(dist)
    return torch.stack([idx[valid], tgt[valid]])
