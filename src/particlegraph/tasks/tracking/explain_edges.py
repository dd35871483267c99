"""Gradient x input and LRP of one edge score of the default (layer-pair) pipeline.

Both explain the interaction network's logit of one edge with respect to the standardised node
features (N, 7) and edge features (E, 7) of the event's classified graph (after the filter):

- **gradient x input** (first order): per hit (summed over its features) and per edge-feature
  name; the top-level keys of ``explain.json``, as before.
- **LRP** (the ``lrp`` section): LRP-epsilon (eps 1e-6 unless set) through every iteration
  of the interaction network, its residual connections and both message directions, computed in
  float64 by :func:`particlegraph.nn.interaction_lrp.explain_interaction` (the engine's rules,
  restricted to the edge's receptive field, forward pass checkpointed per iteration; time and
  memory linear in the event size; equal to the engine's Program walk
  :func:`particlegraph.explain.lrp.explain_edges` to round-off).
  Relevance per hit (``hit_relevance``: every hit above 1e-3 of the largest |R|) and per edge
  (the top ones), per feature name, its shares (on the edge's particle, on its two hits, on the
  edge itself), and the conservation residual ``sum R + absorbed - logit``
  (the absorbed share is what the biases and the stabiliser keep). For a ReLU network LRP-0 is
  gradient x input, biases or not (tested): with ``eps = 0`` the two sections agree, and what LRP
  adds is the exact bookkeeping (how much of the logit the biases hold). The default eps 1e-6
  already moves the relevance by about 1 % of its largest value on a trained model (residual and
  message sums that nearly cancel); a larger eps (``--lrp-eps``, e.g. 0.25) keeps only the
  contributions that stand above it, and the two explanations part.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import EdgeRelevance, Epsilon
from particlegraph.nn.interaction import InteractionNetwork
from particlegraph.nn.interaction_lrp import explain_interaction
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.edge_model import EDGE_FEATURES, NODE_FEATURES, EdgeClassifier
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.trackml import list_events

#: Default stabiliser of the LRP-epsilon rule in the ``lrp`` section.
LRP_EPS = 1e-6
#: Hits and edges listed in the ``top_*`` entries.
TOP = 10
#: ``hit_relevance`` lists the hits above this fraction of the largest |relevance| ...
HIT_LIST_FRACTION = 1e-3
#: ... at most this many.
HIT_LIST_MAX = 500


def _shares(node_rel: Tensor, pid: Tensor, a: int, b: int) -> tuple[float, float]:
    """Shares of ``sum |R|`` over hits on the edge's particle (NaN for a fake edge) and on its
    two hits; ``node_rel`` (N,) relevance per hit."""
    own = pid[a] != 0 and bool(pid[a] == pid[b])
    total = float(node_rel.abs().sum()) or 1.0
    on_particle = float(node_rel[pid == pid[a]].abs().sum()) / total if own else float("nan")
    return on_particle, float(node_rel[[a, b]].abs().sum()) / total


def _top_hits(node_rel: Tensor, pid: Tensor) -> list[dict[str, Any]]:
    top = torch.argsort(node_rel.abs(), descending=True)[:TOP].tolist()
    return [{"hit": h, "relevance": float(node_rel[h]), "particle": int(pid[h])} for h in top]


def _hit_list(node_rel: Tensor) -> list[list[float]]:
    """``[hit, relevance]`` of the hits holding at least :data:`HIT_LIST_FRACTION` of the
    largest |relevance|, largest first, at most :data:`HIT_LIST_MAX`."""
    scale = float(node_rel.abs().max()) if len(node_rel) else 0.0
    order = torch.argsort(node_rel.abs(), descending=True)[:HIT_LIST_MAX]
    keep = order[node_rel[order].abs() >= HIT_LIST_FRACTION * scale] if scale > 0 else order[:0]
    return [[int(h), float(node_rel[h])] for h in keep.tolist()]


def gradient_section(
    model: EdgeClassifier, n: Tensor, ei: Tensor, e: Tensor, edge: int, pid: Tensor
) -> dict[str, Any]:
    """Gradient x input of edge ``edge``'s logit w.r.t. standardised features n (N, 7), e (E, 7)."""
    n, e = n.detach().requires_grad_(True), e.detach().requires_grad_(True)
    logit = model.forward_features(n, ei, e)[edge]
    torch.autograd.backward(logit)  # typed, unlike Tensor.backward
    assert n.grad is not None and e.grad is not None
    node_rel = (n.grad * n).sum(1).detach()
    edge_rel = (e.grad * e).detach()
    a, b = int(ei[0, edge]), int(ei[1, edge])
    on_particle, on_hits = _shares(node_rel, pid, a, b)
    return {
        "node_relevance_share_on_particle": on_particle,
        "node_relevance_share_on_edge_hits": on_hits,
        "node_feature_relevance": dict(zip(NODE_FEATURES, (n.grad * n).detach().sum(0).tolist(), strict=True)),
        "edge_feature_relevance_own_edge": dict(zip(EDGE_FEATURES, edge_rel[edge].tolist(), strict=True)),
        "top_hits": _top_hits(node_rel, pid),
        "logit": float(logit.detach()),
    }  # fmt: skip


def lrp_relevance(
    gnn: InteractionNetwork, n: Tensor, ei: Tensor, e: Tensor, edge: int, eps: float = LRP_EPS
) -> tuple[EdgeRelevance, float]:
    """LRP-epsilon of edge ``edge``'s logit in float64 and the seconds it took."""
    start = time.perf_counter()
    gnn64 = copy.deepcopy(gnn).double()
    rel = explain_interaction(gnn64, n.double(), ei, e.double(), [edge], Epsilon(eps=eps))
    return rel, time.perf_counter() - start


def lrp_section(
    rel: EdgeRelevance, ei: Tensor, pid: Tensor, same: np.ndarray, eps: float, seconds: float
) -> dict[str, Any]:
    """The ``lrp`` section of ``explain.json`` (the module docstring) for one explained edge."""
    edge = int(rel.edges[0])
    node = rel.node_dense()[0]  # (N, 7)
    edges = rel.edge_dense()[0]  # (E, 7)
    node_rel, edge_rel = node.sum(1), edges.sum(1)
    a, b = int(ei[0, edge]), int(ei[1, edge])
    on_particle, on_hits = _shares(node_rel, pid, a, b)
    logit, absorbed = float(rel.explained[0]), float(rel.absorbed[0])
    residual = float(rel.conservation_residual()[0])
    top_e = torch.argsort(edge_rel.abs(), descending=True)[:TOP].tolist()
    edge_total = float(edge_rel.abs().sum()) or 1.0
    return {
        "method": "lrp_epsilon", "eps": eps, "logit": logit,
        "relevance": float(node_rel.sum() + edge_rel.sum()), "absorbed": absorbed,
        "conservation_residual": residual,
        "conservation_rel_err": abs(residual) / max(abs(logit), 1e-300),
        "receptive_field": {"hits": len(torch.unique(rel.node_source)),
                            "edges": len(torch.unique(rel.edge_source))},
        "hit_relevance_total": float(node_rel.sum()), "edge_relevance_total": float(edge_rel.sum()),
        "node_relevance_share_on_particle": on_particle,
        "node_relevance_share_on_edge_hits": on_hits,
        "edge_relevance_share_on_own_edge": float(edge_rel[edge].abs()) / edge_total,
        "node_feature_relevance": dict(zip(NODE_FEATURES, node.sum(0).tolist(), strict=True)),
        "edge_feature_relevance": dict(zip(EDGE_FEATURES, edges.sum(0).tolist(), strict=True)),
        "edge_feature_relevance_own_edge": dict(zip(EDGE_FEATURES, edges[edge].tolist(), strict=True)),
        "top_hits": _top_hits(node_rel, pid),
        "hit_relevance": _hit_list(node_rel),
        "top_edges": [{"edge": k, "hits": [int(ei[0, k]), int(ei[1, k])], "relevance": float(edge_rel[k]),
                       "true_edge": bool(same[k])} for k in top_e],
        "seconds": seconds,
    }  # fmt: skip


def explain_edge_score(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    event_id: int | None = None,
    edge: int | None = None,
    eps: float = LRP_EPS,
    plots: bool = True,
) -> dict[str, Any]:
    """Explain edge ``edge`` (default: the highest-scoring true edge) of one event; writes
    ``out/explain.json`` (gradient x input at the top level, LRP-epsilon with stabiliser ``eps``
    under ``lrp``) and, with ``plots``, ``out/explain_display.png``; returns the JSON content."""
    run = load_layerpair_run(run_dir)
    ids = list_events(data)
    ev = load_events(data, [ids[0] if event_id is None else event_id])[0]
    _, d, score, _ = reconstruct_event(run, ev)
    ei = d.edge_index
    if ei.shape[1] == 0:
        raise ConfigError("the event's graph has no edges to explain")
    pid = ev.particle_id
    same = ((pid[ei[0]] == pid[ei[1]]) & (pid[ei[0]] != 0)).numpy()
    if edge is None:
        edge = int(np.argmax(np.where(same, score, -1.0)))
    if not 0 <= edge < ei.shape[1]:
        raise ConfigError(f"--edge must be in [0, {ei.shape[1]}), got {edge}")
    n, e = run.model.inputs(ev.x, ei)
    res: dict[str, Any] = {
        "method": "gradient_x_input", "event_id": ev.event_id, "edge": edge,
        "hits": [int(ei[0, edge]), int(ei[1, edge])], "score": float(score[edge]),
        "true_edge": bool(same[edge]),
    }  # fmt: skip
    res.update(gradient_section(run.model, n, ei, e, edge, pid))
    with torch.no_grad():
        rel, seconds = lrp_relevance(run.model.gnn, n, ei, e, edge, eps)
        res["lrp"] = lrp_section(rel, ei, pid, same, eps, seconds)
    write_json(Path(out) / "explain.json", res)
    if plots:
        from particlegraph.tasks.tracking.explain_display import edge_display

        edge_display(Path(out) / "explain_display.png", ev.xyz.numpy(), pid.numpy(),
                     ei.numpy(), rel)  # fmt: skip
    return res
