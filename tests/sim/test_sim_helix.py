"""Helix propagation to the calorimeter surface: hand-computed values and a step-by-step reference."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.sim.helix import C_LIGHT, propagate

B, R, L = 3.8, 1.29, 3.0


def _prop(px, py, pz, q, vx=0.0, vy=0.0, vz=0.0):
    a = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (px, py, pz, q, vx, vy, vz)]
    return propagate(*a, bz=B, radius=R, half_length=L)


def _stepper(p, q, vertex_mm, ds=2e-4):
    """Slow reference: straight midpoint steps of ds [m], direction turned by the Lorentz force.

    Vectorised over particles; each one stops once it is outside the cylinder.
    """
    px, py, pz = p.T
    pt = np.hypot(px, py)
    pos = np.asarray(vertex_mm, dtype=np.float64) * 1e-3  # (P, 3)
    phi = np.arctan2(py, px)
    k = C_LIGHT * q * B / pt
    while True:
        inside = (np.hypot(pos[:, 0], pos[:, 1]) < R) & (np.abs(pos[:, 2]) < L)
        if not inside.any():
            return pos * 1e3
        mid = phi - 0.5 * k * ds
        step = ds * np.stack([np.cos(mid), np.sin(mid), pz / pt], axis=1)
        pos = pos + step * inside[:, None]
        phi = np.where(inside, phi - k * ds, phi)


def test_barrel_crossing_matches_chord_formula():
    # From the origin the helix is a circle through the axis: the crossing point at radius R lies
    # at phi0 - asin(R / (2 rho)) with rho = pT / (0.3 B), after a turning angle 2 asin(R / 2 rho).
    pt, pz = 1.0, 0.5
    hit = _prop(pt, 0.0, pz, +1.0)
    rho = pt / (C_LIGHT * B)
    half_turn = np.arcsin(R / (2 * rho))
    assert hit.barrel[0]
    assert hit.phi[0] == pytest.approx(-half_turn, abs=1e-9)
    assert np.hypot(hit.x[0], hit.y[0]) == pytest.approx(R * 1e3, rel=1e-9)
    assert hit.z[0] == pytest.approx(2 * half_turn * rho * pz / pt * 1e3, rel=1e-9)
    # a negative charge turns the other way
    assert _prop(pt, 0.0, pz, -1.0).phi[0] == pytest.approx(+half_turn, abs=1e-9)


def test_looper_leaves_through_end_cap():
    # rho = 0.263 m < R/2: never reaches the barrel, exits at z = +3 m after s = L pT/pz
    pt, pz = 0.3, 1.0
    hit = _prop(pt, 0.0, pz, +1.0)
    k = C_LIGHT * B / pt
    s = L * pt / pz
    assert not hit.barrel[0]
    assert hit.z[0] == pytest.approx(3000.0)
    assert hit.x[0] == pytest.approx(np.sin(k * s) / k * 1e3, rel=1e-9)
    assert hit.y[0] == pytest.approx((np.cos(k * s) - 1) / k * 1e3, rel=1e-9)


def test_neutral_goes_straight_from_displaced_vertex():
    hit = _prop(1.0, 1.0, 0.0, 0.0, vx=100.0, vy=-50.0, vz=20.0)
    # line (0.1, -0.05) + s (1, 1)/sqrt2 reaches r = 1.29 m
    u = np.array([1.0, 1.0]) / np.sqrt(2)
    x0 = np.array([0.1, -0.05])
    b = x0 @ u
    s = -b + np.sqrt(b**2 - (x0 @ x0 - R**2))
    assert hit.x[0] == pytest.approx((x0[0] + s * u[0]) * 1e3)
    assert hit.y[0] == pytest.approx((x0[1] + s * u[1]) * 1e3)
    assert hit.z[0] == pytest.approx(20.0)
    assert hit.eta[0] == pytest.approx(np.arcsinh(0.02 / R), rel=1e-6)


def test_agrees_with_step_by_step_reference():
    rng = np.random.default_rng(3)
    p = rng.uniform(-2, 2, size=(6, 3))
    q = rng.choice([-1.0, 1.0], size=6)
    vertex = rng.uniform(-20, 20, size=(6, 3))
    hit = _prop(*p.T, q, *vertex.T)
    ref = _stepper(p, q, vertex)
    got = np.stack([hit.x, hit.y, hit.z], axis=1)
    # the reference overshoots the surface by less than one step (0.2 mm)
    assert np.allclose(got, ref, atol=0.3), (got, ref)
