"""Working points between ROC vertices (interpolation, not a step lookup) and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.metrics.roc import (
    binomial_error,
    bootstrap_indices,
    effective_count,
    eps_s_at_eps_b,
    roc_curve,
    summarize,
    threshold_at_eps_b,
)


def _hand_curve():  # type: ignore[no-untyped-def]
    # signal 0.9, 0.8, 0.4 ; background 0.7, 0.3, 0.2, 0.1 -> vertices
    # (0, 0) (0, 1/3) (0, 2/3) (1/4, 2/3) (1/4, 1) (1/2, 1) (3/4, 1) (1, 1)
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    return roc_curve(scores, np.array([1, 1, 1, 0, 0, 0, 0]))


def test_eps_s_between_vertices_is_linear_interpolation() -> None:
    c = _hand_curve()
    # halfway between (0, 2/3) and (1/4, 1): 2/3 + (1/2)(1/3) = 5/6; a step lookup gives 2/3 or 1
    assert eps_s_at_eps_b(c, 0.125) == pytest.approx(5 / 6)
    # a quarter of the way: 2/3 + (1/4)(1/3) = 3/4
    assert eps_s_at_eps_b(c, 1 / 16) == pytest.approx(3 / 4)


def test_interpolation_on_a_continuous_score_matches_hand_value() -> None:
    # background 0..999, signal 500 events at 995.5 and 500 at -1. Upper envelope vertices:
    # (0.003, 0) (cut 997), (0.004, 0.5) (cut 995.5), (0.005, 0.5) (cut 995).
    bkg = np.arange(1000.0)
    sig = np.r_[np.full(500, 995.5), np.full(500, -1.0)]
    c = roc_curve(np.r_[sig, bkg], np.r_[np.ones(1000), np.zeros(1000)])
    # halfway between (0.003, 0) and (0.004, 0.5): 0.25 (a step lookup gives 0 or 0.5)
    assert eps_s_at_eps_b(c, 0.0035) == pytest.approx(0.25)
    assert eps_s_at_eps_b(c, 0.0045) == pytest.approx(0.5)


def test_binomial_errors_and_effective_count() -> None:
    assert binomial_error(0.5, 100) == pytest.approx(0.05)
    assert binomial_error(0.0, 100) == 0.0
    assert np.isnan(binomial_error(0.5, 0))
    assert effective_count(np.ones(7)) == pytest.approx(7.0)
    # weights 1, 3: (4)^2 / (1 + 9) = 1.6
    assert effective_count(np.array([1.0, 3.0])) == pytest.approx(1.6)
    s = summarize(
        np.r_[np.arange(200.0), np.arange(1000.0) / 10], np.r_[np.ones(200), np.zeros(1000)]
    )
    assert s.eps_s_at_1e2_err == pytest.approx(np.sqrt(s.eps_s_at_1e2 * (1 - s.eps_s_at_1e2) / 200))


def test_binomial_error_matches_spread_of_toy_experiments() -> None:
    rng = np.random.default_rng(3)
    eff = rng.binomial(400, 0.3, size=4000) / 400
    assert np.std(eff) == pytest.approx(binomial_error(0.3, 400), rel=0.05)


def test_threshold_keeps_the_requested_background_fraction() -> None:
    b = np.random.default_rng(0).normal(size=10_000)
    cut = threshold_at_eps_b(b, 1e-2)
    assert (b > cut).mean() == pytest.approx(1e-2, abs=2e-4)
    with pytest.raises(ValueError, match="eps_b"):
        threshold_at_eps_b(b, 0.0)
    idx = bootstrap_indices(5, 3, np.random.default_rng(0))
    assert idx.shape == (3, 5) and idx.min() >= 0 and idx.max() < 5
