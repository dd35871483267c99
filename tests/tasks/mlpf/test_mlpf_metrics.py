"""Particle-flow metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf import metrics as pf


def make_y(rows: list[tuple[float, float, float, float]]) -> np.ndarray:
    """(N, 7) ygen-layout array from ``(cls, pt, eta, phi)`` rows; E = pt cosh eta, charge 0."""
    y = np.zeros((len(rows), 7), dtype=np.float32)
    for i, (cls, pt, eta, ph) in enumerate(rows):
        if cls == 0:
            continue
        y[i] = (cls, 0.0, pt, eta, np.sin(ph), np.cos(ph), pt * np.cosh(eta))
    return y


def test_confusion_efficiency_fake_on_six_elements() -> None:
    true = np.array([1, 1, 1, 2, 2, 0])
    pred = np.array([1, 1, 2, 2, 0, 2])
    cm = pf.confusion_matrix(true, pred)
    assert cm.shape == (6, 6)
    assert cm.sum() == 6
    assert cm[1, 1] == 2 and cm[1, 2] == 1 and cm[2, 2] == 1 and cm[2, 0] == 1 and cm[0, 2] == 1
    eff, fake = pf.efficiency_and_fake_rate(cm)
    # charged hadrons: 2 of 3 found; predicted 2, both true -> fake 0
    assert eff[1] == pytest.approx(2 / 3)
    assert fake[1] == pytest.approx(0.0)
    # neutral hadrons: 1 of 2 found; predicted 3 times (true 1, 2, 0) -> fake 2/3
    assert eff[2] == pytest.approx(0.5)
    assert fake[2] == pytest.approx(2 / 3)
    # photons never occur: both undefined
    assert np.isnan(eff[3]) and np.isnan(fake[3])


def test_confusion_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        pf.confusion_matrix(np.zeros(3, int), np.zeros(4, int))


def test_iqr_over_median_known_sample() -> None:
    # 1..9: q25 = 3, q75 = 7, median = 5 -> IQR/median = 0.8
    v = np.arange(1, 10, dtype=float)
    assert pf.iqr(v) == pytest.approx(4.0)
    assert pf.iqr_over_median(v) == pytest.approx(0.8)
    assert np.isnan(pf.iqr_over_median(np.array([])))


def test_ratio_and_difference_response() -> None:
    gen = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 0.0])
    reco = np.array([8.0, 9.0, 10.0, 11.0, 12.0, 5.0])  # last pair has gen 0 and is skipped
    r = pf.ratio_response(gen, reco)
    assert r["n"] == 5
    assert r["response"] == pytest.approx(1.0)
    assert r["resolution"] == pytest.approx(0.2)  # (1.1 - 0.9) / 1.0
    d = pf.difference_response(np.zeros(5), np.array([-0.2, -0.1, 0.0, 0.1, 0.2]))
    assert d["response"] == pytest.approx(0.0)
    assert d["resolution"] == pytest.approx(0.2)


def test_response_pairs_selects_both_same_class() -> None:
    ygen = make_y([(1, 10, 0, 0), (1, 20, 0, 0), (2, 30, 0, 0)])
    yreco = make_y([(1, 11, 0, 0), (2, 19, 0, 0), (2, 33, 0, 0)])
    g, r = pf.response_pairs(ygen, yreco, 1, pf.Y_PT)
    np.testing.assert_allclose(g, [10.0])
    np.testing.assert_allclose(r, [11.0], rtol=1e-6)


def test_met_back_to_back_is_zero_and_single_is_pt() -> None:
    y = make_y([(1, 25.0, 0.3, 0.4), (3, 25.0, -1.0, 0.4 + np.pi), (0, 0, 0, 0)])
    assert pf.met(y) == pytest.approx(0.0, abs=1e-5)
    y1 = make_y([(1, 25.0, 0.3, 0.4), (3, 10.0, 0.0, 0.4)])  # collinear -> pT sum
    assert pf.met(y1) == pytest.approx(35.0, rel=1e-6)
    # class-0 rows are ignored even if they carry numbers
    y1[1, 0] = 0
    assert pf.met(y1) == pytest.approx(25.0, rel=1e-6)


def test_met_handles_unnormalised_sin_cos() -> None:
    y = make_y([(1, 10.0, 0.0, 0.0)])
    y[0, pf.Y_SIN_PHI] *= 3.0
    y[0, pf.Y_COS_PHI] *= 3.0
    assert pf.met(y) == pytest.approx(10.0, rel=1e-6)


def test_multiplicity_counts_per_class() -> None:
    y = make_y([(1, 1, 0, 0), (1, 1, 0, 0), (3, 1, 0, 0), (0, 0, 0, 0)])
    np.testing.assert_array_equal(pf.multiplicity(y), [1, 2, 0, 1, 0, 0])


def test_binned_rate() -> None:
    values = np.array([0.5, 0.7, 1.5, 1.6, 1.7, 5.0])
    passed = np.array([True, False, True, True, False, True])
    rate, count = pf.binned_rate(values, passed, np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(count, [2, 3, 0])
    np.testing.assert_allclose(rate[:2], [0.5, 2 / 3])
    assert np.isnan(rate[2])


def test_bad_shapes_and_classes_raise() -> None:
    with pytest.raises(DataFileError, match="shape"):
        pf.met(np.zeros((3, 6)))
    y = np.zeros((1, 7), dtype=np.float32)
    y[0, 0] = 7
    with pytest.raises(DataFileError, match="outside"):
        pf.class_ids(y)


def test_binned_response() -> None:
    values = np.array([5.0, 15.0, 15.0, 15.0, 15.0, 15.0, 25.0])
    ratio = np.array([0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 2.0])
    resp, res, count = pf.binned_response(values, ratio, np.array([10.0, 20.0, 30.0, 40.0]))
    np.testing.assert_array_equal(count, [5, 1, 0])  # 5 GeV is below the first edge
    assert resp[0] == pytest.approx(1.0)
    assert res[0] == pytest.approx(0.2)  # (1.1 - 0.9) / 1.0
    assert resp[1] == pytest.approx(2.0) and res[1] == pytest.approx(0.0)
    assert np.isnan(resp[2]) and np.isnan(res[2])
