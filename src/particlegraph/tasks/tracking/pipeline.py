"""Inference: hits -> stage-1 embedding -> predicted graph -> GNN -> DBSCAN track candidates.

Also the clustering baselines run on the same events: DBSCAN on raw (x, y, z) (the exercise's
point of comparison), DBSCAN on helix-unrolled features (the TrackML DBSCAN benchmark,
Amrouche et al. 2019 Sec. 5, extended with the curvature scan of its public kernels), and DBSCAN
on the stage-1 embedding without the GNN. Every stage is timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.graph.radius import radius_graph
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


@dataclass(frozen=True)
class ClusterConfig:
    """DBSCAN settings (chosen on validation events by the TrackML score and stored with the run)."""

    eps: float = 0.2  # neighbourhood radius in the clustered space
    min_samples: int = 2  # points (itself included) for a core point

    def __post_init__(self) -> None:
        if not self.eps > 0 or self.min_samples < 1:
            raise ConfigError(
                f"dbscan eps must be > 0 and min_samples >= 1, got {self.eps}, {self.min_samples}"
            )


def dbscan_labels(points: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    """Track id (N,) per point: DBSCAN clusters 0..C-1, each outlier its own id C, C+1, ..."""
    from sklearn.cluster import DBSCAN

    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    labels = DBSCAN(eps=cfg.eps, min_samples=cfg.min_samples, algorithm="kd_tree").fit_predict(
        points
    )
    labels = labels.astype(np.int64)
    out = labels < 0
    labels[out] = labels.max(initial=-1) + 1 + np.arange(int(out.sum()))
    return labels


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


def raw_features(xyz: np.ndarray) -> np.ndarray:
    """(x, y, z) [m]: the exercise's baseline clusters the raw positions."""
    return xyz / 1000.0


def unrolled_features(xyz: np.ndarray, curvature: float = 0.0) -> np.ndarray:
    """Helix-unrolled features of the TrackML DBSCAN benchmark for one curvature hypothesis.

    A track from the origin has phi_hit = phi0 - asin(k r / 2); with the hypothesis ``k``
    [1/m] the hits of one track share (cos phi0, sin phi0) and z / r (a straight line in r-z).
    Returns (N, 3) features [cos phi0, sin phi0, z / r].
    """
    x, y, z = (xyz[:, i].astype(np.float64) / 1000.0 for i in range(3))
    r = np.hypot(x, y)
    phi0 = np.arctan2(y, x) + np.arcsin(np.clip(curvature * r / 2.0, -1.0, 1.0))
    return np.stack([np.cos(phi0), np.sin(phi0), 0.5 * z / np.maximum(r, 1e-6)], axis=1)


def unrolled_dbscan(xyz: np.ndarray, cluster: ClusterConfig, curvatures: np.ndarray) -> np.ndarray:
    """DBSCAN per curvature hypothesis, merged: each hit keeps the largest cluster it joined.

    A cluster bigger than 20 hits is ignored (no particle leaves more); the merge is the one of
    the public TrackML "helix unrolling" kernels.
    """
    n = xyz.shape[0]
    best_size = np.zeros(n, dtype=np.int64)
    track = np.full(n, -1, dtype=np.int64)
    next_id = 0
    for k in curvatures:
        labels = dbscan_labels(unrolled_features(xyz, float(k)), cluster)
        _, inv, size = np.unique(labels, return_inverse=True, return_counts=True)
        hs = size[inv]
        take = (hs > best_size) & (hs <= 20) & (hs > 1)
        track[take] = labels[take] + next_id
        best_size[take] = hs[take]
        next_id += int(labels.max(initial=0)) + 1
    single = track < 0
    track[single] = next_id + np.arange(int(single.sum()))
    _, track = np.unique(track, return_inverse=True)
    return track.astype(np.int64)
