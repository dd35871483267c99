"""Extension and joining of track candidates along their helix, and the modes that use them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tracking_events import exact_silicon

from particlegraph.errors import ConfigError
from particlegraph.sim.particles import make_particles
from particlegraph.tasks.tracking.build import BuildConfig, build_tracks
from particlegraph.tasks.tracking.extend import (
    ExtendConfig,
    extend_tracks,
    follow_free,
    join_segments,
    release_small,
)
from particlegraph.tasks.tracking.follower import FollowerConfig, find_surfaces
from particlegraph.tasks.tracking.score import trackml_score
from particlegraph.tasks.tracking.simulate import build_event


def _clean_event(n=10, seed=0, noise=0.1):
    """n well separated pions (pT 1-5 GeV, |eta| < 1.2) from (0, 0, 10 mm): no material, no
    smearing, no overlaps; ``rank`` orders each particle's hits by distance from the origin."""
    rng = np.random.default_rng(seed)
    cfg = exact_silicon(noise)
    phi = np.linspace(-np.pi, np.pi, n, endpoint=False) + rng.uniform(0, 0.1)
    pt, eta = rng.uniform(1.0, 5.0, n), rng.uniform(-1.2, 1.2, n)
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], 1)
    vtx = np.tile([0.0, 0.0, 10.0], (n, 1))
    ev = build_event(make_particles(np.full(n, 211), rng.choice([-1.0, 1.0], n), p4, vtx), cfg,
                     rng, 1)  # fmt: skip
    xyz = np.stack([ev.hits[c] for c in ("x", "y", "z")], 1).astype(np.float64)
    pid = ev.truth["particle_id"].astype(np.int64)
    order = np.lexsort((np.linalg.norm(xyz, axis=1), pid))
    rank = np.zeros(pid.size, dtype=np.int64)
    for p in np.unique(pid[pid > 0]):
        on = order[pid[order] == p]
        rank[on] = np.arange(on.size)
    layer = (100 * ev.hits["volume_id"] + ev.hits["layer_id"]).astype(np.int64)
    return SimpleNamespace(xyz=xyz, layer=layer, pid=pid, weight=ev.truth["weight"], rank=rank)


def _ids(track):
    out = track.copy()
    lone = out < 0
    out[lone] = out.max() + 1 + np.arange(int(lone.sum()))
    return out


def test_extension_completes_the_inner_and_the_outer_part_of_each_track():
    ev = _clean_event()
    assert (ev.pid > 0).sum() > 80 and (ev.pid == 0).sum() > 5
    n_hits = np.bincount(ev.pid)[ev.pid]
    for part in (ev.rank < 4, ev.rank >= n_hits - 5):  # the first 4 / the last 5 hits
        start = np.where(part & (ev.pid > 0), ev.pid, -1)
        assert trackml_score(ev.pid, ev.weight, _ids(start)) < 0.5
        out = extend_tracks(start, ev.xyz, ev.layer, ExtendConfig())
        assert trackml_score(ev.pid, ev.weight, _ids(out)) == pytest.approx(1.0)
        assert (out[ev.pid == 0] == -1).all()  # noise stays free
        assert (out[start >= 0] == start[start >= 0]).all()  # nothing is taken from a track


def test_join_merges_the_two_halves_of_each_track_and_nothing_else():
    ev = _clean_event(seed=1)
    n_hits = np.bincount(ev.pid)[ev.pid]
    halves = np.where(ev.pid > 0, 2 * ev.pid + (2 * ev.rank >= n_hits), -1)
    surf, sid = find_surfaces(ev.xyz, ev.layer)
    joined = join_segments(halves, ev.xyz, sid, surf, ExtendConfig())
    sig = ev.pid > 0
    assert (joined[~sig] == -1).all()
    # one track per particle: the partition of the signal hits is the particles'
    pairs = np.unique(np.stack([joined[sig], ev.pid[sig]]), axis=1)
    assert pairs.shape[1] == np.unique(ev.pid[sig]).size == np.unique(joined[sig]).size


def test_release_small_frees_short_tracks():
    track = np.array([0, 0, 0, 1, 1, -1, 2, 2, 2, 2])
    assert release_small(track, 3).tolist() == [0, 0, 0, -1, -1, -1, 2, 2, 2, 2]


def test_walkext_mode_builds_whole_tracks_from_the_first_edges():
    ev = _clean_event(seed=2)
    # a classifier that found only the edges between each particle's first four hits
    order = np.lexsort((ev.rank, ev.pid))
    a, b = order[:-1], order[1:]
    edges = np.stack([a, b])[:, (ev.pid[a] == ev.pid[b]) & (ev.pid[a] > 0) & (ev.rank[b] < 4)]
    score = np.full(edges.shape[1], 0.9)
    n = ev.pid.size
    walk = build_tracks(n, edges, score, BuildConfig(0.5, "walk"))
    assert trackml_score(ev.pid, ev.weight, walk) < 0.5
    full = build_tracks(n, edges, score, BuildConfig(0.5, "walkext"), ev.layer, ev.xyz)
    assert trackml_score(ev.pid, ev.weight, full) == pytest.approx(1.0)
    split = build_tracks(n, edges, score, BuildConfig(0.5, "splitext"), ev.layer, ev.xyz)
    assert trackml_score(ev.pid, ev.weight, split) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        build_tracks(n, edges, score, BuildConfig(0.5, "walkext"))


def _even_graph(ev):
    """Edges (2, E), their scores (E,) and the hit count of a graph that holds only the
    particles with an even id (the others are below its pT floor)."""
    order = np.lexsort((ev.rank, ev.pid))
    a, b = order[:-1], order[1:]
    on = (ev.pid[a] == ev.pid[b]) & (ev.pid[a] > 0) & (ev.pid[a] % 2 == 0)
    edges = np.stack([a, b])[:, on]
    return edges, np.full(edges.shape[1], 0.9), ev.pid.size


def test_splitfollow_finds_the_particles_without_edges():
    ev = _clean_event(seed=4)
    edges, score, n = _even_graph(ev)
    ext = build_tracks(n, edges, score, BuildConfig(0.5, "splitext"), ev.layer, ev.xyz)
    odd = (ev.pid % 2 == 1) & (ev.pid > 0)
    assert np.unique(ext[odd]).size == odd.sum()  # the odd particles' hits stay singletons
    full = build_tracks(n, edges, score, BuildConfig(0.5, "splitfollow"), ev.layer, ev.xyz)
    assert trackml_score(ev.pid, ev.weight, full) == pytest.approx(1.0)
    # the follower ran on the free hits only: the even particles keep their tracks
    even = (ev.pid % 2 == 0) & (ev.pid > 0)
    assert (np.unique(np.stack([full[even], ext[even]]), axis=1).shape[1]
            == np.unique(ext[even]).size)  # fmt: skip


def test_splitfollow_passes_its_follower_settings_to_the_second_pass():
    ev = _clean_event(seed=4)
    edges, score, n = _even_graph(ev)
    odd = (ev.pid % 2 == 1) & (ev.pid > 0)
    longest = int(np.bincount(ev.pid[odd]).max())
    # a follower that needs more hits than any odd particle has finds none of them
    strict = BuildConfig(0.5, "splitfollow", follow_min_hits=longest + 1)
    assert strict.follower().min_hits == longest + 1
    full = build_tracks(n, edges, score, strict, ev.layer, ev.xyz)
    assert np.unique(full[odd]).size == odd.sum()
    # the settings are the follower's: the same as running it by hand
    cfg = BuildConfig(0.5, "splitfollow", follow_pt_min=0.5, follow_window_scale=1.5)
    ext = build_tracks(n, edges, score, BuildConfig(0.5, "splitext"), ev.layer, ev.xyz)
    by_hand = follow_free(np.where(np.bincount(ext)[ext] > 1, ext, -1), ev.xyz, ev.layer,
                          FollowerConfig(pt_min=0.5, window_scale=1.5))  # fmt: skip
    got = build_tracks(n, edges, score, cfg, ev.layer, ev.xyz)
    assert (np.unique(np.stack([got, _ids(by_hand)]), axis=1).shape[1]
            == np.unique(got).size == np.unique(_ids(by_hand)).size)  # fmt: skip


@pytest.mark.parametrize("bad", [{"follow_pt_min": 0.0}, {"follow_pt_min": float("nan")},
                                 {"follow_window_scale": -1.0}, {"follow_min_hits": 2}])  # fmt: skip
def test_bad_follower_settings_are_refused(bad):
    with pytest.raises(ConfigError, match=r"build\.follow_"):
        BuildConfig(0.5, "splitfollow", **bad)


def test_follow_free_without_free_hits_changes_nothing():
    ev = _clean_event(seed=5, noise=0.0)
    track = ev.pid.copy()
    assert (follow_free(track, ev.xyz, ev.layer) == track).all()


def test_bad_extend_settings():
    with pytest.raises(ConfigError):
        ExtendConfig(window_scale=0.0)
    with pytest.raises(ConfigError):
        ExtendConfig(min_hits=2)


@pytest.mark.parametrize("mode", ["walkext", "splitext", "splitfollow"])
def test_geometric_modes_on_events_without_edges(mode):
    none, no_score = np.zeros((2, 0), dtype=np.int64), np.zeros(0)
    empty = build_tracks(0, none, no_score, BuildConfig(0.5, mode), np.zeros(0, np.int64),
                         np.zeros((0, 3)))  # fmt: skip
    assert empty.size == 0
    xyz = np.array([[30.0, 0.0, 0.0], [70.0, 0.0, 0.0], [110.0, 0.0, 0.0]])
    tid = build_tracks(3, none, no_score, BuildConfig(0.5, mode), np.array([802, 804, 806]), xyz)
    assert sorted(tid.tolist()) == [0, 1, 2]  # three singletons: no seed, no track
