"""Padded dense event graphs: the (B, n <= 40) blocks that batched scoring works on.

An anomaly graph has at most 40 nodes, so a batch of B events fits in (B, 40, 40) blocks and
every step of scoring becomes one batched tensor operation (``bmm``, ``topk``, elementwise)
with no per-event Python. Two ways in, giving the same :class:`DenseGraphs`:

- :func:`dense_graphs`: from collated PyG graphs (:class:`~.scores.GraphBatch`, any edge list);
- :func:`dense_events`: straight from PF candidates, without building a ``Data`` per event: the
  leading candidates padded to (B, n, 5), the eta-phi kNN as one batched top-k on the (B, n, n)
  distance block (:func:`knn_dense`, same distances and the same tie rule as
  :func:`particlegraph.graph.etaphi.knn_etaphi`, so the same edges), the adjacency built densely.

The GCN-normalised adjacency is PyG's ``gcn_norm``: ``a_hat = D^-1/2 (A + I) D^-1/2`` with D
the in-degree plus the self loop; rows and columns of padded nodes are zero.

Shapes: ``x`` (B, n, 5) raw features, ``mask`` (B, n), ``a_hat`` (B, n, n) [target, source],
``edges`` (E,) flat positions ``(b n + i) n + j`` of the positive edges ``j -> i``. ``a_hat`` is
the transpose (a view) of a contiguous [source, target] block: the GCN aggregation is computed
as ``(h^T a_hat^T)^T`` (:func:`~.models.dense_gcn`), which is faster on a CPU with few channels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from particlegraph.physics.kinematics import delta_phi
from particlegraph.tasks.anomaly.graphs import (
    FRAMES,
    MAX_NODES,
    event_frame,
    raw_features,
    select_top,
)
from particlegraph.tasks.anomaly.samples import Candidates


class DenseGraphs(NamedTuple):
    """Padded raw features ``x`` (B, n, 5), node ``mask`` (B, n), the normalised adjacency
    ``a_hat`` (B, n, n) [target, source] with self loops, the positive ``edges`` (E,) as flat
    positions into a (B, n, n) block."""

    x: Tensor
    mask: Tensor
    a_hat: Tensor
    edges: Tensor


class GraphBatch(NamedTuple):
    """The tensors scoring needs: ``x`` (N, 5), ``edge_index`` (2, E) global, ``batch`` (N,), B."""

    x: Tensor
    edge_index: Tensor
    batch: Tensor
    num_graphs: int


def collate(graphs: list[Data]) -> GraphBatch:
    """Concatenate graphs into one :class:`GraphBatch` (only x and edges; much lighter than PyG's
    ``Batch.from_data_list``, which also collates every per-graph attribute)."""
    if not graphs:
        return GraphBatch(torch.zeros(0, 5), torch.zeros(2, 0, dtype=torch.long),
                          torch.zeros(0, dtype=torch.long), 0)  # fmt: skip
    xs, eis = zip(*((g.x, g.edge_index) for g in graphs), strict=True)  # one lookup each
    sizes = torch.tensor([(x.shape[0], e.shape[1]) for x, e in zip(xs, eis, strict=True)])
    nodes, n_edges = sizes[:, 0], sizes[:, 1]  # not g.num_nodes: 5x slower
    start = torch.cumsum(nodes, 0) - nodes
    ei = torch.cat(eis, 1) + torch.repeat_interleave(start, n_edges)[None, :]
    batch = torch.repeat_interleave(torch.arange(len(graphs)), nodes)
    return GraphBatch(torch.cat(xs), ei, batch, len(graphs))


def dense_graphs(gb: GraphBatch) -> DenseGraphs:
    """Pad a collated batch (``x`` (N, 5), ``edge_index`` (2, E) global, sorted ``batch`` (N,))
    and build ``a_hat`` straight from the edge list; the edges must hold no self loops and no
    duplicates (kNN graphs hold neither).

    When every graph has the same number of nodes n (the 40-node graphs of real events), the
    padded layout is the flat one: ``x`` is only viewed as (B, n, 5) and node ids need no
    mapping; otherwise the nodes are copied to their padded positions ``b n + i``."""
    b, nodes, feat = gb.num_graphs, gb.x.shape[0], gb.x.shape[1]
    counts = torch.bincount(gb.batch, minlength=b)
    n = int(counts.max()) if b else 0
    src, dst = gb.edge_index
    if nodes == b * n:  # all graphs full: padded id = node id
        xd, mask, pid = gb.x.view(b, n, feat), torch.ones(b, n, dtype=torch.bool), None
        psrc, pdst = src, dst
    else:
        start = torch.cumsum(counts, 0) - counts
        pid = gb.batch * n + torch.arange(nodes) - start.index_select(0, gb.batch)  # (N,)
        xd = gb.x.new_zeros(b * n, feat).index_copy_(0, pid, gb.x).view(b, n, feat)
        mask = torch.arange(n)[None, :] < counts[:, None]  # (B, n)
        psrc, pdst = pid.index_select(0, src), pid.index_select(0, dst)
    dinv = (torch.bincount(dst, minlength=nodes).to(gb.x.dtype) + 1.0).rsqrt()  # (N,)
    w = dinv.index_select(0, dst) * dinv.index_select(0, src)  # (E,)
    edges = pdst * n + psrc % n  # flat [target, source] positions
    a_t = gb.x.new_zeros(b * n * n)  # stored [source, target], see the module docstring
    a_t.index_put_((psrc * n + pdst % n,), w)
    loops = dinv * dinv if pid is None else gb.x.new_zeros(b * n).index_copy_(0, pid, dinv * dinv)
    a_t = a_t.view(b, n, n)
    a_t.diagonal(dim1=1, dim2=2).copy_(loops.view(b, n))
    return DenseGraphs(xd, mask, a_t.transpose(1, 2), edges)


def knn_dense(eta: Tensor, phi: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each node's ``k`` nearest neighbours in (eta, phi), phi wrapped, per padded event.

    The k smallest of the (B, n, n) block of ``dR^2`` instead of a sort: the key packs the
    float32 bits of ``dR^2`` (non-negative floats order like their bit patterns) above the column
    index, so equal distances go to the lower index, the rule of ``knn_etaphi``'s stable sort.

    Args:
        eta, phi: (B, n) padded coordinates (phi in rad, any range).
        mask: (B, n) real nodes.
        k: neighbours per node (fewer when an event has fewer than k + 1 nodes).

    Returns:
        ``idx`` (B, n, kk) neighbour positions, nearest first, and ``valid`` (B, n, kk);
        ``kk = min(k, max(n - 1, 1))``.
    """
    b, n = mask.shape
    if n == 0:  # only events without candidates
        return torch.zeros(b, 0, 0, dtype=torch.long), torch.zeros(b, 0, 0, dtype=torch.bool)
    d2 = (eta[:, :, None] - eta[:, None, :]) ** 2 + delta_phi(phi[:, :, None], phi[:, None, :]) ** 2
    ok = mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool)
    d2 = d2.to(torch.float32).masked_fill(~ok, math.inf)  # (B, n, n) [target i, candidate j]
    shift = max(int(n - 1).bit_length(), 1)
    key = (d2.view(torch.int32).to(torch.int64) << shift) | torch.arange(n)
    kk = min(k, max(n - 1, 1))
    # the kk smallest keys by kk passes of min (faster than topk on rows of 40 on a CPU); keys
    # are unique, so each pass takes exactly one entry per row
    picked = []
    for _ in range(kk):
        low = key.min(dim=2)
        picked.append(low.values)
        key.scatter_(2, low.indices[..., None], torch.iinfo(torch.int64).max)
    top = torch.stack(picked, 2)  # (B, n, kk) nearest first
    idx = top & ((1 << shift) - 1)
    inf_key = int(torch.tensor(math.inf, dtype=torch.float32).view(torch.int32)) << shift
    return idx, top < inf_key


def knn_adjacency(
    xd: Tensor, mask: Tensor, idx: Tensor, valid: Tensor, *, symmetric: bool
) -> DenseGraphs:
    """:class:`DenseGraphs` of kNN neighbours ``idx`` / ``valid`` (B, n, kk) (edges ``j -> i``
    for ``j`` among ``i``'s neighbours; with ``symmetric`` also every reverse, duplicates
    merged)."""
    b, n = mask.shape
    tgt = torch.arange(b * n).view(b, n, 1)  # flat target ids b n + i
    src = idx + torch.arange(b).view(b, 1, 1) * n  # flat source ids b n + j
    if not symmetric:  # in-degree of i = its neighbours: values scattered, no (B, n, n) passes
        dinv = (valid.sum(2).to(xd.dtype) + 1.0).rsqrt() * mask  # (B, n)
        w = dinv[:, :, None] * dinv.view(-1).index_select(0, src.view(-1)).view_as(src)
        a_t = xd.new_zeros(b * n * n)  # [source, target]
        a_t.index_put_(((src * n + tgt % n)[valid],), w[valid])
        a_t = a_t.view(b, n, n)
        a_t.diagonal(dim1=1, dim2=2).copy_(dinv * dinv)
        return DenseGraphs(xd, mask, a_t.transpose(1, 2), (tgt * n + idx)[valid])
    adj_t = xd.new_zeros(b * n * n)  # [source, target]
    adj_t[(src * n + tgt % n)[valid]] = 1.0
    adj_t = adj_t.view(b, n, n)
    adj_t = torch.maximum(adj_t, adj_t.transpose(1, 2))
    edges = torch.nonzero(adj_t.reshape(-1) > 0).view(-1)  # symmetric: layout irrelevant
    dinv = (adj_t.sum(1) + 1.0).rsqrt() * mask  # (B, n): in-degree + self loop, per target
    a_t = adj_t * dinv[:, :, None] * dinv[:, None, :] + torch.diag_embed(dinv * dinv)
    return DenseGraphs(xd, mask, a_t.transpose(1, 2), edges)


def dense_events(
    c: Candidates,
    *,
    k: int = 3,
    symmetric: bool = False,
    max_nodes: int = MAX_NODES,
    lowest: bool = False,
    frame: str = "lab",
) -> DenseGraphs:
    """The graphs of :func:`~.graphs.build_graphs` (same nodes, features and edges) as one
    padded block, without a ``Data`` object per event: (B, n <= max_nodes) for B events.

    The kNN uses the lab-frame (eta, phi), as ``build_graphs`` does; ``frame="event"`` then
    replaces the features by :func:`~.graphs.event_frame`'s.
    """
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    index, offsets = select_top(c.offsets, c.pt, max_nodes, lowest=lowest)
    raw = raw_features(c, index)  # (M, 5)
    counts = torch.from_numpy(np.diff(offsets))
    b = counts.numel()
    n = int(counts.max()) if b else 0
    mask = torch.arange(n)[None, :] < counts[:, None]  # (B, n)
    xd = torch.zeros(b, n, raw.shape[1])
    xd[mask] = torch.from_numpy(raw)
    idx, valid = knn_dense(xd[:, :, 1], xd[:, :, 2], mask, k)
    if frame == "event":
        xd[mask] = torch.from_numpy(event_frame(raw, offsets))
    return knn_adjacency(xd, mask, idx, valid, symmetric=symmetric)
