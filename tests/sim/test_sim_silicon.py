"""TrackML-like silicon tracker: geometry, helix crossings, Highland scattering, noise."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.sim.helix import C_LIGHT
from particlegraph.sim.particles import make_particles
from particlegraph.sim.silicon import SensorType, SiliconConfig, highland, simulate_hits, surfaces

EXACT = SensorType(0.0, 0.0, 0.15, 0.05, 0.05, 16.8, 72.0)


def _ideal(**kw):
    """No material, no smearing, full efficiency, no noise."""
    base = {
        "x_over_x0": 0.0,
        "efficiency": 1.0,
        "noise_fraction": 0.0,
        "pixel": EXACT,
        "short": EXACT,
        "long": EXACT,
        "barrel_overlap": (0.0, 0.0, 0.0),
        "disk_overlap": (0.0, 0.0, 0.0),
        "energy_loss": False,
    }
    base.update(kw)
    return SiliconConfig(**base)


def _gun(rng, n, pt_range=(0.3, 20.0), eta_max=3.5, vz_sigma=30.0):
    pt = np.exp(rng.uniform(*np.log(pt_range), n))
    eta = rng.uniform(-eta_max, eta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    p4 = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta) + 0.14], 1
    )
    vtx = np.stack([np.zeros(n), np.zeros(n), rng.normal(0, vz_sigma, n)], 1)
    q = rng.choice([-1.0, 1.0], n)
    return make_particles(np.where(q > 0, 211, -211), q, p4, vtx)


def test_hits_lie_on_their_layers():
    # smearing, scattering, energy loss, overlaps and noise switched on
    cfg = SiliconConfig(noise_fraction=0.1)
    hits, _ = simulate_hits(_gun(np.random.default_rng(1), 400), cfg, np.random.default_rng(2))
    s = surfaces(cfg)
    assert hits.size > 2000
    for k in range(s.barrel.size):
        on = (hits.volume_id == s.volume_id[k]) & (hits.layer_id == s.layer_id[k])
        if s.barrel[k]:
            # on the layer's cylinder, or on the overlapping module shifted by the offset
            dr = np.hypot(hits.x[on], hits.y[on]) - s.radius[k]
            shift = cfg.barrel_overlap_shift[s.kind[k]]
            assert np.all(np.minimum(np.abs(dr), np.abs(np.abs(dr) - shift)) < 1e-6)
            assert np.all(np.abs(hits.z[on]) <= s.half_length[k] + 1e-9)
        else:
            dz = np.abs(hits.z[on] - s.z[k])
            shift = cfg.disk_overlap_shift[s.kind[k]]
            assert np.all(np.minimum(dz, np.abs(dz - shift)) < 1e-6)
            r = np.hypot(hits.x[on], hits.y[on])
            assert np.all((r >= s.r_min[k] - 1e-9) & (r <= s.r_max[k] + 1e-9))
    # every hit belongs to some surface
    pairs = set(zip(s.volume_id.tolist(), s.layer_id.tolist(), strict=True))
    assert set(zip(hits.volume_id.tolist(), hits.layer_id.tolist(), strict=True)) <= pairs


def test_straight_high_pt_track_gives_one_hit_per_barrel_layer():
    cfg = _ideal()
    p = make_particles([13], [1.0], [[1000.0, 0.0, 50.0, 1001.3]], [[0.0, 0.0, 0.0]])
    hits, sim = simulate_hits(p, cfg, np.random.default_rng(0))
    radii = np.array([*cfg.pixel_radii, *cfg.short_radii, *cfg.long_radii])
    assert hits.size == radii.size and sim.tolist() == [0]
    np.testing.assert_allclose(np.hypot(hits.x, hits.y), radii, rtol=1e-9)  # in crossing order
    np.testing.assert_allclose(hits.z, radii * 0.05, rtol=1e-6)  # z = r pz / pT for a straight line
    assert list(hits.volume_id) == [8] * 4 + [13] * 4 + [17] * 2
    assert list(hits.layer_id) == [2, 4, 6, 8, 2, 4, 6, 8, 2, 4]


def test_curved_track_crosses_at_the_chord_angle():
    # From the axis, a helix reaches radius R after turning by 2 asin(R / 2 rho): the crossing
    # point sits at phi0 - asin(R / 2 rho) for a positive particle (it turns clockwise in +B).
    cfg = _ideal()
    pt = 1.0
    p = make_particles([211], [1.0], [[pt, 0.0, 0.0, 1.01]], [[0.0, 0.0, 0.0]])
    hits, _ = simulate_hits(p, cfg, np.random.default_rng(0))
    rho = pt / (C_LIGHT * cfg.bz) * 1000.0  # mm
    r = np.hypot(hits.x, hits.y)
    np.testing.assert_allclose(np.arctan2(hits.y, hits.x), -np.arcsin(r / (2 * rho)), atol=1e-9)
    np.testing.assert_allclose(r, [*cfg.pixel_radii, *cfg.short_radii, *cfg.long_radii], rtol=1e-9)


def test_looper_is_cut_after_half_a_turn():
    # rho = 0.2 / (0.3 * 2) m = 333 mm: reaches r <= 667 mm, then would come back inwards
    cfg = _ideal()
    p = make_particles([211], [1.0], [[0.2, 0.0, 0.0, 0.25]], [[0.0, 0.0, 0.0]])
    hits, _ = simulate_hits(p, cfg, np.random.default_rng(0))
    r = np.hypot(hits.x, hits.y)
    assert np.all(np.diff(r) > 0)  # only the outward half
    assert r.max() < 2 * 333.6


def test_highland_hand_value():
    # 13.6 MeV / 1 GeV * sqrt(0.02) * (1 + 0.038 ln 0.02)
    expected = 0.0136 * np.sqrt(0.02) * (1 + 0.038 * np.log(0.02))
    assert highland(np.array([1.0]), np.array([1.0]), np.array([0.02]))[0] == pytest.approx(
        expected
    )
    assert highland(np.array([1.0]), np.array([1.0]), np.array([0.0]))[0] == 0.0


def test_scattering_spreads_the_outer_hits_like_highland():
    # 400 identical 2 GeV tracks at eta 0: the r-phi spread at 1020 mm grows from the kicks
    cfg = _ideal(x_over_x0=0.02)
    n = 400
    p = make_particles(
        np.full(n, 211), np.ones(n), np.tile([2.0, 0.0, 0.0, 2.005], (n, 1)), np.zeros((n, 3))
    )
    hits, _ = simulate_hits(p, cfg, np.random.default_rng(3))
    outer = np.isclose(np.hypot(hits.x, hits.y), 1020.0)
    spread = np.std(np.arctan2(hits.y[outer], hits.x[outer])) * 1020.0  # mm
    theta0 = highland(np.array([2.0]), np.array([1.0]), np.array([0.02]))[0]
    # kicks at the 9 inner layers, each lever arm (1020 - r_k) in the transverse plane
    radii = np.array([*cfg.pixel_radii, *cfg.short_radii, *cfg.long_radii[:1]])
    lever = np.sqrt(np.sum((1020.0 - radii) ** 2)) * theta0
    assert 0.6 * lever < spread < 1.6 * lever


def test_noise_fraction_and_efficiency():
    cfg = SiliconConfig(noise_fraction=0.1, efficiency=0.9)
    hits, _ = simulate_hits(_gun(np.random.default_rng(4), 300), cfg, np.random.default_rng(5))
    assert np.mean(hits.particle < 0) == pytest.approx(0.1, abs=0.01)
    assert np.all(hits.tpx[hits.particle < 0] == 0)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="bz"):
        SiliconConfig(bz=0.0)
    with pytest.raises(ConfigError, match="increasing"):
        SiliconConfig(pixel_radii=(72.0, 32.0))


def test_overlap_fraction_matches_the_setting_within_statistics():
    # 2000 stiff tracks at eta ~ 0 cross every barrel layer once; a crossing in the outer
    # f / 2 of a module's phi width at either edge also hits the neighbouring module
    frac = (0.3, 0.2, 0.1)
    cfg = _ideal(barrel_overlap=frac)
    rng = np.random.default_rng(7)
    n = 2000
    phi = rng.uniform(-np.pi, np.pi, n)
    p4 = np.stack([50 * np.cos(phi), 50 * np.sin(phi), np.zeros(n), np.full(n, 50.0002)], 1)
    hits, _ = simulate_hits(
        make_particles(np.full(n, 13), np.ones(n), p4, np.zeros((n, 3))), cfg, rng
    )
    s = surfaces(cfg)
    for k in np.flatnonzero(s.barrel):
        on = (hits.volume_id == s.volume_id[k]) & (hits.layer_id == s.layer_id[k])
        doubled = on.sum() / n - 1.0  # share of crossings with a second hit
        f = frac[s.kind[k]]
        assert abs(doubled - f) < 3 * np.sqrt(f * (1 - f) / n) + 1e-9
        # the second hit: same layer, the neighbouring module in phi, shift further out
        r = np.hypot(hits.x[on], hits.y[on])
        outer = np.isclose(r, s.radius[k] + cfg.barrel_overlap_shift[s.kind[k]])
        assert outer.sum() == on.sum() - n
    # consecutive hits of a particle on the same layer sit on adjacent modules (phi index +- 1)
    same = (hits.particle[1:] == hits.particle[:-1]) & (hits.layer_id[1:] == hits.layer_id[:-1])
    same &= hits.volume_id[1:] == hits.volume_id[:-1]
    d = np.abs(np.diff(hits.module_id % 1000))[same]
    assert same.sum() > 0 and np.all((d == 1) | (d > 10))  # d > 10: wrap-around at phi = pi


def test_energy_loss_per_crossing_is_the_mean_bethe_loss():
    # a 100 GeV muon at eta 0 (normal incidence to within 1e-3): |p| at consecutive hits drops
    # by the mean loss of one module; without energy loss it stays
    from particlegraph.sim.material import lose_energy

    cfg = _ideal(x_over_x0=0.006, energy_loss=True)
    p = make_particles([13], [1.0], [[100.0, 0.0, 0.0, 100.0001]], [[0.0, 0.0, 0.0]])
    hits, _ = simulate_hits(p, cfg, np.random.default_rng(0))
    pmag = np.sqrt(hits.tpx**2 + hits.tpy**2 + hits.tpz**2)
    want = lose_energy(pmag[:-1], np.full(pmag.size - 1, 0.1056584), np.zeros(pmag.size - 1, bool),
                       np.full(pmag.size - 1, 0.006))  # fmt: skip
    np.testing.assert_allclose(pmag[1:], want, rtol=1e-7)
    assert 0.15e-3 < pmag[0] - pmag[1] < 0.4e-3  # ~0.26 MeV per module
    hits0, _ = simulate_hits(p, _ideal(x_over_x0=0.006), np.random.default_rng(0))
    np.testing.assert_allclose(np.sqrt(hits0.tpx**2 + hits0.tpy**2 + hits0.tpz**2), 100.0)


def test_default_noise_is_the_challenge_share():
    hits, _ = simulate_hits(_gun(np.random.default_rng(4), 300), SiliconConfig(),
                            np.random.default_rng(5))  # fmt: skip
    assert np.mean(hits.particle < 0) == pytest.approx(0.15, abs=0.01)
