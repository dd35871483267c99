"""The follower's nearest-disk search against intersecting every disk (the slow reference)."""

from __future__ import annotations

import numpy as np

from particlegraph.tasks.tracking.follower import Candidates, Surfaces, _first_disk


def _all_disk_paths(c: Candidates, idx, surf: Surfaces, cols, th_p) -> np.ndarray:
    """Path (C, D) to every disk of ``cols`` (inf where invalid or the current surface)."""
    cen, rho = c.centre[idx], c.rho[idx][:, None]
    w = np.where(c.curv[idx] < 0, -1.0, 1.0)[:, None]
    s = (surf.pos[cols][None, :] - c.pos[idx, 2:3]) / c.dzds[idx][:, None]
    th = th_p[:, None] + w * s / rho
    rq = np.hypot(cen[:, 0:1] + rho * np.cos(th), cen[:, 1:2] + rho * np.sin(th))
    good = (s > 0.3) & (s < np.pi * rho) & (rq >= surf.lo[cols]) & (rq <= surf.hi[cols])
    good &= cols[None, :] != c.surface[idx][:, None]
    return np.where(good, s, np.inf)


def _candidates(rng: np.random.Generator, n: int, surface: np.ndarray) -> Candidates:
    rho = rng.uniform(150.0, 5000.0, n)  # 0.1-3 GeV at 2 T
    phi0 = rng.uniform(-np.pi, np.pi, n)
    curv = rng.choice([-1.0, 1.0], n) / rho
    centre = np.stack([rho * np.cos(phi0), rho * np.sin(phi0)], axis=1)
    ang = rng.uniform(0, 2 * np.pi, n)
    pos = np.stack([centre[:, 0] + rho * np.cos(ang), centre[:, 1] + rho * np.sin(ang),
                    rng.uniform(-1500, 1500, n)], axis=1)  # fmt: skip
    z = np.zeros(n, dtype=np.int64)
    return Candidates(hits=np.zeros((n, 2), np.int64), n=z, main=np.zeros((n, 2), np.int64),
                      n_main=z, pos=pos, surface=surface, holes=z, centre=centre, curv=curv,
                      rho=rho, dzds=rng.choice([-1.0, 1.0], n) * rng.uniform(0.05, 5.0, n))  # fmt: skip


def test_first_disk_is_the_nearest_valid_disk_below_the_limit():
    rng = np.random.default_rng(11)
    zs = np.array([600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0, 1800.0, 2100.0])
    pos = np.r_[-zs[::-1], zs]  # disks on both sides, in z order
    surf = Surfaces(key=np.arange(pos.size), barrel=np.zeros(pos.size, bool), pos=pos,
                    lo=np.full(pos.size, 30.0), hi=np.where(np.abs(pos) > 1200, 1000.0, 180.0),
                    window=np.ones(pos.size), shift=np.ones(pos.size))  # fmt: skip
    n = 4000
    c = _candidates(rng, n, rng.integers(0, pos.size, n))
    th_all = np.arctan2(c.pos[:, 1] - c.centre[:, 1], c.pos[:, 0] - c.centre[:, 0])
    limit_all = np.where(rng.random(n) < 0.5, np.inf, rng.uniform(50, 2000, n))
    checked = 0
    for side in (-1.0, 1.0):
        rows = np.flatnonzero(np.sign(c.dzds) == side)
        cols = np.flatnonzero(np.sign(pos) == side)[::-1] if side < 0 else np.flatnonzero(pos > 0)
        ref = _all_disk_paths(c, rows, surf, cols, th_all[rows])
        j_ref = np.argmin(ref, axis=1)
        s_ref = ref[np.arange(rows.size), j_ref]
        ok = s_ref < limit_all[rows]
        got, s_got = _first_disk(c, rows, surf, cols, th_all[rows], limit_all[rows])
        assert np.array_equal(got >= 0, ok)
        assert np.array_equal(got[ok], cols[j_ref[ok]])
        assert np.array_equal(s_got[ok], s_ref[ok])
        checked += int(ok.sum())
    assert 500 < checked < n  # both outcomes occur


def _all_barrel_paths(c: Candidates, idx, surf: Surfaces, cols, th_p) -> np.ndarray:
    """Path (C, B) to every barrel of ``cols`` (inf where invalid or the current surface)."""
    cen, rho = c.centre[idx], c.rho[idx][:, None]
    w = np.where(c.curv[idx] < 0, -1.0, 1.0)[:, None]
    d = np.hypot(cen[:, 0], cen[:, 1])[:, None]
    big_r = surf.pos[cols][None, :]
    a = (big_r**2 - rho**2 + d**2) / (2 * d)
    h2 = big_r**2 - a**2
    h = np.sqrt(np.clip(h2, 0, None))
    ux, uy = cen[:, 0:1] / d, cen[:, 1:2] / d
    best = np.full(h.shape, np.inf)
    for sign in (1.0, -1.0):
        qx, qy = a * ux - sign * h * uy, a * uy + sign * h * ux
        th = np.arctan2(qy - cen[:, 1:2], qx - cen[:, 0:1])
        s = rho * np.mod(w * (th - th_p[:, None]), 2 * np.pi)
        z = c.pos[idx, 2:3] + c.dzds[idx][:, None] * s
        good = (h2 >= 0) & (s > 0.3) & (s < np.pi * rho)
        good &= (z >= surf.lo[cols]) & (z <= surf.hi[cols])
        best = np.minimum(best, np.where(good, s, np.inf))
    return np.where(cols[None, :] == c.surface[idx][:, None], np.inf, best)


def test_first_barrel_is_the_nearest_valid_barrel():
    from particlegraph.tasks.tracking.follower import _first_barrel

    rng = np.random.default_rng(12)
    radii = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0, 820.0, 1020.0])
    order = rng.permutation(radii.size)  # surfaces not stored in radius order
    pos = radii[order]
    half = np.where(pos < 200, 500.0, 1100.0)
    surf = Surfaces(key=np.arange(pos.size), barrel=np.ones(pos.size, bool), pos=pos, lo=-half,
                    hi=half, window=np.ones(pos.size), shift=np.ones(pos.size))  # fmt: skip
    n = 4000
    c = _candidates(rng, n, rng.integers(0, pos.size, n))
    c.pos[:, 2] = rng.uniform(-1000, 1000, n)
    idx = np.arange(n)
    th = np.arctan2(c.pos[:, 1] - c.centre[:, 1], c.pos[:, 0] - c.centre[:, 0])
    cols = np.arange(pos.size)
    ref = _all_barrel_paths(c, idx, surf, cols, th)
    j_ref = np.argmin(ref, axis=1)
    s_ref = ref[idx, j_ref]
    ok = np.isfinite(s_ref)
    got, s_got = _first_barrel(c, idx, surf, cols, th)
    assert np.array_equal(got >= 0, ok)
    assert np.array_equal(got[ok], cols[j_ref[ok]]) and np.array_equal(s_got[ok], s_ref[ok])
    assert 500 < ok.sum() < n
