"""Extension of track candidates along their helix with the hits that no track holds.

A learned track often misses hits: an edge the classifier scored low, a hit of a layer the
layer-pair map does not connect, a track cut where another one claimed a shared hit. As in a
combinatorial track follower (:mod:`.follower`), each candidate with at least ``min_hits`` hits
gets the helix through its first, middle and last hit (a circle in x-y, a straight line in z
against the transverse path) and is followed surface by surface, outward from its outermost hit
and inward from its innermost: on the nearest surface ahead, the nearest *free* hit within the
follower's window (``window_scale`` x (base + growth per mm)) joins it, and the helix is refit;
a candidate stops after ``max_holes`` surfaces in a row without such a hit. A free hit reached by
several candidates goes to the longest. Positions in mm.

:func:`follow_free` then runs the track follower on the hits still free: the layer-pair graph
has a pT floor (its windows are learned on particles above ``map.pt_min``), so the softest
particles have no edges at all, and only a road search can find them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.follower import (
    Candidates,
    FollowerConfig,
    Surfaces,
    find_surfaces,
    follow_step,
    follow_tracks,
    refit_helix,
)

Trees = list[tuple[cKDTree, np.ndarray] | None]


#: The follower on the free hits (:func:`follow_free`), chosen on the 3 validation events of the
#: mu = 50 run after ``splitext`` at 0.85: pt_min 0.03 / 0.05 / 0.07 scored 0.924 / 0.925 / 0.924
#: at window scale 3; window scales 2 / 3 / 4 / 5 scored 0.923 / 0.925 / 0.924 / 0.923.
FREE_FOLLOWER = FollowerConfig(pt_min=0.05, window_scale=3.0)


@dataclass(frozen=True)
class ExtendConfig:
    """Settings of the extension. The defaults were chosen on the 3 validation events of the
    mu = 50 run (``splitext``): window scales 1.0, 1.5, 2.0, 2.5, 3.0, 4.0 scored 0.881, 0.889,
    0.893, 0.895, 0.895, 0.895 at threshold 0.8; one or two holes the same within 0.001."""

    window_scale: float = 3.0
    max_holes: int = 1
    max_steps: int = 12
    min_hits: int = 3

    def __post_init__(self) -> None:
        if not self.window_scale > 0 or self.max_holes < 0 or self.max_steps < 0:
            raise ConfigError("extend window_scale must be > 0, max_holes and max_steps >= 0")
        if self.min_hits < 3:
            raise ConfigError("extend min_hits must be >= 3 (a helix needs three hits)")


def free_trees(xyz: np.ndarray, sid: np.ndarray, n_surf: int, free: np.ndarray) -> Trees:
    """Per surface: a k-d tree of its free hits and their indices (None without any)."""
    trees: Trees = []
    for s in range(n_surf):
        m = np.flatnonzero((sid == s) & free)
        trees.append((cKDTree(xyz[m]), m) if m.size else None)
    return trees


def ordered_members(
    track: np.ndarray, xyz: np.ndarray, min_hits: int, outward: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hits of the tracks with >= ``min_hits`` hits (id >= 0), grouped by track and sorted
    by distance from the origin (descending when not ``outward``): (hits (M,), first index of
    each track's group (C,), group sizes (C,))."""
    ids, cnt = np.unique(track[track >= 0], return_counts=True)
    sel = np.flatnonzero(np.isin(track, ids[cnt >= min_hits]))
    dist = np.linalg.norm(xyz[sel], axis=1)
    sel = sel[np.lexsort((dist if outward else -dist, track[sel]))]
    t = track[sel]
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) if sel.size else np.zeros(0, np.int64)
    return sel, starts, np.diff(np.r_[starts, sel.size]).astype(np.int64)


def start_candidates(
    sel: np.ndarray, starts: np.ndarray, n: np.ndarray, xyz: np.ndarray, sid: np.ndarray,
    room: int,
) -> Candidates:  # fmt: skip
    """Follower candidates holding the grouped hits ``sel`` (see :func:`ordered_members`), at the
    last hit of each group, with ``room`` free slots, and their helices fitted."""
    n_c = starts.size
    length = int(n.max()) + room + 2
    main = np.full((n_c, length), -1, dtype=np.int64)
    main[np.repeat(np.arange(n_c), n), np.arange(sel.size) - np.repeat(starts, n)] = sel
    hits = np.full((n_c, 2 * length), -1, dtype=np.int64)
    hits[:, :length] = main
    last = sel[starts + n - 1]
    c = Candidates(
        hits=hits, n=n.copy(), main=main, n_main=n.copy(), pos=xyz[last].copy(),
        surface=sid[last].copy(), holes=np.zeros(n_c, dtype=np.int64), centre=np.zeros((n_c, 2)),
        curv=np.zeros(n_c), rho=np.zeros(n_c), dzds=np.zeros(n_c),
    )  # fmt: skip
    refit_helix(c, np.arange(n_c), xyz)
    return c


def follow_candidates(
    track: np.ndarray, xyz: np.ndarray, sid: np.ndarray, surf: Surfaces, cfg: ExtendConfig,
    outward: bool, free: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Follow every candidate of ``track`` beyond one end over the hits ``free`` (N,) bool:
    (owner track id (C,), hits found (C, K) -1 padded, their counts (C,)), longest first."""
    sel, starts, n = ordered_members(track, xyz, cfg.min_hits, outward)
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.int64), np.zeros(0, np.int64)
    c = start_candidates(sel, starts, n, xyz, sid, cfg.max_steps)
    trees = free_trees(xyz, sid, surf.key.size, free)
    fcfg = FollowerConfig(window_scale=cfg.window_scale, max_holes=cfg.max_holes,
                          max_steps=cfg.max_steps, min_hits=cfg.min_hits)  # fmt: skip
    active = np.arange(starts.size)
    for _ in range(cfg.max_steps):
        if active.size == 0:
            break
        active = follow_step(c, active, xyz, sid, surf, trees, fcfg)
    found = c.n - n
    cols = np.arange(max(int(found.max()), 1))[None, :]
    idx = np.minimum(n[:, None] + cols, c.hits.shape[1] - 1)
    new = np.where(cols < found[:, None], np.take_along_axis(c.hits, idx, axis=1), -1)
    order = np.argsort(-c.n, kind="stable")
    return track[sel[starts]][order], new[order], found[order]


def extend_once(
    track: np.ndarray, xyz: np.ndarray, sid: np.ndarray, surf: Surfaces, cfg: ExtendConfig,
    outward: bool,
) -> np.ndarray:  # fmt: skip
    """``track`` (N,) (-1: free) with the free hits found beyond one end of each candidate."""
    owner, new, found = follow_candidates(track, xyz, sid, surf, cfg, outward, track < 0)
    out = track.copy()
    for ci in range(owner.size):
        hs = new[ci, : found[ci]]
        out[hs[out[hs] < 0]] = owner[ci]
    return out


def join_segments(
    track: np.ndarray, xyz: np.ndarray, sid: np.ndarray, surf: Surfaces, cfg: ExtendConfig
) -> np.ndarray:
    """``track`` (N,) (-1: free) with segment B merged into candidate A when A's outward helix,
    followed over all hits, runs through at least two of B's hits and more than half of them
    (each B joins the A that holds most of its hits; chains A -> B -> C merge whole). Track ids
    are renumbered; free hits stay -1."""
    owner, new, found = follow_candidates(
        track, xyz, sid, surf, cfg, True, np.ones(track.size, dtype=bool)
    )
    a = np.repeat(owner, found)
    b = track[new[np.arange(new.shape[1])[None, :] < found[:, None]]]
    ok = (b >= 0) & (b != a)
    if not ok.any():
        return track.copy()
    assigned = track >= 0
    ids, dense = np.unique(track[assigned], return_inverse=True)
    size = np.bincount(dense, minlength=ids.size)
    pair, count = np.unique(
        np.searchsorted(ids, a[ok]) * ids.size + np.searchsorted(ids, b[ok]), return_counts=True
    )
    pa, pb = pair // ids.size, pair % ids.size
    good = (count >= 2) & (2 * count > size[pb])
    pa, pb, count = pa[good], pb[good], count[good]
    best = np.lexsort((-count, pb))
    first = best[np.r_[True, pb[best][1:] != pb[best][:-1]]] if pb.size else best
    adj = coo_matrix((np.ones(first.size), (pa[first], pb[first])), shape=(ids.size, ids.size))
    _, label = connected_components(adj, directed=False)
    out = track.copy()
    out[assigned] = label[dense]
    return out


def release_small(track: np.ndarray, min_hits: int) -> np.ndarray:
    """``track`` (N,) with the hits of tracks shorter than ``min_hits`` set free (-1)."""
    _, inv, cnt = np.unique(track, return_inverse=True, return_counts=True)
    out: np.ndarray = np.where((cnt[inv.reshape(-1)] < min_hits) | (track < 0), -1, track)
    return out


def extend_tracks(
    track: np.ndarray, xyz: np.ndarray, layer: np.ndarray, cfg: ExtendConfig, join: bool = True
) -> np.ndarray:
    """Track id (N,) after joining segments on one helix (``join``), then extending every
    candidate outward and inward with the free hits (see the module docstring); hits of tracks
    shorter than ``min_hits`` are free, and -1 marks a hit on no track.

    Args:
        track: (N,) track id per hit, -1 for a free hit. xyz: (N, 3) positions [mm].
        layer: (N,) layer keys ``100 * volume_id + layer_id``.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    out = release_small(np.asarray(track, dtype=np.int64), cfg.min_hits)
    if out.size == 0:
        return out
    surf, sid = find_surfaces(xyz, np.asarray(layer, dtype=np.int64))
    if join:
        out = join_segments(out, xyz, sid, surf, cfg)
    out = extend_once(out, xyz, sid, surf, cfg, outward=True)
    return extend_once(out, xyz, sid, surf, cfg, outward=False)


def follow_free(
    track: np.ndarray, xyz: np.ndarray, layer: np.ndarray, cfg: FollowerConfig = FREE_FOLLOWER
) -> np.ndarray:
    """``track`` (N,) (-1: free) with the tracks that :func:`.follower.follow_tracks` finds among
    the free hits alone added under new ids; its singletons stay free."""
    free = np.flatnonzero(track < 0)
    out = track.copy()
    if free.size == 0:
        return out
    found = follow_tracks(xyz[free], layer[free], cfg)
    _, inv, cnt = np.unique(found, return_inverse=True, return_counts=True)
    start = int(track.max()) + 1 if track.size else 0
    out[free] = np.where(cnt[inv.reshape(-1)] > 1, found + start, -1)
    return out
