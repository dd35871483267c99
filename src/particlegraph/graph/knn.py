"""k-nearest-neighbour graphs in plain PyTorch, chunked so memory stays linear in N.

PyG's ``knn_graph`` needs ``torch-cluster``/``pyg-lib``, which are not available on every platform; this
module computes the same graph with dense distance blocks of ``chunk_size`` query points against the points
of their own event only. Peak memory is ``O(chunk_size * max_event_size)`` and the output ``O(N * k)``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

#: Default size of one distance block, in entries (64 MB of float32), so memory stays linear in N.
BLOCK_ENTRIES = 1 << 24


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    *,
    loop: bool = True,
    chunk_size: int | None = 0,
) -> Tensor:
    """Edges from each point's ``k`` nearest neighbours (Euclidean) to the point itself.

    Query points are processed in chunks; each chunk is compared only with the points of the events
    it touches, so a block holds ``chunk_size * max_event_size`` distances.

    Args:
        x: point coordinates, shape (N, D).
        k: number of neighbours per point (fewer when an event has fewer candidates).
        batch: event index per point, shape (N,), sorted ascending (PyG convention); ``None`` = one event.
        loop: count the point itself as one of its neighbours (always the first one).
        chunk_size: query points per block; ``0`` (default) picks it so a block has at most
            :data:`BLOCK_ENTRIES` entries; ``None`` computes one (N, N) block (simplest to export).

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
        ptr = [0, n]
    else:
        if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError("batch must be sorted in ascending order")
        counts = torch.bincount(batch).tolist()  # one host sync for the whole graph
        ptr = [0]
        for c in counts:
            ptr.append(ptr[-1] + c)
    sizes = [b - a for a, b in itertools.pairwise(ptr)]
    need = k if loop else k + 1
    all_full = min(s for s in sizes if s > 0) >= need
    if chunk_size == 0:
        chunk_size = max(1, BLOCK_ENTRIES // max(sizes))
    step = n if chunk_size is None else int(chunk_size)

    sq = (x * x).sum(-1)  # (N,)
    sources, targets = [], []
    ev = 0  # event of the first query of the current chunk
    for start in range(0, n, step):
        stop = min(start + step, n)
        while ptr[ev + 1] <= start:
            ev += 1
        ev_last = ev
        while ptr[ev_last + 1] < stop:
            ev_last += 1
        lo, hi = ptr[ev], ptr[ev_last + 1]  # candidates: the events touched by this chunk
        q, c = x[start:stop], x[lo:hi]  # (C, D), (M, D)
        # |q - c|^2 up to the per-row constant |q|^2, which does not change the ranking of a row.
        d2 = torch.addmm(sq[None, lo:hi], q, c.T, alpha=-2.0)  # (C, M)
        if ev_last != ev:
            assert batch is not None
            d2 = d2.masked_fill(batch[start:stop, None] != batch[None, lo:hi], math.inf)
        rows = torch.arange(stop - start, device=device)
        d2[rows, rows + (start - lo)] = -math.inf if loop else math.inf  # self first, or never
        kk = min(k, hi - lo)
        dist, idx = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # (C, kk)
        tgt = torch.arange(start, stop, device=device)[:, None].expand(-1, kk)
        if all_full and kk == k:
            sources.append((idx + lo).reshape(-1))
            targets.append(tgt.reshape(-1))
        else:
            valid = dist < math.inf
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
