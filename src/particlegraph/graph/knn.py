"""k-nearest-neighbour graphs in plain PyTorch, chunked so memory stays linear in N.

PyG's ``knn_graph`` needs ``torch-cluster``/``pyg-lib``, which are not available on every platform; this
module computes the same graph with dense distance blocks of ``chunk_size`` query points against the points
of their own event only. Peak memory is ``O(chunk_size * max_event_size)`` and the output ``O(N * k)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _ptr_from_batch(batch: Tensor, num_nodes: int) -> Tensor:
    """Offsets (B+1,) of each event in a sorted batch vector."""
    num_events = int(batch.max()) + 1 if num_nodes > 0 else 0
    counts = torch.bincount(batch, minlength=num_events)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    *,
    loop: bool = True,
    chunk_size: int | None = 2048,
) -> Tensor:
    """Edges from each point's ``k`` nearest neighbours (Euclidean) to the point itself.

    Args:
        x: point coordinates, shape (N, D).
        k: number of neighbours per point (fewer when an event has fewer candidates).
        batch: event index per point, shape (N,), sorted ascending (PyG convention); ``None`` = one event.
        loop: count the point itself as one of its neighbours (distance 0).
        chunk_size: query points per distance block; ``None`` computes one (N, N) block, which is
            simplest to trace/export for a single small event.

    Returns:
        ``edge_index`` (2, E) long, row 0 = source (neighbour j), row 1 = target (query i), grouped by
        target in ascending order, neighbours of a target ordered by distance. ``E = N * k`` when every
        event has at least ``k`` (``k + 1`` without loops) points.

    Shapes:
        x (N, D), batch (N,) -> (2, E)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
    n = x.size(0)
    device = x.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in ascending order")
    ptr = _ptr_from_batch(batch, n)

    step = n if chunk_size is None else max(1, int(chunk_size))
    sources, targets = [], []
    sq = (x * x).sum(-1)  # (N,)
    for start in range(0, n, step):
        stop = min(start + step, n)
        b0, b1 = int(batch[start]), int(batch[stop - 1])
        lo, hi = int(ptr[b0]), int(ptr[b1 + 1])  # candidates: the events touched by this chunk
        q, c = x[start:stop], x[lo:hi]  # (C, D), (M, D)
        d2 = sq[start:stop, None] + sq[None, lo:hi] - 2.0 * (q @ c.T)  # (C, M)
        d2 = d2.clamp_min_(0.0)
        same = batch[start:stop, None] == batch[None, lo:hi]
        if loop:
            # Exact zero self-distance, so rounding never ranks a neighbour before the point itself.
            rows = torch.arange(stop - start, device=device)
            d2[rows, rows + (start - lo)] = 0.0
        else:
            rows = torch.arange(stop - start, device=device)
            same[rows, rows + (start - lo)] = False
        d2 = d2.masked_fill(~same, math.inf)
        kk = min(k, hi - lo)
        dist, idx = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # (C, kk)
        valid = torch.isfinite(dist)
        tgt = torch.arange(start, stop, device=device)[:, None].expand(-1, kk)
        sources.append((idx + lo)[valid])
        targets.append(tgt[valid])
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def knn_graph_bruteforce(
    x: Tensor, k: int, batch: Tensor | None = None, *, loop: bool = True
) -> Tensor:
    """Reference: one full (N, N) distance matrix with ``torch.cdist``. O(N^2) memory; for tests."""
    n = x.size(0)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    d = torch.cdist(x.double(), x.double())
    d = d.masked_fill(batch[:, None] != batch[None, :], math.inf)
    if not loop:
        d.fill_diagonal_(math.inf)
    kk = min(k, n)
    dist, idx = torch.topk(d, kk, dim=1, largest=False)
    tgt = torch.arange(n, device=x.device)[:, None].expand(-1, kk)
    valid = torch.isfinite(dist)
    return torch.stack([idx[valid], tgt[valid]])
