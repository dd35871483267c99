"""Classical baselines: helper geometry by hand, and exact reconstruction of clean events."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tracking_events import EXACT, exact_silicon

from particlegraph.errors import ConfigError
from particlegraph.sim.particles import make_particles
from particlegraph.sim.silicon import SiliconConfig
from particlegraph.tasks.tracking.baselines import (
    GRIDS,
    find_tracks,
    tune,
    unrolled_features,
    vertex_candidates,
)
from particlegraph.tasks.tracking.follower import FollowerConfig, _circle
from particlegraph.tasks.tracking.score import trackml_score
from particlegraph.tasks.tracking.simulate import build_event


def _clean_event(n=12, seed=0, z0=25.0, noise=0.0, pt=(1.0, 10.0), eta_max=1.5):
    """n well separated particles from (0, 0, z0): no material, no smearing, no overlaps."""
    rng = np.random.default_rng(seed)
    cfg = exact_silicon(noise)
    phi = np.linspace(-np.pi, np.pi, n, endpoint=False) + rng.uniform(0, 0.1)
    p_t = rng.uniform(*pt, n)
    eta = rng.uniform(-eta_max, eta_max, n)
    p4 = np.stack(
        [p_t * np.cos(phi), p_t * np.sin(phi), p_t * np.sinh(eta), p_t * np.cosh(eta) + 0.2], 1
    )
    vtx = np.tile([0.0, 0.0, z0], (n, 1))
    ev = build_event(
        make_particles(np.full(n, 211), rng.choice([-1.0, 1.0], n), p4, vtx), cfg, rng, 1
    )
    xyz = np.stack([ev.hits[c] for c in ("x", "y", "z")], 1).astype(np.float64)
    layer = 100 * ev.hits["volume_id"] + ev.hits["layer_id"]
    return SimpleNamespace(
        xyz=xyz, layer=layer, particle_id=ev.truth["particle_id"], weight=ev.truth["weight"]
    )


def test_unrolled_features_are_constant_along_a_helix():
    # helix from (0, 0, z0): phi(r) = phi0 - asin(k r / 2), z = z0 + cot * 2 asin(k r / 2) / k
    k, phi0, cot, z0 = 0.8, 0.3, 0.7, 40.0  # k [1/m], z0 [mm]
    r = np.array([0.032, 0.072, 0.3, 0.66, 1.02])  # m
    half = np.arcsin(k * r / 2)
    phi = phi0 - half
    z = z0 / 1000 + cot * 2 * half / k
    xyz = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1) * 1000.0
    f = unrolled_features(xyz, k, z0, z_scale=1.0)
    np.testing.assert_allclose(f, np.tile([np.cos(phi0), np.sin(phi0), cot], (5, 1)), atol=1e-12)
    # the wrong vertex spreads the third feature
    assert np.ptp(unrolled_features(xyz, k, 0.0, z_scale=1.0)[:, 2]) > 0.05


def test_vertex_candidates_find_the_vertex():
    ev = _clean_event(n=40, z0=-37.0)
    z = vertex_candidates(ev.xyz, ev.layer, max_vertices=3)
    assert abs(z[0] - (-37.0)) < 0.5  # the median intercept near the peak


def test_circle_through_three_points_by_hand():
    # unit circle centred at (2, 1): points at angles 0, 90, 180 degrees (counter-clockwise)
    p = np.array([[3.0, 1.0]]), np.array([[2.0, 2.0]]), np.array([[1.0, 1.0]])
    centre, curv, rho = _circle(*p)
    np.testing.assert_allclose(centre, [[2.0, 1.0]])
    assert curv[0] == pytest.approx(1.0) and rho[0] == pytest.approx(1.0)
    assert _circle(p[2], p[1], p[0])[1][0] == pytest.approx(-1.0)  # clockwise


@pytest.mark.parametrize("method", ["helix_dbscan", "track_follower"])
def test_clean_event_is_reconstructed_exactly(method):
    # stiff tracks (the unrolling error k r / 2 stays below eps with three curvatures)
    ev = _clean_event(pt=(50.0, 100.0))
    params = {"eps": 0.02, "n_curvatures": 3} if method == "helix_dbscan" else {}
    tid = find_tracks(method, ev.xyz, ev.layer, params)
    assert trackml_score(ev.particle_id, ev.weight, tid) == pytest.approx(1.0)
    if method == "track_follower":  # and curved ones
        ev = _clean_event(pt=(1.0, 10.0), seed=1)
        tid = find_tracks(method, ev.xyz, ev.layer, params)
        assert trackml_score(ev.particle_id, ev.weight, tid) == pytest.approx(1.0)


def test_follower_keeps_noise_out_and_finds_low_pt_tracks():
    ev = _clean_event(n=16, seed=3, noise=0.15, pt=(0.3, 1.0), eta_max=1.0)
    tid = find_tracks("track_follower", ev.xyz, ev.layer, {"pt_min": 0.25})
    assert trackml_score(ev.particle_id, ev.weight, tid) == pytest.approx(1.0)
    # every noise hit stays a singleton or a minority in its track
    for t in np.unique(tid[ev.particle_id == 0]):
        on = tid == t
        assert on.sum() == 1 or np.mean(ev.particle_id[on] == 0) < 0.5


def test_tune_chooses_the_best_grid_point_and_bad_input_is_refused():
    evs = [_clean_event(seed=s, n=20) for s in range(2)]
    best, table = tune("helix_dbscan", evs, {"n_curvatures": 5})
    assert len(table) == len(GRIDS["helix_dbscan"])
    top = max(table, key=lambda row: row["score"])
    assert best["eps"] == top["eps"]
    with pytest.raises(ConfigError, match="unknown baseline"):
        find_tracks("hough", evs[0].xyz, evs[0].layer, {})
    with pytest.raises(ConfigError, match="layer"):
        find_tracks("track_follower", evs[0].xyz, None, {})
    with pytest.raises(ConfigError, match="min_hits"):
        FollowerConfig(min_hits=2)


def test_follower_collects_module_overlap_hits():
    # overlaps on (default fractions): a particle leaves two hits on some layers; the follower's
    # tracks must hold more hits than layers crossed, i.e. the overlap partners too
    rng = np.random.default_rng(5)
    n = 12
    cfg = SiliconConfig(
        x_over_x0=0.0, efficiency=1.0, noise_fraction=0.0, pixel=EXACT, short=EXACT, long=EXACT,
        conversions=False,
    )  # fmt: skip
    phi = np.linspace(-np.pi, np.pi, n, endpoint=False) + 0.05
    pt, eta = rng.uniform(1, 10, n), rng.uniform(-2.5, 2.5, n)
    p4 = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta) + 0.2], 1
    )
    parts = make_particles(
        np.full(n, 211), rng.choice([-1.0, 1.0], n), p4, np.tile([0, 0, 10.0], (n, 1))
    )
    ev = build_event(parts, cfg, rng, 1)
    xyz = np.stack([ev.hits[c] for c in ("x", "y", "z")], 1).astype(np.float64)
    layer = 100 * ev.hits["volume_id"] + ev.hits["layer_id"]
    pid = ev.truth["particle_id"]
    tid = find_tracks("track_follower", xyz, layer, {})
    assert trackml_score(pid, ev.truth["weight"], tid) > 0.95
    on_track = sum(np.bincount(tid[pid == p]).max() for p in np.unique(pid))
    layers = sum(np.unique(layer[pid == p]).size for p in np.unique(pid))
    assert on_track > layers + 10  # well over one hit per layer: the partners were taken


def test_default_settings_follow_the_event_size():
    from particlegraph.tasks.tracking.baselines import default_base

    assert (
        default_base("track_follower", 3e3)["pt_min"]
        < default_base("track_follower", 1e5)["pt_min"]
    )
    small, big = default_base("helix_dbscan", 3e3), default_base("helix_dbscan", 4e4)
    assert small["n_curvatures"] * small["n_vertices"] >= 1
    assert big["n_vertices"] > small["n_vertices"]


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_fast_dbscan_gives_scikit_learns_partition(eps):
    from sklearn.cluster import DBSCAN

    from particlegraph.tasks.tracking.baselines import ClusterConfig, dbscan_labels

    pts = np.random.default_rng(0).random((500, 3))
    fast = dbscan_labels(pts, ClusterConfig(eps=eps, min_samples=1))
    ref = DBSCAN(eps=eps, min_samples=1).fit_predict(pts)
    # the same partition: the pairs (fast, ref) label each cluster once
    assert len(set(zip(fast.tolist(), ref.tolist(), strict=True))) == len(set(ref.tolist()))
    assert len(set(fast.tolist())) == len(set(ref.tolist()))
