"""A road-search track follower: pixel doublets, helix extrapolation layer by layer, hit windows.

The classical combinatorial track finding of silicon trackers, reduced to its core (cf. the
ATLAS/ACTS seed finder and combinatorial Kalman filter, and the track-following solutions of the
TrackML throughput phase, Amrouche et al., arXiv:2105.01160):

1. **Surfaces** are read from the hits: one per ``100 * volume_id + layer_id`` key, a cylinder
   (barrel volumes 8, 13, 17) at the hits' median radius or a disk at their median z, with the
   hits' extent.
2. **Seeds**: doublets of pixel hits on listed layer pairs (barrel layer i -> i+1, i+2; inner
   barrel layers -> first disks; disk j -> j+1, j+2), within the phi window of ``pt_min``,
   whose circle through the beam line has pT >= ``pt_min`` and whose line in r-z meets the
   beam line within ``z0_max``.
3. **Following**: the helix through (beam line or first hit, middle hit, last hit) — a circle
   in x-y and a straight line in z against the transverse path — is intersected with the
   surfaces in the order it can reach them, up to the nearest one ahead; there the nearest hit
   within the window is added (the window:
   ``window_scale`` x (base of the sensor type + growth per mm of extrapolation)); a surface
   without one is a hole. A seed must find its third hit on the next surface; a candidate
   stops after ``max_holes`` holes in a row or ``max_steps``. Module overlaps: each hit's partner
   on the overlapping module (``OVERLAP_SHIFT`` away in r or z, from detectors.csv) is looked for
   within the window where the helix would cross that module, and added (not used in the fit).
4. **Ambiguities**: candidates with at least ``min_hits`` hits, longest first, claim their hits
   unless more than ``max_shared`` of them are already taken; unclaimed hits are singletons.

All vectorised over candidates; positions in mm, pT in GeV, field in T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from particlegraph.errors import ConfigError
from particlegraph.graph.layerpair import phi_window_pairs

BARREL_VOLUMES = (8, 13, 17)
PIXEL_VOLUMES = (7, 8, 9)
#: Base search window [mm] by volume (pixel, short strip, long strip: their resolution and
#: scattering at ~1 GeV) and its growth per mm of extrapolated path.
BASE_WINDOW = {7: 1.0, 8: 1.0, 9: 1.0, 12: 2.0, 13: 2.0, 14: 2.0, 16: 6.0, 17: 6.0, 18: 6.0}
WINDOW_GROWTH = 0.01
#: Offset [mm] of the neighbouring (overlapping) module: radial in a barrel, along z in a disk
#: (module centres at r +-0.25 / 1.5 mm and z +-2.5 / 4.5 / 5.5 mm in the challenge's
#: detectors.csv). The overlap partner of a hit is looked for where the helix meets it.
OVERLAP_SHIFT = {7: 4.5, 8: 0.5, 9: 4.5, 12: 4.5, 13: 3.0, 14: 4.5, 16: 5.5, 17: 3.0, 18: 5.5}


@dataclass(frozen=True)
class FollowerConfig:
    """Settings of the follower (``window_scale`` is chosen on validation events)."""

    pt_min: float = 0.1  # seeds' pT threshold [GeV] (raise it at high pile-up for speed)
    bz: float = 2.0  # field [T]
    z0_max: float = 200.0  # |z| of the seed's beam-line intercept [mm]
    window_scale: float = 1.0
    max_holes: int = 2  # consecutive surfaces without a hit before a candidate stops
    max_steps: int = 24
    min_hits: int = 4
    max_shared: float = 0.34  # share of a candidate's hits that may belong to a kept track

    def __post_init__(self) -> None:
        if not (self.pt_min > 0 and self.bz > 0 and self.window_scale > 0):
            raise ConfigError("follower pt_min, bz and window_scale must be positive")
        if self.min_hits < 3 or not 0 <= self.max_shared < 1:
            raise ConfigError("follower min_hits must be >= 3 and max_shared in [0, 1)")


@dataclass
class Surfaces:
    """Surfaces found in the hits, (S,) each; ``key`` 100 * volume + layer."""

    key: np.ndarray
    barrel: np.ndarray
    pos: np.ndarray  # radius (barrel) or z (disk) [mm]
    lo: np.ndarray  # extent: |z| max (barrel: -half, disk: r min)
    hi: np.ndarray
    window: np.ndarray  # base window [mm]
    shift: np.ndarray  # offset of the overlapping module [mm]


def find_surfaces(xyz: np.ndarray, layer: np.ndarray) -> tuple[Surfaces, np.ndarray]:
    """The surfaces and each hit's surface index (H,)."""
    keys, sid = np.unique(layer, return_inverse=True)
    vol = keys // 100
    barrel = np.isin(vol, BARREL_VOLUMES)
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    pos, lo, hi = (np.zeros(keys.size) for _ in range(3))
    for s in range(keys.size):
        m = sid == s
        if barrel[s]:
            pos[s] = np.median(r[m])
            half = np.abs(xyz[m, 2]).max() + 5.0
            lo[s], hi[s] = -half, half
        else:
            pos[s] = np.median(xyz[m, 2])
            lo[s], hi[s] = r[m].min() - 5.0, r[m].max() + 5.0
    window = np.array([BASE_WINDOW.get(int(v), 6.0) for v in vol])
    shift = np.array([OVERLAP_SHIFT.get(int(v), 3.0) for v in vol])
    return Surfaces(keys, barrel, pos, lo, hi, window, shift), sid


def _seed_layer_pairs(surf: Surfaces) -> list[tuple[int, int]]:
    """Ordered pixel surface pairs a track can cross in turn (one missed surface allowed)."""
    vol = surf.key // 100
    bar = [s for s in np.argsort(surf.pos) if vol[s] == 8]
    pairs = [(bar[i], bar[j]) for i in range(len(bar)) for j in (i + 1, i + 2) if j < len(bar)]
    for side_vol in (7, 9):
        disks = [s for s in np.argsort(np.abs(surf.pos)) if vol[s] == side_vol]
        pairs += [
            (disks[i], disks[j])
            for i in range(len(disks))
            for j in (i + 1, i + 2)
            if j < len(disks)
        ]
        pairs += [(b, d) for b in bar[:2] for d in disks[:2]]
    return pairs


def seed_doublets(
    xyz: np.ndarray, sid: np.ndarray, surf: Surfaces, cfg: FollowerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Hit index pairs (a, b) of the seeds (see the module docstring)."""

    r = np.hypot(xyz[:, 0], xyz[:, 1])
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    k_max = 0.299792458 * cfg.bz / cfg.pt_min * 1e-3  # [1/mm]
    out_a, out_b = [], []
    for s1, s2 in _seed_layer_pairs(surf):
        h1, h2 = np.flatnonzero(sid == s1), np.flatnonzero(sid == s2)
        if h1.size == 0 or h2.size == 0:
            continue
        r_lo, r_hi = r[h1].min(), r[h2].max()
        width = np.arcsin(min(k_max * r_hi / 2, 1.0)) - np.arcsin(min(k_max * r_lo / 2, 1.0))
        w = abs(width) + 0.005
        i, j = phi_window_pairs(phi[h1], phi[h2], -w, w)
        a, b = h1[i], h2[j]
        dr = r[b] - r[a]
        ok = dr > 1.0
        a, b, dr = a[ok], b[ok], dr[ok]
        z0 = xyz[a, 2] - r[a] * (xyz[b, 2] - xyz[a, 2]) / dr
        # circle through the beam line, a and b: k = 2 sin(angle aOb) / |ab|
        cross = xyz[a, 0] * xyz[b, 1] - xyz[a, 1] * xyz[b, 0]
        chord = np.hypot(xyz[b, 0] - xyz[a, 0], xyz[b, 1] - xyz[a, 1])
        k = 2 * cross / (r[a] * r[b] * np.maximum(chord, 1e-9))
        ok = (np.abs(z0) <= cfg.z0_max) & (np.abs(k) <= k_max)
        out_a.append(a[ok])
        out_b.append(b[ok])
    if not out_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_a), np.concatenate(out_b)


def _circle(
    p1: np.ndarray, p2: np.ndarray, p3: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (C, 2) and signed curvature (C,) (+: counter-clockwise from p1 to p3) of the
    circles through three points (C, 2) each; curvature 0 for collinear points."""
    ax, ay = p1[:, 0], p1[:, 1]
    bx, by = p2[:, 0], p2[:, 1]
    cx, cy = p3[:, 0], p3[:, 1]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    safe = np.where(np.abs(d) > 1e-9, d, 1e-9)
    a2, b2, c2 = ax**2 + ay**2, bx**2 + by**2, cx**2 + cy**2
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / safe
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / safe
    rho = np.hypot(ax - ux, ay - uy)
    curv = np.where(np.abs(d) > 1e-9, np.sign(d) / np.maximum(rho, 1e-9), 0.0)
    return np.stack([ux, uy], 1), curv, rho


@dataclass
class Candidates:
    """Track candidates being followed; arrays (C,) unless stated."""

    hits: np.ndarray  # (C, L) hit indices, -1 beyond n
    n: np.ndarray
    main: np.ndarray  # (C, L) the hits on the helix (overlap hits left out), -1 beyond n_main
    n_main: np.ndarray
    pos: np.ndarray  # (C, 3) current point (last hit or predicted point of a hole)
    surface: np.ndarray  # surface of pos
    holes: np.ndarray
    centre: np.ndarray  # (C, 2)
    curv: np.ndarray  # signed curvature [1/mm] (+ counter-clockwise)
    rho: np.ndarray
    dzds: np.ndarray


def refit_helix(c: Candidates, idx: np.ndarray, xyz: np.ndarray) -> None:
    """Helix of candidates ``idx``: circle through (beam line or first, middle, last hit)."""
    n = c.n_main[idx]
    first = c.main[idx, 0]
    last = c.main[idx, n - 1]
    mid = c.main[idx, n // 2]
    p1 = np.where((n < 3)[:, None], 0.0, xyz[first, :2])
    p2 = np.where((n < 3)[:, None], xyz[first, :2], xyz[mid, :2])
    centre, curv, rho = _circle(p1, p2, xyz[last, :2])
    c.centre[idx], c.curv[idx], c.rho[idx] = centre, curv, rho
    # z against the transverse path between the first and the last hit
    ang_f = np.arctan2(xyz[first, 1] - centre[:, 1], xyz[first, 0] - centre[:, 0])
    ang_l = np.arctan2(xyz[last, 1] - centre[:, 1], xyz[last, 0] - centre[:, 0])
    arc = rho * np.mod(np.sign(curv) * (ang_l - ang_f), 2 * np.pi)
    arc = np.where(curv == 0, np.hypot(*(xyz[last, :2] - xyz[first, :2]).T), arc)
    c.dzds[idx] = (xyz[last, 2] - xyz[first, 2]) / np.maximum(arc, 1e-6)


def _barrel_path(
    c: Candidates, k: np.ndarray, big_r: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    th_p: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Path s (C,) of candidates ``k`` to one barrel each (radius ``big_r``, z extent [lo, hi],
    (C,) each; inf where not reached ahead within half a turn)."""
    cen, rho = c.centre[k], c.rho[k]
    w = np.where(c.curv[k] < 0, -1.0, 1.0)
    d = np.hypot(cen[:, 0], cen[:, 1])
    a = (big_r**2 - rho**2 + d**2) / (2 * np.maximum(d, 1e-9))
    h2 = big_r**2 - a**2
    h = np.sqrt(np.clip(h2, 0, None))
    ux, uy = (cen[:, 0] / np.maximum(d, 1e-9)), (cen[:, 1] / np.maximum(d, 1e-9))
    best = np.full(k.size, np.inf)
    z0, dz = c.pos[k, 2], c.dzds[k]
    for sign in (1.0, -1.0):
        qx, qy = a * ux - sign * h * uy, a * uy + sign * h * ux
        th = np.arctan2(qy - cen[:, 1], qx - cen[:, 0])
        s = rho * np.mod(w * (th - th_p), 2 * np.pi)
        z = z0 + dz * s
        good = (h2 >= 0) & (s > 0.3) & (s < np.pi * rho) & (z >= lo) & (z <= hi)
        best = np.minimum(best, np.where(good, s, np.inf))
    return best


def _first_barrel(
    c: Candidates, idx: np.ndarray, surf: Surfaces, cols: np.ndarray, th_p: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest barrel among ``cols`` ahead of the candidates ``idx``: (barrel or -1, path s).

    The same answer as intersecting every barrel and keeping the smallest valid path, found by
    trying the barrels in the order of their radial distance from the candidate's point: the
    transverse path to a barrel of radius R is at least |R - r| (an arc is no shorter than its
    chord), so once that bound reaches the best path found (or half a turn) no further barrel
    can be nearer.
    """
    order = cols[np.argsort(surf.pos[cols], kind="stable")]
    radii = surf.pos[order]
    r_p = np.hypot(c.pos[idx, 0], c.pos[idx, 1])
    up = np.searchsorted(radii, r_p, side="left")  # next barrel outwards
    down = up - 1  # next barrel inwards
    found = np.full(idx.size, -1)
    s_found = np.full(idx.size, np.inf)
    todo = np.arange(idx.size)
    while todo.size:
        u, dn = up[todo], down[todo]
        gap_up = np.where(u < radii.size, radii[np.minimum(u, radii.size - 1)] - r_p[todo], np.inf)
        gap_dn = np.where(dn >= 0, r_p[todo] - radii[np.maximum(dn, 0)], np.inf)
        outward = gap_up <= gap_dn
        bound = np.where(outward, gap_up, gap_dn)
        k = idx[todo]
        go = np.isfinite(bound) & (bound < s_found[todo] + 1e-6) & (bound < np.pi * c.rho[k])
        todo, outward = todo[go], outward[go]
        if not todo.size:
            break
        pick = np.where(outward, up[todo], down[todo])
        col = order[pick]
        k = idx[todo]
        s = _barrel_path(c, k, surf.pos[col], surf.lo[col], surf.hi[col], th_p[todo])
        better = (s < s_found[todo]) & (col != c.surface[k])
        found[todo[better]] = col[better]
        s_found[todo[better]] = s[better]
        up[todo[outward]] += 1
        down[todo[~outward]] -= 1
    return found, s_found


def _first_disk(
    c: Candidates, idx: np.ndarray, surf: Surfaces, cols: np.ndarray, th_p: np.ndarray,
    s_limit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Nearest disk among ``cols`` (all on the side the candidates ``idx`` move to) crossed
    before the path ``s_limit`` (C,): (disk or -1, path s) per candidate.

    The same answer as intersecting every disk and keeping the smallest valid path below
    ``s_limit``, found without doing so: on a helix z grows linearly with the path, so the
    disks are crossed in the order of their z along the motion and the first one where the
    crossing is valid (ahead, within half a turn, on the disk's radii, not the current surface)
    is the nearest; disks beyond ``s_limit`` are never tried. Each step tries one disk for the
    candidates still looking, so the work follows the disks actually passed rather than every
    disk of the side.
    """
    side = np.sign(surf.pos[cols[0]])
    order = cols[np.argsort(side * surf.pos[cols], kind="stable")]
    z_sorted = side * surf.pos[order]
    dz = c.dzds[idx]
    start = np.searchsorted(z_sorted, side * c.pos[idx, 2], side="left")
    found = np.full(idx.size, -1)
    s_found = np.full(idx.size, np.inf)
    todo = np.flatnonzero(start < order.size)
    step = 0
    while todo.size:
        col = order[start[todo] + step]
        k = idx[todo]
        s = (surf.pos[col] - c.pos[k, 2]) / dz[todo]
        rho = c.rho[k]
        w = np.where(c.curv[k] < 0, -1.0, 1.0)
        th = th_p[todo] + w * s / rho
        cen = c.centre[k]
        rq = np.hypot(cen[:, 0] + rho * np.cos(th), cen[:, 1] + rho * np.sin(th))
        reach = (s < np.pi * rho) & (s < s_limit[todo])
        good = (s > 0.3) & reach & (rq >= surf.lo[col]) & (rq <= surf.hi[col])
        good &= col != c.surface[k]
        found[todo[good]] = col[good]
        s_found[todo[good]] = s[good]
        step += 1
        more = ~good & (reach | (s <= 0.3)) & (start[todo] + step < order.size)
        todo = todo[more]
    return found, s_found


def _next_surface(
    c: Candidates, idx: np.ndarray, surf: Surfaces
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest surface ahead of each candidate ``idx``: (surface or -1, path s, point (C, 3)).

    The barrels (:func:`_first_barrel`), then the disks on the side the candidate moves to that
    lie before the nearest barrel (:func:`_first_disk`), are intersected.
    """
    cen, rho = c.centre[idx], c.rho[idx]
    w = np.where(c.curv[idx] < 0, -1.0, 1.0)
    p = c.pos[idx]
    th_p = np.arctan2(p[:, 1] - cen[:, 1], p[:, 0] - cen[:, 0])
    bar = np.flatnonzero(surf.barrel)
    s_best = np.full(idx.size, np.inf)
    best = np.full(idx.size, -1)
    if bar.size:
        best, s_best = _first_barrel(c, idx, surf, bar, th_p)
    for side in (-1.0, 1.0):
        rows = np.flatnonzero(np.sign(c.dzds[idx]) == side)
        cols = np.flatnonzero(~surf.barrel & (np.sign(surf.pos) == side))
        if rows.size and cols.size:
            j, s = _first_disk(c, idx[rows], surf, cols, th_p[rows], s_best[rows])
            better = j >= 0
            s_best[rows[better]] = s[better]
            best[rows[better]] = j[better]
    found = np.isfinite(s_best)
    s_f = np.where(found, s_best, 0.0)
    th = th_p + w * s_f / rho
    point = np.stack(
        [cen[:, 0] + rho * np.cos(th), cen[:, 1] + rho * np.sin(th), p[:, 2] + c.dzds[idx] * s_f],
        axis=1,
    )
    return np.where(found, best, -1), s_f, point


def follow_step(
    c: Candidates, active: np.ndarray, xyz: np.ndarray, sid: np.ndarray, surf: Surfaces,
    trees: list[tuple[cKDTree, np.ndarray] | None], cfg: FollowerConfig,
) -> np.ndarray:  # fmt: skip
    """Extend the ``active`` candidates by one surface; returns those still active."""
    nxt, s, point = _next_surface(c, active, surf)
    keep = nxt >= 0
    active, nxt, s, point = active[keep], nxt[keep], s[keep], point[keep]
    got = np.full(active.size, -1)
    for sf in np.unique(nxt):
        tree = trees[sf]
        m = np.flatnonzero(nxt == sf)
        if tree is None:
            continue
        win = cfg.window_scale * (surf.window[sf] + WINDOW_GROWTH * s[m])
        dist, j = tree[0].query(point[m], k=1, distance_upper_bound=float(win.max()))
        hit = np.isfinite(dist) & (dist <= win)
        got[m[hit]] = tree[1][j[hit]]
    found = got >= 0
    f, h = active[found], active[~found]
    c.hits[f, c.n[f]] = got[found]
    c.n[f] += 1
    c.main[f, c.n_main[f]] = got[found]
    c.n_main[f] += 1
    c.pos[f] = xyz[got[found]]
    c.holes[f] = 0
    c.pos[h] = point[~found]
    c.holes[h] += 1
    c.surface[active] = nxt
    if f.size:
        refit_helix(c, f, xyz)
        _add_partners(c, f, got[found], xyz, sid, surf, trees, cfg)
    alive = (c.holes[active] <= cfg.max_holes) & (c.n_main[active] < c.main.shape[1])
    alive &= (c.n_main[active] > 2) | (c.holes[active] == 0)  # a seed needs a third hit at once
    alive &= c.n[active] < c.hits.shape[1] - 1
    kept: np.ndarray = active[alive]
    return kept


def _add_partners(
    c: Candidates, idx: np.ndarray, hit: np.ndarray, xyz: np.ndarray, sid: np.ndarray,
    surf: Surfaces, trees: list[tuple[cKDTree, np.ndarray] | None], cfg: FollowerConfig,
) -> None:  # fmt: skip
    """Append to candidates ``idx`` the overlap partner of their hit ``hit`` when there is one:
    a hit of the same surface within the window of where the helix, moved by the surface's
    module offset (in r on a barrel, in z on a disk) before or after the hit, would cross."""
    cen, w = c.centre[idx], np.where(c.curv[idx] < 0, -1.0, 1.0)
    p = xyz[hit]
    rx, ry = p[:, 0] - cen[:, 0], p[:, 1] - cen[:, 1]
    norm = np.maximum(np.hypot(rx, ry), 1e-9)
    tx, ty = -w * ry / norm, w * rx / norm  # transverse unit tangent
    dz = c.dzds[idx]
    s_of = sid[hit]
    radial = np.abs(tx * p[:, 0] + ty * p[:, 1]) / np.maximum(np.hypot(p[:, 0], p[:, 1]), 1e-9)
    step = np.where(
        surf.barrel[s_of],
        surf.shift[s_of] / np.maximum(radial, 0.2),
        surf.shift[s_of] / np.maximum(np.abs(dz), 0.05),
    )
    best = np.full(idx.size, -1)
    best_d = np.full(idx.size, np.inf)
    for sign in (1.0, -1.0):
        q = p + sign * step[:, None] * np.stack([tx, ty, dz], axis=1)
        for sf in np.unique(s_of):
            tree = trees[sf]
            m = np.flatnonzero(s_of == sf)
            if tree is None or tree[1].size < 2:
                continue
            win = cfg.window_scale * surf.window[sf]
            dist, j = tree[0].query(q[m], k=2, distance_upper_bound=win)
            for col in (0, 1):
                cand = np.where(
                    np.isfinite(dist[:, col]), tree[1][np.minimum(j[:, col], tree[1].size - 1)], -1
                )
                ok = (cand >= 0) & (cand != hit[m]) & (dist[:, col] < best_d[m])
                best[m[ok]], best_d[m[ok]] = cand[ok], dist[ok, col]
    take = (best >= 0) & (c.n[idx] < c.hits.shape[1])
    o = idx[take]
    c.hits[o, c.n[o]] = best[take]
    c.n[o] += 1


def _resolve(hits: np.ndarray, n: np.ndarray, num_hits: int, cfg: FollowerConfig) -> np.ndarray:
    """Track id per hit: longest candidates first claim their hits (see the module doc).

    ``hits`` (C, L) candidate hit indices (-1 padded), ``n`` (C,) their counts.
    """
    track = np.full(num_hits, -1, dtype=np.int64)
    keep = n >= cfg.min_hits
    hits, n = hits[keep], n[keep]
    if n.size:  # identical candidates (one track from several seeds) are claimed once
        rows = np.sort(np.where(hits < 0, num_hits, hits), axis=1)
        _, first = np.unique(rows, axis=0, return_index=True)
        hits, n = hits[first], n[first]
    order = np.argsort(-n, kind="stable")
    next_id = 0
    for ci in order.tolist():
        hs = hits[ci, : n[ci]]
        free = track[hs] < 0
        n_free = int(free.sum())
        if n_free < (1.0 - cfg.max_shared) * hs.size or n_free < cfg.min_hits - 1:
            continue
        track[hs[free]] = next_id
        next_id += 1
    lone = track < 0
    track[lone] = next_id + np.arange(int(lone.sum()))
    return track


def _follow_chunk(
    a: np.ndarray, b: np.ndarray, xyz: np.ndarray, sid: np.ndarray, surf: Surfaces,
    trees: list[tuple[cKDTree, np.ndarray] | None], cfg: FollowerConfig,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Follow the seeds (a, b); the hits (C', L) and counts (C',) of the candidates that can
    become tracks (at least ``min_hits`` hits)."""
    n_c = a.size
    length = cfg.max_steps + 2
    c = Candidates(
        hits=np.full((n_c, 2 * length), -1, dtype=np.int64), n=np.full(n_c, 2),
        main=np.full((n_c, length), -1, dtype=np.int64), n_main=np.full(n_c, 2),
        pos=xyz[b].copy(), surface=sid[b].copy(), holes=np.zeros(n_c, dtype=np.int64),
        centre=np.zeros((n_c, 2)), curv=np.zeros(n_c), rho=np.zeros(n_c), dzds=np.zeros(n_c),
    )  # fmt: skip
    c.hits[:, 0], c.hits[:, 1] = a, b
    c.main[:, 0], c.main[:, 1] = a, b
    refit_helix(c, np.arange(n_c), xyz)
    active = np.arange(n_c)
    for _ in range(cfg.max_steps):
        if active.size == 0:
            break
        active = follow_step(c, active, xyz, sid, surf, trees, cfg)
    alive = np.flatnonzero(c.n >= cfg.min_hits - 2)
    for col in (0, 1):  # the seed hits' partners, now that the helix is known
        _add_partners(c, alive, c.main[alive, col], xyz, sid, surf, trees, cfg)
    keep = c.n >= cfg.min_hits
    return c.hits[keep], c.n[keep]


def follow_tracks(xyz: np.ndarray, layer: np.ndarray, cfg: FollowerConfig) -> np.ndarray:
    """Track id (H,) of every hit (singletons for hits on no track); see the module docstring.

    Args:
        xyz: (H, 3) hit positions [mm]. layer: (H,) ``100 * volume_id + layer_id``.
        cfg: the follower's settings.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    h = xyz.shape[0]
    if h == 0:
        return np.zeros(0, dtype=np.int64)
    surf, sid = find_surfaces(xyz, np.asarray(layer, dtype=np.int64))
    trees: list[tuple[cKDTree, np.ndarray] | None] = []
    for s in range(surf.key.size):
        m = np.flatnonzero(sid == s)
        trees.append((cKDTree(xyz[m]), m) if m.size else None)
    a, b = seed_doublets(xyz, sid, surf, cfg)
    n_c = a.size
    if n_c == 0:
        return np.arange(h, dtype=np.int64)
    chunk = 20000
    parts = [_follow_chunk(a[i : i + chunk], b[i : i + chunk], xyz, sid, surf, trees, cfg)
             for i in range(0, n_c, chunk)]  # fmt: skip
    hits = np.concatenate([p[0] for p in parts])
    n = np.concatenate([p[1] for p in parts])
    return _resolve(hits, n, h, cfg)
