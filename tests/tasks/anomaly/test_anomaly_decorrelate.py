"""HT calibration (per-bin background quantiles), HT matching weights and the sculpting distance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from particlegraph.errors import ConfigError
from particlegraph.metrics.roc import roc_auc
from particlegraph.tasks.anomaly.comparison import matching_weights
from particlegraph.tasks.anomaly.decorrelate import HTCalibration, jensen_shannon, sculpting


def _bkg(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ht = 300 + rng.exponential(200, n)
    return ht / 100 + rng.normal(0, 1, n), ht  # a score that grows with HT


def test_calibrated_score_forgets_ht_on_background() -> None:
    s, ht = _bkg(4000, 0)
    cal = HTCalibration.fit(s, ht, n_bins=8)
    s2, ht2 = _bkg(4000, 1)  # independent background
    assert spearmanr(s2, ht2)[0] > 0.5
    c = cal.transform(s2, ht2)
    assert abs(spearmanr(c, ht2)[0]) < 0.1
    assert np.mean(c) == pytest.approx(0.0, abs=0.1) and np.std(c) == pytest.approx(1.0, abs=0.1)
    # a cut keeping 10 % keeps about 10 % in the lowest and the highest HT bin
    sel = c > np.quantile(c, 0.9)
    lo, hi = ht2 < np.quantile(ht2, 0.2), ht2 > np.quantile(ht2, 0.8)
    assert sel[lo].mean() == pytest.approx(0.1, abs=0.04) and sel[hi].mean() == pytest.approx(
        0.1, abs=0.04
    )


def test_transform_is_monotone_within_a_bin_and_beyond_the_reference() -> None:
    s, ht = _bkg(500, 2)
    cal = HTCalibration.fit(s, ht, n_bins=5)
    grid = np.linspace(s.min() - 5, s.max() + 5, 300)
    out = cal.transform(grid, np.full(grid.size, np.median(ht)))
    assert (np.diff(out) >= 0).all() and out[-1] > out[-2] and out[0] < out[1]  # no plateau
    with pytest.raises(ConfigError, match="10 background events per bin"):
        HTCalibration.fit(s[:30], ht[:30], n_bins=5)


def test_jensen_shannon_hand_values() -> None:
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([3, 5]), np.array([6, 10])) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4): KL(p|m) = 1 - log2(3)/2 ... by hand:
    expect = 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)) + 0.5 * np.log2(1 / 0.75)
    assert jensen_shannon(np.array([1, 1]), np.array([1, 0])) == pytest.approx(expect)


def test_sculpting_of_a_random_score_is_at_the_floor() -> None:
    rng = np.random.default_rng(4)
    ht = 300 + rng.exponential(200, 2000)
    r = sculpting(rng.normal(size=2000), ht, eps_b=0.1, n_boot=50)
    assert r["n_pass"] == 200
    assert abs(r["jsd"] - r["jsd_random"]) < 3 * r["jsd_random_std"]
    assert r["ht_pass_over_all"] == pytest.approx(1.0, abs=0.1)


def test_matching_weights_give_the_reference_ht_distribution() -> None:
    rng = np.random.default_rng(5)
    ht_ref = 300 + rng.exponential(200, 3000)
    ht_sig = rng.uniform(250, 1500, 800)  # harder, partly outside the reference range
    w = matching_weights(ht_sig, ht_ref, n_bins=10)
    assert (w[ht_sig < ht_ref.min()] == 0).all()
    # weighted signal vs unweighted reference: HT no longer separates (up to within-bin shape)
    auc = roc_auc(
        np.r_[ht_sig, ht_ref], np.r_[np.ones(800), np.zeros(3000)], np.r_[w, np.ones(3000)]
    )
    assert auc == pytest.approx(0.5, abs=0.06)
    assert roc_auc(np.r_[ht_sig, ht_ref], np.r_[np.ones(800), np.zeros(3000)]) > 0.7
