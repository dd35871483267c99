"""Track-quality cleanup after the building: dissolve short or weakly linked candidates.

At pile-up 200 most fake tracks are short and held together by edges the classifier doubts
(docs/tracking.md, "Fourth session"). A fake track adds nothing to the TrackML score (its hits
count for no particle), so dissolving it lowers the fake rate at no cost; dissolving a real
track costs its weight. Two cuts, both off by default (``0``), chosen on validation events:

- ``min_hits``: a candidate with fewer hits is dissolved;
- ``min_edge_score``: a candidate whose classified graph edges joining two of its own hits
  (every score, not only those above the building threshold) average below this is dissolved.
  A candidate without such an edge (one the track follower found in ``splitfollow``) is judged
  by ``min_hits`` alone.

A dissolved candidate's hits become tracks of one hit each (what the building does with a hit
on no track), so they leave the candidates of the fake and duplicate rates (>= 3 hits).
"""

from __future__ import annotations

import numpy as np


def track_quality(track: np.ndarray, edges: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """Per track (T,), in the order of ``np.unique(track)``: ``track`` id, ``nhits``,
    ``n_edges`` (graph edges between two of its hits), ``mean_score`` and ``min_score`` of
    those edges (NaN without one) and ``unlinked_share`` (share of its hits on none of them).

    Args:
        track: (N,) track id per hit. edges: (2, E) graph edges. score: (E,) their scores.
    """
    ids, inv = np.unique(track, return_inverse=True)
    inv = inv.reshape(-1)
    t = ids.size
    nhits = np.bincount(inv, minlength=t)
    inside = inv[edges[0]] == inv[edges[1]] if edges.size else np.zeros(0, dtype=bool)
    owner = inv[edges[0][inside]] if edges.size else np.zeros(0, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)[inside]
    n_edges = np.bincount(owner, minlength=t)
    total = np.bincount(owner, weights=s, minlength=t)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_edges > 0, total / np.maximum(n_edges, 1), np.nan)
    low = np.full(t, np.inf)
    np.minimum.at(low, owner, s)
    linked = np.zeros(track.size, dtype=bool)
    if edges.size:
        linked[edges[0][inside]] = True
        linked[edges[1][inside]] = True
    unlinked = np.bincount(inv, weights=(~linked).astype(np.float64), minlength=t)
    return {
        "track": ids,
        "nhits": nhits,
        "n_edges": n_edges,
        "mean_score": mean,
        "min_score": np.where(n_edges > 0, low, np.nan),
        "unlinked_share": unlinked / np.maximum(nhits, 1),
    }


def clean_tracks(
    track: np.ndarray,
    edges: np.ndarray,
    score: np.ndarray,
    *,
    min_hits: int = 0,
    min_edge_score: float = 0.0,
) -> np.ndarray:
    """Track ids (N,) with the candidates below ``min_hits`` hits or ``min_edge_score`` mean edge
    score dissolved into one-hit tracks (new ids after the others); ``track`` itself when both
    cuts are off. Shapes as in :func:`track_quality`."""
    if min_hits <= 0 and min_edge_score <= 0.0:
        return track
    q = track_quality(track, edges, score)
    weak = q["nhits"] < min_hits
    weak |= (q["n_edges"] > 0) & (np.nan_to_num(q["mean_score"]) < min_edge_score)
    _, inv = np.unique(track, return_inverse=True)
    drop = weak[inv.reshape(-1)]
    out = np.asarray(track, dtype=np.int64).copy()
    start = int(out.max()) + 1 if out.size else 0
    out[drop] = start + np.arange(int(drop.sum()))
    return out
