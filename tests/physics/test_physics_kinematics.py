"""One definition of pT, eta, phi, delta phi: hand-worked values and the pT = 0 conventions."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.physics import kinematics as K


def test_hand_values() -> None:
    pt, eta, phi = K.pt_eta_phi(3.0, 4.0, 5.0 * np.sinh(0.7))
    assert pt == pytest.approx(5.0)
    assert eta == pytest.approx(0.7)
    assert phi == pytest.approx(np.arctan2(4.0, 3.0))


def test_zero_pt_conventions_never_nan() -> None:
    px = np.zeros(3)
    pt, eta, phi = K.pt_eta_phi(px, px, np.array([2.0, -2.0, 0.0]))
    np.testing.assert_array_equal(pt, 0.0)
    np.testing.assert_array_equal(eta, [np.inf, -np.inf, 0.0])
    np.testing.assert_array_equal(phi, 0.0)


def test_delta_phi_wraps_and_delta_r() -> None:
    assert K.delta_phi(3.1, -3.1) == pytest.approx(6.2 - 2 * np.pi)
    assert K.delta_phi(-3.1, 3.1) == pytest.approx(2 * np.pi - 6.2)
    assert K.delta_r(1.0, 3.1, 0.0, -3.1) == pytest.approx(np.hypot(1.0, 2 * np.pi - 6.2))


def test_massless_p4_round_trip() -> None:
    rng = np.random.default_rng(0)
    pt, eta, phi = rng.uniform(1, 50, 20), rng.uniform(-3, 3, 20), rng.uniform(-np.pi, np.pi, 20)
    p4 = K.massless_p4(pt, eta, phi)
    back = K.pt_eta_phi(p4[:, 0], p4[:, 1], p4[:, 2])
    np.testing.assert_allclose(back, (pt, eta, phi), rtol=1e-12, atol=1e-12)
    # massless: E = |p|
    np.testing.assert_allclose(p4[:, 3], np.linalg.norm(p4[:, :3], axis=1), rtol=1e-12)


def test_delta_phi_keeps_torch_tensors() -> None:
    import torch

    got = K.delta_phi(torch.tensor([3.1, -3.1]), torch.tensor([-3.1, 3.1]))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), K.delta_phi([3.1, -3.1], [-3.1, 3.1]), atol=1e-6)
