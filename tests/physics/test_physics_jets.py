"""Jet clustering and matching on hand-made particle lists."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.physics import jets, kinematics


def make_y(rows: list[tuple[float, float, float, float]]) -> np.ndarray:
    """(M, 3) ``(pt, eta, phi)`` particles from ``(cls, pt, eta, phi)`` rows; class 0 = nothing."""
    kept = [(pt, eta, ph) for cls, pt, eta, ph in rows if cls]
    return np.asarray(kept, dtype=np.float32).reshape(-1, 3)


def test_delta_phi_wraps() -> None:
    assert kinematics.delta_phi(3.1, -3.1) == pytest.approx(6.2 - 2 * np.pi)
    assert kinematics.delta_r(0.0, 3.1, 0.0, -3.1) == pytest.approx(2 * np.pi - 6.2)


def test_two_close_particles_make_one_jet_with_summed_pt() -> None:
    ev = make_y([(1, 30.0, 0.5, 1.0), (3, 20.0, 0.5, 1.1), (0, 0, 0, 0)])
    (jet,) = jets.cluster_jets([ev], min_pt=5.0)
    assert jet.shape == (1, 3)
    # collinear in eta, 0.1 apart in phi: pT = |30 e^{i 1.0} + 20 e^{i 1.1}|
    expected = abs(30 * np.exp(1j * 1.0) + 20 * np.exp(1j * 1.1))
    assert jet[0, 0] == pytest.approx(expected, rel=1e-5)
    # pseudorapidity of the summed momentum: pz = 50 sinh(0.5), pT slightly below 50
    assert jet[0, 1] == pytest.approx(np.arcsinh(50 * np.sinh(0.5) / expected), abs=1e-5)


def test_far_particles_make_two_jets_sorted_and_threshold() -> None:
    ev = make_y([(1, 10.0, 0.0, 0.0), (1, 40.0, 0.0, 2.0), (2, 3.0, 2.0, -2.0)])
    empty = np.zeros((0, 3), dtype=np.float32)
    out = jets.cluster_jets([ev, empty], min_pt=5.0)
    assert len(out) == 2
    np.testing.assert_allclose(out[0][:, 0], [40.0, 10.0], rtol=1e-5)  # 3 GeV jet is cut
    np.testing.assert_allclose(out[0][0, 2], 2.0, atol=1e-5)
    assert out[1].shape == (0, 3)


def test_cluster_all_empty_events() -> None:
    out = jets.cluster_jets([np.zeros((0, 3), dtype=np.float32)] * 3)
    assert [j.shape for j in out] == [(0, 3)] * 3


def test_match_jets_greedy_closest_first() -> None:
    gen = np.array([[50.0, 0.0, 0.0], [30.0, 1.0, 1.0], [20.0, -2.0, 3.1]])
    reco = np.array([[48.0, 0.05, 0.0], [31.0, 1.0, 1.02], [10.0, 0.0, 0.08], [22.0, -2.0, -3.12]])
    gi, ri = jets.match_jets(gen, reco, max_dr=0.1)
    # gen 0 takes reco 0 (dR 0.05) over reco 2 (dR 0.08); gen 2 matches across phi = pi
    np.testing.assert_array_equal(gi, [0, 1, 2])
    np.testing.assert_array_equal(ri, [0, 1, 3])
    gi, ri = jets.match_jets(gen, reco, max_dr=0.03)
    np.testing.assert_array_equal(gi, [1])
    gi, _ = jets.match_jets(gen, reco[:0])
    assert gi.size == 0


def test_bad_radius_raises() -> None:
    with pytest.raises(ValueError, match="radius"):
        jets.cluster_jets([make_y([(1, 1.0, 0.0, 0.0)])], radius=0.0)


def test_invalid_four_vectors_never_reach_fastjet():
    """NaN / inf / negative pT particles are dropped (fastjet segfaults on them)."""
    good = np.array([[30.0, 0.1, 0.2], [20.0, 0.2, 0.1]])
    bad = np.array([[30.0, np.nan, 0.2], [np.inf, 0.0, 0.0], [-5.0, 0.0, 0.0], [7.0, 0.0, np.inf]])
    (clean,) = jets.cluster_jets([good])
    (mixed,) = jets.cluster_jets([np.concatenate([good, bad])])
    np.testing.assert_allclose(mixed, clean)
    assert jets.cluster_jets([bad])[0].shape == (0, 3)


@pytest.mark.parametrize(("eta", "phi_gap"), [(0.0, 0.0), (1.3, 0.0), (0.0, "wrap")])
def test_match_jets_default_radius_is_0p2_inclusive_of_nothing_beyond(eta, phi_gap) -> None:
    """Called without ``max_dr`` (what the evaluations do): a pair 0.99 x 0.2 apart matches,
    1.01 x 0.2 does not; in eta, and across phi = +-pi (0.099 on either side of it)."""
    assert jets.MATCH_DR == 0.2
    for factor, matched in ((0.99, True), (1.01, False)):
        d = factor * 0.2
        if phi_gap == "wrap":
            gen = np.array([[40.0, eta, np.pi - d / 2]])
            reco = np.array([[40.0, eta, -np.pi + d / 2]])
        else:
            gen = np.array([[40.0, eta, 1.0]])
            reco = np.array([[40.0, eta + d, 1.0]])
        assert kinematics.delta_r(gen[0, 1], gen[0, 2], reco[0, 1], reco[0, 2]) == pytest.approx(d)
        gi, ri = jets.match_jets(gen, reco)
        assert (gi.tolist(), ri.tolist()) == (([0], [0]) if matched else ([], []))
