"""Track building from scored edges: connected components, with ambiguities resolved first.

Modes (chosen on validation events by the TrackML score, with the threshold):

- ``"cc"``: connected components of the edges scoring above the threshold (Exa.TrkX).
- ``"best"``: keep an edge only if it is the best-scoring outgoing edge of its source hit AND the
  best incoming edge of its target hit, so every hit has at most one successor and one
  predecessor: components are simple chains, a greedy form of the walkthrough of
  Ju et al. (arXiv:2103.06995) that cannot merge two tracks sharing a hit.
- ``"either"``: keep an edge that is the best outgoing edge of its source OR the best incoming
  edge of its target (splits most merges, keeps a track whose best link was taken).
- ``"greedy"``: ``"best"`` repeated: after each round the hits whose successor (predecessor) is
  taken drop their other outgoing (incoming) edges and the mutual-best rule runs again on the
  rest, so a hit whose best link went to another track still gets its next-best free one
  (the greedy maximum-score chain cover; at most ``rounds`` rounds).
- ``"split"``: connected components (made for classifiers trained on same-particle edges, whose
  tracks hold skip edges too), then every component that holds more than two hits on one layer
  (a merge of tracks: one particle leaves at most two, the second on an overlapping module) is
  cut again with only its own edges at a higher threshold, up to :data:`SPLIT_LEVELS` times
  (each level halves the distance to 1); what is still ambiguous at the last level is kept.
  Needs each hit's layer key.
- ``"layersplit"``: first the best edge per hit and neighbouring layer — an edge is kept only if
  it is the best-scoring edge from its source into its target's layer AND the best into its
  target from its source's layer (one particle crosses a layer once, or twice in an overlap
  that the same-layer edge joins) — then ``"split"``.
- ``"walk"``: the walkthrough of :mod:`.walk`: from every hit the path of largest summed edge
  score over the edges above the threshold; paths claim their hits best first, in rounds.
- ``"walkext"``: ``"walk"``, then :func:`.extend.extend_tracks`: segments that lie on one
  helix are joined and every track is followed outward and inward over the hits no track holds
  (a helix through its hits, the nearest free hit on each next surface). Needs positions.
- ``"splitext"``: ``"layersplit"``, then the same joining and extension.
- ``"splitfollow"``: ``"splitext"``, then the track follower (:mod:`.follower`) on the hits no
  track holds (:func:`.extend.follow_free`): the softest particles, below the graph's pT floor.

Every hit without a kept edge is a track of its own. Optionally (``outlier_mm``, ``max_fit_rms``,
``min_hits``, ``min_edge_score``; off by default, so runs without them build as before) the
finished tracks are cleaned by :func:`.cleanup.clean_tracks`: hits far from their track's
helix are released, and short, badly fitted or weakly linked candidates dissolved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.cleanup import clean_tracks, release
from particlegraph.tasks.tracking.extend import (
    FREE_FOLLOWER,
    ExtendConfig,
    extend_tracks,
    follow_free,
)
from particlegraph.tasks.tracking.follower import FollowerConfig
from particlegraph.tasks.tracking.walk import walk_tracks

MODES = ("cc", "best", "either", "greedy", "split", "layersplit", "walk", "walkext", "splitext",
         "splitfollow")  # fmt: skip
#: Modes that need each hit's layer key and position.
GEOMETRIC_MODES = ("split", "layersplit", "walkext", "splitext", "splitfollow")
#: Threshold levels of the ``"split"`` mode after the first.
SPLIT_LEVELS = 4
#: Two hits of one particle on one layer (an overlap) lie closer than this [mm].
OVERLAP_MM = 25.0


@dataclass(frozen=True)
class BuildConfig:
    """Edge-score threshold, the building mode of :data:`MODES`, the cleanup of
    :mod:`.cleanup` (``min_hits`` hits and ``min_edge_score`` mean edge score per candidate;
    0: off) and, for ``"splitfollow"``, the second-pass follower on the free hits
    (``follow_pt_min`` [GeV], ``follow_window_scale``, ``follow_min_hits``: the
    :class:`.follower.FollowerConfig` fields; defaults those of :data:`.extend.FREE_FOLLOWER`)."""

    threshold: float = 0.5
    mode: str = "either"
    min_hits: int = 0
    min_edge_score: float = 0.0
    outlier_mm: float = 0.0
    max_fit_rms: float = 0.0
    follow_pt_min: float = FREE_FOLLOWER.pt_min
    follow_window_scale: float = FREE_FOLLOWER.window_scale
    follow_min_hits: int = FREE_FOLLOWER.min_hits

    def __post_init__(self) -> None:
        if self.mode not in MODES or not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"build.mode must be one of {MODES} and 0 <= threshold <= 1, got "
                f"{self.mode!r}, {self.threshold}"
            )
        if self.min_hits < 0 or not 0.0 <= self.min_edge_score <= 1.0:
            raise ConfigError(
                f"build.min_hits must be >= 0 and 0 <= build.min_edge_score <= 1, got "
                f"{self.min_hits}, {self.min_edge_score}"
            )
        if not (self.outlier_mm >= 0.0 and self.max_fit_rms >= 0.0):  # NaN refused too
            raise ConfigError(
                f"build.outlier_mm and build.max_fit_rms must be >= 0 [mm] (0: off), got "
                f"{self.outlier_mm}, {self.max_fit_rms}"
            )
        if not (self.follow_pt_min > 0.0 and self.follow_window_scale > 0.0):  # NaN refused
            raise ConfigError(
                f"build.follow_pt_min [GeV] and build.follow_window_scale must be > 0, got "
                f"{self.follow_pt_min}, {self.follow_window_scale}"
            )
        if self.follow_min_hits < 3:
            raise ConfigError(f"build.follow_min_hits must be >= 3, got {self.follow_min_hits}")

    def follower(self) -> FollowerConfig:
        """The second-pass follower of ``"splitfollow"``."""
        return replace(FREE_FOLLOWER, pt_min=self.follow_pt_min,
                       window_scale=self.follow_window_scale, min_hits=self.follow_min_hits)  # fmt: skip

    @property
    def cleans(self) -> bool:
        """Whether any cleanup cut is on."""
        return bool(self.min_hits or self.min_edge_score or self.outlier_mm or self.max_fit_rms)


def components(num_hits: int, edges: np.ndarray) -> np.ndarray:
    """Component label (N,) int64 of each hit over undirected ``edges`` (2, E)."""
    if num_hits == 0:
        return np.zeros(0, dtype=np.int64)
    ones = np.ones(edges.shape[1], dtype=np.int8)
    adj = coo_matrix((ones, (edges[0], edges[1])), shape=(num_hits, num_hits)).tocsr()
    _, labels = connected_components(adj, directed=False)
    track_id: np.ndarray = labels.astype(np.int64)
    return track_id


def best_per_node(nodes: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Boolean (E,): edge e holds the highest score among the edges sharing ``nodes[e]``.

    Ties go to the first such edge.
    """
    if nodes.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-score, nodes))
    first = np.r_[True, nodes[order][1:] != nodes[order][:-1]]
    out = np.zeros(nodes.size, dtype=bool)
    out[order[first]] = True
    return out


def build_tracks(
    num_hits: int,
    edges: np.ndarray,
    score: np.ndarray,
    cfg: BuildConfig,
    layer: np.ndarray | None = None,
    xyz: np.ndarray | None = None,
) -> np.ndarray:
    """Track id (N,) of every hit from directed ``edges`` (2, E) and their scores (E,) in [0, 1].

    ``layer`` (N,) int64 layer keys and ``xyz`` (N, 3) positions [mm] are needed by the
    :data:`GEOMETRIC_MODES` and by the cleanup's ``outlier_mm`` and ``max_fit_rms`` only;
    ``min_edge_score`` judges every track by the scores of all ``edges`` inside it.
    """
    return cleaned(_build(num_hits, edges, score, cfg, layer, xyz), edges, score, cfg, xyz)


def cleaned(
    track: np.ndarray, edges: np.ndarray, score: np.ndarray, cfg: BuildConfig,
    xyz: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """``track`` (N,) after ``cfg``'s cleanup (:func:`.cleanup.clean_tracks`; ``track`` itself
    when every cut is off); ``edges``, ``score``, ``xyz`` as in :func:`build_tracks`.

    Raises:
        ConfigError: ``outlier_mm`` or ``max_fit_rms`` set without every hit's position.
    """
    if not cfg.cleans:
        return track
    if (cfg.outlier_mm or cfg.max_fit_rms) and (xyz is None or xyz.shape[0] != track.shape[0]):
        raise ConfigError("build.outlier_mm and build.max_fit_rms need every hit's position")
    return clean_tracks(track, edges, score, min_hits=cfg.min_hits,
                        min_edge_score=cfg.min_edge_score, outlier_mm=cfg.outlier_mm,
                        max_fit_rms=cfg.max_fit_rms, xyz=xyz)  # fmt: skip


def _build(
    num_hits: int,
    edges: np.ndarray,
    score: np.ndarray,
    cfg: BuildConfig,
    layer: np.ndarray | None,
    xyz: np.ndarray | None,
) -> np.ndarray:
    """:func:`build_tracks` before the cleanup."""
    if cfg.mode in GEOMETRIC_MODES:
        if layer is None or xyz is None or layer.shape[0] != num_hits or xyz.shape[0] != num_hits:
            raise ConfigError(
                f"build mode {cfg.mode!r} needs the layer key and position of every hit"
            )
        return _geometric(num_hits, edges, score, cfg, layer, xyz)
    if cfg.mode == "walk":
        return singletons(walk_tracks(num_hits, edges, score, cfg.threshold))
    keep = score > cfg.threshold
    e, s = edges[:, keep], score[keep]
    if cfg.mode == "greedy":
        return components(num_hits, greedy_chains(num_hits, e, s))
    if cfg.mode != "cc" and e.shape[1]:
        out_best = best_per_node(e[0], s)
        in_best = best_per_node(e[1], s)
        sel = (out_best & in_best) if cfg.mode == "best" else (out_best | in_best)
        e = e[:, sel]
    return components(num_hits, e)


def _geometric(
    num_hits: int,
    edges: np.ndarray,
    score: np.ndarray,
    cfg: BuildConfig,
    layer: np.ndarray,
    xyz: np.ndarray,
) -> np.ndarray:
    """:func:`build_tracks` for the :data:`GEOMETRIC_MODES`."""
    if cfg.mode == "walkext":
        track = walk_tracks(num_hits, edges, score, cfg.threshold)
        return singletons(extend_tracks(track, xyz, layer, ExtendConfig()))
    if cfg.mode in ("splitext", "splitfollow"):
        track = _geometric(num_hits, edges, score, replace(cfg, mode="layersplit"), layer, xyz)
        track = extend_tracks(track, xyz, layer, ExtendConfig())
        if cfg.mode == "splitfollow":
            track = follow_free(track, xyz, layer, cfg.follower())
        return singletons(track)
    keep = score > cfg.threshold
    e, s = edges[:, keep], score[keep]
    if cfg.mode == "layersplit" and e.shape[1]:
        sel = best_per_layer(e, s, layer)
        e, s = e[:, sel], s[sel]
    return split_components(e, s, layer, xyz, cfg.threshold)


def singletons(track: np.ndarray) -> np.ndarray:
    """``track`` (N,) with every unassigned hit (-1) made a track of its own."""
    return release(track, track < 0)


def greedy_chains(
    num_hits: int, edges: np.ndarray, score: np.ndarray, rounds: int = 8
) -> np.ndarray:
    """Edges (2, K) of the chain cover built by repeated mutual-best rounds (see ``"greedy"``)."""
    has_out = np.zeros(num_hits, dtype=bool)
    has_in = np.zeros(num_hits, dtype=bool)
    kept = []
    e, s = edges, score
    for _ in range(rounds):
        free = ~has_out[e[0]] & ~has_in[e[1]]
        e, s = e[:, free], s[free]
        if e.shape[1] == 0:
            break
        take = best_per_node(e[0], s) & best_per_node(e[1], s)
        kept.append(e[:, take])
        has_out[e[0, take]] = True
        has_in[e[1, take]] = True
    return np.concatenate(kept, axis=1) if kept else np.zeros((2, 0), dtype=np.int64)


def best_per_layer(edges: np.ndarray, score: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Boolean (E,): the edge is its source's best into the target's layer and its target's best
    from the source's layer (``layer`` (N,) layer keys)."""
    _, dense = np.unique(layer, return_inverse=True)
    dense = dense.reshape(-1).astype(np.int64)
    n_layers = int(dense.max()) + 1 if dense.size else 1
    out_best = best_per_node(edges[0] * n_layers + dense[edges[1]], score)
    in_best = best_per_node(edges[1] * n_layers + dense[edges[0]], score)
    return np.asarray(out_best & in_best, dtype=bool)


def ambiguous(labels: np.ndarray, layer: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Boolean (N,): the hit's component holds more than two hits on some layer, or two that lie
    more than :data:`OVERLAP_MM` apart (a particle's second hit on a layer is on the overlapping
    module, a few mm from its first). ``xyz`` (N, 3) [mm]."""
    if labels.size == 0:
        return np.zeros(0, dtype=bool)
    low = int(layer.min())  # one key per (component, layer): label * span + layer offset
    key = labels.astype(np.int64) * (int(layer.max()) - low + 1) + (layer - low)
    order = np.argsort(key, kind="stable")  # the (component, layer) groups, contiguous
    sk = key[order]
    start = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    cnt = np.diff(np.r_[start, sk.size])
    inv = np.empty(key.size, dtype=np.int64)
    inv[order] = np.repeat(np.arange(start.size), cnt)
    lo = np.minimum.reduceat(xyz[order], start, axis=0)
    hi = np.maximum.reduceat(xyz[order], start, axis=0)
    extent = np.sqrt(((hi - lo) ** 2).sum(axis=1))
    crowded = (cnt > 2) | (extent > OVERLAP_MM)
    bad = np.unique(labels[crowded[inv]])
    return np.isin(labels, bad)


def split_components(
    edges: np.ndarray, score: np.ndarray, layer: np.ndarray, xyz: np.ndarray, threshold: float
) -> np.ndarray:
    """Track ids (N,) of the ``"split"`` mode from the edges above ``threshold`` (2, E);
    ``layer`` (N,) layer keys, ``xyz`` (N, 3) hit positions [mm]."""
    num_hits = layer.shape[0]
    labels = components(num_hits, edges)
    t = threshold
    for _ in range(SPLIT_LEVELS):
        amb = ambiguous(labels, layer, xyz)
        if not amb.any():
            break
        t = t + 0.5 * (1.0 - t)
        inside = amb[edges[0]] & amb[edges[1]] & (score > t)
        sub = components(num_hits, edges[:, inside])
        # relabel the ambiguous hits by their new components, after all existing labels
        labels = np.where(amb, sub + labels.max() + 1, labels)
        edges, score = edges[:, inside | ~amb[edges[0]]], score[inside | ~amb[edges[0]]]
    return labels
