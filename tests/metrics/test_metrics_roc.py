"""Tests of ROC / AUC / working points against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from particlegraph.metrics.roc import (
    auc,
    eps_s_at_eps_b,
    inv_eps_b_at_eps_s,
    max_sic,
    rank_auc,
    roc_auc,
    roc_curve,
    summarize,
)


def test_hand_made_scores() -> None:
    # signal 0.9, 0.8, 0.4 ; background 0.7, 0.3, 0.2, 0.1
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    c = roc_curve(scores, labels)
    # pairs (s > b): 0.9 and 0.8 beat all 4, 0.4 beats 3 -> 11 of 12
    assert auc(c) == pytest.approx(11 / 12)
    assert eps_s_at_eps_b(c, 0.0) == pytest.approx(2 / 3)
    assert eps_s_at_eps_b(c, 0.25) == pytest.approx(1.0)
    assert inv_eps_b_at_eps_s(c, 2 / 3) == float("inf")
    assert inv_eps_b_at_eps_s(c, 1.0) == pytest.approx(4.0)
    # eps_B >= 1/4: best point is (0.25, 1.0) -> 1 / sqrt(0.25) = 2
    assert max_sic(c) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_with_ties_and_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    weights = rng.uniform(0.5, 2.0, 500)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc(scores, labels, weights) == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12
    )
    c = roc_curve(scores, labels)
    fpr, tpr, thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(c.eps_b, fpr)
    np.testing.assert_allclose(c.eps_s, tpr)
    np.testing.assert_allclose(c.thresholds[1:], thr[1:])


def test_summary_and_perfect_separation() -> None:
    s = summarize(np.r_[np.ones(10) * 2, np.zeros(1000)], np.r_[np.ones(10), np.zeros(1000)])
    assert s.auc == 1.0 and s.eps_s_at_1e3 == 1.0 and s.eps_s_at_1e2 == 1.0
    assert s.inv_eps_b_at_0p3 == float("inf")
    assert s.as_dict()["inv_eps_b_at_0p3"] is None
    # the curve jumps from eps_B = 0 straight to 1; points below one background event are
    # excluded, so the only usable point is (1, 1)
    assert s.max_sic == pytest.approx(1.0)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one signal"):
        roc_curve(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="labels must be"):
        roc_curve(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="finite"):
        roc_curve(np.array([np.nan, 0.0]), np.array([0, 1]))


def test_rank_auc_matches_the_trapezoid_area_with_ties() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 7, size=500).astype(float)  # many ties
    y = rng.random(500) < 0.4
    assert rank_auc(score, y) == pytest.approx(roc_auc(score, y.astype(int)), abs=1e-12)
    assert rank_auc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1])) == 1.0
    assert rank_auc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 0, 1, 0])) == 0.25  # hand count
    assert np.isnan(rank_auc(np.ones(3), np.zeros(3)))
