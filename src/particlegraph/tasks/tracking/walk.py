"""Walkthrough track building: the best-scoring path from each hit, claimed longest first.

The edges above the threshold form a directed graph pointing away from the collision (the
layer-pair graph's edges run inner to outer; overlap pairs away from the origin). For every hit
``v`` a dynamic programme over that graph finds the path of largest summed edge score
starting at ``v`` (``value[v]``, with ``succ[v]`` its next hit): with a classifier trained on
same-particle edges a track's path through every one of its hits outscores its skip edges and a
jump onto another track whose remainder is shorter. Paths are then claimed greedily, highest
value first, as in the walkthrough of Exa.TrkX / acorn (Ju et al., arXiv:2103.06995; the
``CCandWalk`` step of acorn, in spirit, written here from its description): a path claims its
hits when it has at least ``min_hits`` of them. A path that runs into a hit claimed earlier in
the same round is left for the next round, where the values are recomputed on the unclaimed hits
only, so a track whose best continuation was taken by a longer one continues over its own next
best edges instead of being cut. Hits on no claimed path stay unassigned (``-1``).

Arrays: ``edges`` (2, E) int64 hit indices, ``score`` (E,) in [0, 1]; hits are 0..N-1.
"""

from __future__ import annotations

import numpy as np

#: Most hits on one path: a bound on the programme's iterations (a track crosses about 10-20
#: layers; a cycle in the graph, possible between two same-layer hits, cannot loop forever).
MAX_PATH = 40


def _group_max(src: np.ndarray, starts: np.ndarray, cand: np.ndarray, num_hits: int) -> np.ndarray:
    """Per hit (N,): the largest ``cand`` of its outgoing edges (0 without any); ``src`` (E,)
    sorted, ``starts`` the first edge of each source group."""
    out = np.zeros(num_hits)
    if cand.size:
        out[src[starts]] = np.maximum(np.maximum.reduceat(cand, starts), 0.0)
    return out


def path_values(
    num_hits: int, edges: np.ndarray, gain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Longest-path programme: ``value`` (N,) the largest summed ``gain`` (E,) > 0 of a path
    starting at each hit, and ``succ`` (N,) the next hit on that path (-1 at a path's end).

    Ties go to the edge listed first.
    """
    order = np.argsort(edges[0], kind="stable")
    src, dst, g = edges[0][order], edges[1][order], gain[order]
    value = np.zeros(num_hits)
    succ = np.full(num_hits, -1, dtype=np.int64)
    if src.size == 0:
        return value, succ
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    for _ in range(MAX_PATH):
        new = _group_max(src, starts, g + value[dst], num_hits)
        if np.array_equal(new, value):
            break
        value = new
    cand = g + value[dst]
    best = np.lexsort((np.arange(src.size), -cand, src))
    first = best[np.r_[True, src[best][1:] != src[best][:-1]]]
    succ[src[first]] = dst[first]
    return value, succ


def claim_paths(
    value: np.ndarray, succ: np.ndarray, track: np.ndarray, min_hits: int, final: bool
) -> int:
    """Claim paths into ``track`` (N,) (-1: free; modified in place), highest ``value`` first;
    returns how many paths were claimed.

    A path follows ``succ`` from a free hit while the hits are free. One that stops at a claimed
    hit (rather than at its end) is claimed only when ``final``; otherwise it waits for the next
    round. Paths shorter than ``min_hits`` are never claimed.
    """
    next_id = int(track.max()) + 1 if track.size else 0
    claimed = 0
    for v in np.argsort(-value, kind="stable").tolist():
        if value[v] <= 0.0:
            break
        if track[v] >= 0:
            continue
        path = [v]
        u = int(succ[v])
        while u >= 0 and track[u] < 0 and len(path) < MAX_PATH and u not in path[-3:]:
            path.append(u)
            u = int(succ[u])
        cut = u >= 0 and track[u] >= 0
        if len(path) < min_hits or (cut and not final):
            continue
        track[path] = next_id
        next_id += 1
        claimed += 1
    return claimed


def walk_tracks(
    num_hits: int,
    edges: np.ndarray,
    score: np.ndarray,
    threshold: float,
    min_hits: int = 3,
    rounds: int = 4,
) -> np.ndarray:
    """Track id (N,) of every hit from the walkthrough (see the module docstring); -1 for hits
    on no track.

    Args:
        num_hits: N. edges: (2, E) directed hit pairs. score: (E,) edge scores in [0, 1].
        threshold: edges scoring above it are walked.
        min_hits: shortest path that becomes a track.
        rounds: claiming rounds; the last one also claims paths cut by a claimed hit.
    """
    keep = score > threshold
    e, s = edges[:, keep], np.asarray(score[keep], dtype=np.float64)
    track = np.full(num_hits, -1, dtype=np.int64)
    for r in range(rounds):
        free = (track[e[0]] < 0) & (track[e[1]] < 0)
        e, s = e[:, free], s[free]
        if e.shape[1] == 0:
            break
        value, succ = path_values(num_hits, e, s)
        value[track >= 0] = 0.0
        n = claim_paths(value, succ, track, min_hits, final=r == rounds - 1)
        if n == 0 and r < rounds - 1:
            claim_paths(value, succ, track, min_hits, final=True)
    return track
