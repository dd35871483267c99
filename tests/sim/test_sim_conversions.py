"""Photon conversions: where, how often, and that the e+ e- pair carries the photon's momentum."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.sim.conversions import bethe_heitler_fraction, convert_photons, line_crossings
from particlegraph.sim.particles import concatenate, make_particles
from particlegraph.sim.silicon import SiliconConfig, surfaces


def _photons(n, rng, eta=0.0, e=(1.0, 20.0)):
    energy = rng.uniform(*e, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = energy / np.cosh(eta)
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta) * np.ones(n), energy], 1)
    return make_particles(np.full(n, 22), np.zeros(n), p4, np.zeros((n, 3)))


def test_pairs_conserve_momentum_and_charge_and_start_on_a_layer():
    rng = np.random.default_rng(0)
    gam = _photons(3000, rng, eta=0.3)
    pion = make_particles([211], [1.0], [[1.0, 0.0, 0.0, 1.01]], [[0.0, 0.0, 0.0]])
    cfg = SiliconConfig(x_over_x0=0.05)
    pairs, parent = convert_photons(concatenate([pion, gam]), cfg, rng)
    assert pairs.size > 100 and pairs.size % 2 == 0
    assert np.all(parent >= 1)  # never the pion
    for comp in ("px", "py", "pz"):
        summed = getattr(pairs, comp).reshape(-1, 2).sum(1)
        parent_p = getattr(concatenate([pion, gam]), comp)[parent[::2]]
        np.testing.assert_allclose(summed, parent_p, rtol=1e-12, atol=1e-12)
    assert np.all(pairs.charge.reshape(-1, 2).sum(1) == 0)
    assert set(pairs.pid.tolist()) == {11, -11}
    np.testing.assert_allclose(
        pairs.e, np.sqrt(pairs.px**2 + pairs.py**2 + pairs.pz**2 + 0.000511**2), rtol=1e-5
    )
    # the vertex sits on a barrel cylinder (eta 0.3 stays in the barrels up to r = 1020 mm)
    r = np.hypot(pairs.vx, pairs.vy)
    radii = surfaces(cfg).radius[surfaces(cfg).barrel]
    assert np.all(np.min(np.abs(r[:, None] - radii[None, :]), axis=1) < 1e-6)


def test_conversion_probability_per_layer():
    # at eta 0 each barrel layer converts a photon with 1 - exp(-7/9 x/X0) (normal incidence):
    # the share converting at the first layer, and at the second among survivors
    rng = np.random.default_rng(1)
    n = 20000
    x = 0.05
    cfg = SiliconConfig(x_over_x0=x)
    pairs, _ = convert_photons(_photons(n, rng), cfg, rng)
    r = np.hypot(pairs.vx[::2], pairs.vy[::2])
    p = 1 - np.exp(-7 / 9 * x)
    first = np.isclose(r, cfg.pixel_radii[0]).sum()
    second = np.isclose(r, cfg.pixel_radii[1]).sum()
    assert first == pytest.approx(n * p, abs=3 * np.sqrt(n * p * (1 - p)))
    m = n - first
    assert second == pytest.approx(m * p, abs=3 * np.sqrt(m * p * (1 - p)))


def test_no_material_no_conversion_and_straight_line_crossings_by_hand():
    rng = np.random.default_rng(2)
    pairs, parent = convert_photons(_photons(100, rng), SiliconConfig(x_over_x0=0.0), rng)
    assert pairs.size == 0 and parent.size == 0
    # along +x from (0, 0, 0) with dz/ds = 0.1: barrel R at s = R (|z| = 0.1 R < half length)
    surf = surfaces(SiliconConfig())
    s, inv_cos = line_crossings(
        np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1), np.zeros(1), np.full(1, 0.1), surf
    )
    bar = surf.barrel
    np.testing.assert_allclose(s[0, bar], surf.radius[bar])
    np.testing.assert_allclose(inv_cos[0, bar], np.sqrt(1.01))  # 1 / cos of the dip angle
    assert np.all(np.isinf(s[0, ~bar]))  # the disks lie beyond z = 0.1 * 1020


def test_energy_sharing_follows_bethe_heitler():
    x = bethe_heitler_fraction(200000, np.random.default_rng(3))
    assert x.min() >= 0 and x.max() <= 1
    # density 1 - 4/3 x (1 - x), normalised by 7/9: mean 1/2, P(x < 0.1) = (0.1 - 4/3 (0.005
    # - 0.001/3)) / (7/9)
    assert x.mean() == pytest.approx(0.5, abs=0.003)
    p01 = (0.1 - 4 / 3 * (0.1**2 / 2 - 0.1**3 / 3)) / (7 / 9)
    assert np.mean(x < 0.1) == pytest.approx(p01, abs=0.003)
