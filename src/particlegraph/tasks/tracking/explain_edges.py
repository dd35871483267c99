"""Gradient x input explanation of one edge score of the default (layer-pair) pipeline.

The interaction network's logit of an edge is differentiated with respect to the standardised
node features (N, 7) and edge features (E, 7) of the event's classified graph; gradient x input
per hit (summed over its features) says which hits the decision leaned on, and per edge-feature
name which geometric quantity did. This is a first-order explanation, not LRP: the layer-wise
relevance trace of the interaction network (``lrp_trace``) is not implemented yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.edge_model import EDGE_FEATURES, NODE_FEATURES
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.trackml import list_events


def explain_edge_score(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    event_id: int | None = None,
    edge: int | None = None,
) -> dict[str, Any]:
    """Explain edge ``edge`` (default: the highest-scoring true edge) of one event; writes
    ``out/explain.json`` and returns it."""
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
    n, e = n.detach().requires_grad_(True), e.detach().requires_grad_(True)
    logit = run.model.forward_features(n, ei, e)[edge]
    torch.autograd.backward(logit)  # typed, unlike Tensor.backward
    assert n.grad is not None and e.grad is not None
    node_rel = (n.grad * n).sum(1).detach()
    edge_rel = (e.grad * e).detach()
    a, b = int(ei[0, edge]), int(ei[1, edge])
    own = pid[a] != 0 and bool(pid[a] == pid[b])
    total = float(node_rel.abs().sum()) or 1.0
    on_particle = float(node_rel[pid == pid[a]].abs().sum()) / total if own else float("nan")
    top = torch.argsort(node_rel.abs(), descending=True)[:10].tolist()
    res = {
        "method": "gradient_x_input", "event_id": ev.event_id, "edge": edge, "hits": [a, b],
        "score": float(score[edge]), "true_edge": bool(same[edge]),
        "node_relevance_share_on_particle": on_particle,
        "node_relevance_share_on_edge_hits": float(node_rel[[a, b]].abs().sum()) / total,
        "node_feature_relevance": dict(zip(NODE_FEATURES, (n.grad * n).detach().sum(0).tolist(), strict=True)),
        "edge_feature_relevance_own_edge": dict(zip(EDGE_FEATURES, edge_rel[edge].tolist(), strict=True)),
        "top_hits": [{"hit": h, "relevance": float(node_rel[h]), "particle": int(pid[h])} for h in top],
        "logit": float(logit.detach()),
    }  # fmt: skip
    write_json(Path(out) / "explain.json", res)
    return res
