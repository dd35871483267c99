"""Inference: hits -> stage-1 embedding -> predicted graph -> GNN -> DBSCAN track candidates.

The clustering baselines (DBSCAN on raw positions and on helix-unrolled features) and the
DBSCAN helper live in :mod:`particlegraph.tasks.tracking.baselines` and are re-exported here.
Every stage is timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.graph.radius import radius_graph

# the clustering baselines live in baselines.py; imported here for existing callers
from particlegraph.tasks.tracking.baselines import (  # noqa: F401
    ClusterConfig,
    dbscan_labels,
    raw_features,
    unrolled_dbscan,
    unrolled_features,
)
from particlegraph.tasks.tracking.model import TrackingModel


@dataclass(frozen=True)
class GraphConfig:
    """The predicted graph: ``k`` nearest neighbours within ``radius`` in the stage-1 space."""

    k: int = 16  # neighbours per hit
    radius: float = 1.0  # in stage-1 embedding units (the hinge margin is 1)

    def __post_init__(self) -> None:
        if self.k < 1 or not self.radius > 0:
            raise ConfigError(
                f"graph.k must be >= 1 and graph.radius > 0, got {self.k}, {self.radius}"
            )


@dataclass
class Reconstruction:
    """One event through the pipeline: embeddings, graph, track ids and seconds per stage."""

    track_id: np.ndarray  # (N,)
    stage1: Tensor  # (N, D1)
    refined: Tensor  # (N, D2)
    edge_index: Tensor  # (2, E) predicted graph
    times: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def reconstruct(
    model: TrackingModel,
    x: Tensor,
    graph: GraphConfig,
    cluster: ClusterConfig,
    *,
    workers: int = 1,
) -> Reconstruction:
    """Run the full pipeline on one event's features ``x`` (N, F) in eval mode."""
    model.eval()
    times = {}
    t = time.perf_counter()
    e1 = model.embed(x)
    times["embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    edge_index = radius_graph(e1, graph.radius, graph.k, workers=workers)
    times["graph_s"] = time.perf_counter() - t
    t = time.perf_counter()
    e2 = model(x, edge_index)
    times["gnn_s"] = time.perf_counter() - t
    t = time.perf_counter()
    track_id = dbscan_labels(e2.double().cpu().numpy(), cluster)
    times["dbscan_s"] = time.perf_counter() - t
    times["total_s"] = sum(times.values())
    return Reconstruction(track_id, e1, e2, edge_index, times)
