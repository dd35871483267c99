"""Events as PyG ``Data`` on the layer-pair graph: edges, truth labels, sectors, filtering.

An event's ``Data`` holds ``x`` (N, 6) hit features (:data:`~.dataset.FEATURES`), ``edge_index``
(2, E) from :func:`~.module_map.build_graph`, ``y`` (E,) 1.0 where the edge joins two consecutive
hits of one particle (either direction, the truth graph of :func:`~.dataset.true_pairs`), and
``edge_pt`` (E,) the particle's pT [GeV] on true edges (0 elsewhere), ``phi`` (N,) [rad].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from particlegraph.tasks.tracking.dataset import HitEvent, true_pairs, vertex_distance
from particlegraph.tasks.tracking.module_map import Hits, LayerPairMap, build_graph


def event_hits(ev: HitEvent) -> Hits:
    """Cylindrical coordinates and layer keys of an event's hits."""
    return Hits.from_xyz(ev.xyz.numpy(), ev.layer.numpy())


def truth_sample(ev: HitEvent) -> tuple[Hits, np.ndarray, np.ndarray]:
    """(hits, true consecutive pairs (2, T), their particle pT (T,)) to learn a map from."""
    t = true_pairs(ev.particle_id, vertex_distance(ev)).numpy()
    return event_hits(ev), t, ev.pt.numpy()[t[0]]


def edge_truth(ev: HitEvent, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is a truth-graph edge (E,) bool, the truth graph (2, T))."""
    n = ev.num_hits
    t = true_pairs(ev.particle_id, vertex_distance(ev)).numpy()
    tkey = np.minimum(t[0], t[1]) * n + np.maximum(t[0], t[1])
    ekey = np.minimum(edges[0], edges[1]) * n + np.maximum(edges[0], edges[1])
    return np.isin(ekey, tkey), t


def event_data(ev: HitEvent, m: LayerPairMap) -> Data:
    """The event on the map's graph as a PyG ``Data`` (see the module docstring)."""
    h = event_hits(ev)
    edges = build_graph(m, h)
    y, _ = edge_truth(ev, edges)
    pt = np.where(y, ev.pt.numpy()[edges[0]], 0.0)
    return Data(x=ev.x, edge_index=torch.from_numpy(edges), y=torch.from_numpy(y.astype(np.float32)),
                edge_pt=torch.from_numpy(pt.astype(np.float32)), phi=torch.from_numpy(h.phi),
                num_nodes=ev.num_hits)  # fmt: skip


def edge_subgraph(d: Data, keep: Tensor) -> Data:
    """``d`` restricted to edges ``keep`` (E,) bool and the hits they touch (relabelled)."""
    ei = d.edge_index[:, keep]
    nodes, inv = torch.unique(ei.reshape(-1), return_inverse=True)
    return Data(x=d.x[nodes], edge_index=inv.reshape(2, -1), y=d.y[keep], edge_pt=d.edge_pt[keep],
                phi=d.phi[nodes], num_nodes=int(nodes.numel()))  # fmt: skip


def sectors(d: Data, max_edges: int, overlap: float = 0.25) -> list[Data]:
    """Split ``d`` into phi sectors of about ``max_edges`` edges each (by source hit phi).

    Each sector takes the edges whose source hit lies in its phi range widened by ``overlap``
    x its width on both sides, so that hits near a border see their neighbours in one of them.
    A graph within the budget is returned whole. Small sectors also mean more optimizer steps
    per epoch, which is what makes training converge in minutes.
    """
    e = d.edge_index.shape[1]
    if e <= max_edges:
        return [d]
    k = math.ceil(e / max_edges)
    phi = d.phi[d.edge_index[0]]
    width = 2 * math.pi / k
    out = []
    for s in range(k):
        centre = -math.pi + (s + 0.5) * width
        dist = torch.remainder(phi - centre + math.pi, 2 * math.pi) - math.pi
        out.append(edge_subgraph(d, dist.abs() <= width * (0.5 + overlap)))
    return out


def graph_metrics(d: Data, truth_total: int, truth_pt1: int, pt: float = 1.0) -> dict[str, float]:
    """Edge efficiency (all, pT > ``pt``), purity and edges per hit of a labelled graph."""
    e = d.edge_index.shape[1]
    n_true = float(d.y.sum())
    n_pt = float(((d.y > 0) & (d.edge_pt > pt)).sum())
    return {
        "edge_efficiency": n_true / max(truth_total, 1),
        "edge_efficiency_pt1": n_pt / max(truth_pt1, 1),
        "edge_purity": n_true / max(e, 1),
        "edges_per_hit": e / max(int(d.num_nodes), 1),
    }
