"""Bootstrap over events: errors against analytic values, weighted quantiles, paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.metrics import bootstrap as bs


def test_event_counts_resample_every_event_count() -> None:
    counts = bs.event_counts(37, replicas=50, seed=3)
    assert counts.shape == (50, 37)
    assert (counts.sum(1) == 37).all()
    assert (counts >= 0).all()
    # seeded: the same seed gives the same replicas, another seed others
    assert np.array_equal(counts, bs.event_counts(37, replicas=50, seed=3))
    assert not np.array_equal(counts, bs.event_counts(37, replicas=50, seed=4))


def test_bootstrap_of_a_mean_matches_the_analytic_standard_error() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 2.0, size=400)  # one value per event
    counts = bs.event_counts(x.size, replicas=2000, seed=11)
    means = bs.replica_sums(x, counts) / x.size  # (B,)
    analytic = x.std(ddof=1) / np.sqrt(x.size)  # 0.1 for sigma 2, K = 400
    assert bs.spread(means) == pytest.approx(analytic, rel=0.06)
    # the element path (several elements per event) equals the explicit resampled sample
    events = np.arange(x.size) // 4  # 100 events of 4 values each
    small = bs.event_counts(100, replicas=3, seed=2)
    nom, reps = bs.quantile_replicas(x, events, small, (0.5,))
    assert nom[0] == pytest.approx(np.median(x))
    for b in range(3):
        assert reps[b, 0] == pytest.approx(np.median(np.repeat(x, small[b][events])))


def test_weighted_quantiles_equal_percentile_of_the_repeated_sample() -> None:
    rng = np.random.default_rng(1)
    v = np.sort(rng.normal(size=25))
    w = rng.integers(0, 4, size=25)
    qs = (0.0, 0.1, 0.25, 0.5, 0.75, 0.93, 1.0)
    expected = np.percentile(np.repeat(v, w), np.asarray(qs) * 100.0)
    assert np.allclose(bs.weighted_quantiles(v, w, qs), expected)
    # hand value: [1, 2, 2, 3] -> median 2, q25 = 1.75
    assert np.allclose(bs.weighted_quantiles(np.array([1.0, 2.0, 3.0]), np.array([1, 2, 1]),
                                             (0.25, 0.5)), [1.75, 2.0])  # fmt: skip
    assert np.isnan(bs.weighted_quantiles(v, np.zeros(25, dtype=int), (0.5,))).all()


def test_weighted_std_nominal_is_numpy_std() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    counts = np.array([[1, 1, 1, 1], [4, 0, 0, 0], [0, 2, 2, 0]])
    nom, reps = bs.weighted_std(x, counts)
    assert nom == pytest.approx(np.std(x))
    assert reps == pytest.approx([np.std(x), 0.0, 1.0])


def test_paired_difference_of_identical_inputs_is_exactly_zero() -> None:
    rng = np.random.default_rng(2)
    values, events = rng.exponential(size=300), rng.integers(0, 60, size=300)
    counts = bs.event_counts(60, replicas=200, seed=5)
    nom, reps = bs.quantile_replicas(values, events, counts, (0.5,))
    a = bs.Estimate(float(nom[0]), reps[:, 0])
    b = bs.Estimate(float(nom[0]), reps[:, 0].copy())
    assert a.error > 0.0
    comp = bs.compare(a, b, lower_is_better=True)
    assert comp["difference"] == {"value": 0.0, "error": 0.0}
    assert comp["better"] is False and comp["at_least_as_good"] is True


def test_verdicts_follow_two_and_one_sigma() -> None:
    base = bs.Estimate(1.0, np.zeros(4))
    jitter = np.array([-1.0, 1.0, -1.0, 1.0])  # std (ddof=1) 1.1547 of the difference x 0.1

    def est(v: float) -> bs.Estimate:
        return bs.Estimate(v, v + 0.1 * jitter)

    sigma = 0.1 * np.std(jitter, ddof=1)
    clearly_lower = bs.compare(est(1.0 - 2.5 * sigma), base, lower_is_better=True)
    assert clearly_lower["better"] is True
    slightly_higher = bs.compare(est(1.0 + 0.5 * sigma), base, lower_is_better=True)
    assert slightly_higher["better"] is False and slightly_higher["at_least_as_good"] is True
    worse = bs.compare(est(1.0 + 1.5 * sigma), base, lower_is_better=True)
    assert worse["at_least_as_good"] is False
    assert bs.compare(est(1.0 + 2.5 * sigma), base, lower_is_better=False)["better"] is True


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        bs.event_counts(0)
    with pytest.raises(ValueError, match="2 replicas"):
        bs.event_counts(5, replicas=1)


def test_float_round_off_is_no_difference() -> None:
    a = bs.Estimate(0.0067 * (1 + 1e-8), np.full(5, 0.0067 * (1 + 1e-8)))
    b = bs.Estimate(0.0067, np.full(5, 0.0067))  # error of the difference: 0
    comp = bs.compare(a, b, lower_is_better=True)
    assert comp["at_least_as_good"] is True and comp["better"] is False
    worse = bs.compare(bs.Estimate(0.0068, np.full(5, 0.0068)), b, lower_is_better=True)
    assert worse["at_least_as_good"] is False
