"""Pile-up overlay: the number of overlaid interactions is Poisson(mu), each drawn whole."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from particlegraph.sim.particles import Particles
from particlegraph.sim.pileup import MinBiasPool, overlay

SIZES = (1, 2, 3, 4, 5, 6, 7)  # particles of pool event i; every pool event holds >= 1


def _pool() -> MinBiasPool:
    """Pool event i holds SIZES[i] particles with pid 1000 * (i + 1) + k (k-th particle)."""
    pid = np.concatenate([1000 * (i + 1) + np.arange(s) for i, s in enumerate(SIZES)])
    n = pid.size
    ones = np.ones(n)
    parts = Particles(pid.astype(np.int32), ones, 3 * ones, 4 * ones, ones, 6 * ones,
                      ones, 0 * ones, 2 * ones)  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(SIZES)]).astype(np.int64)
    return MinBiasPool(parts, offsets)


def _draws_in(parts: Particles) -> int:
    """Pool events in an overlay, counted from the particles (each draw adds a whole event)."""
    codes = Counter((parts.pid // 1000).tolist())
    return sum(count // SIZES[code - 1] for code, count in codes.items())


@pytest.mark.parametrize("mu", [0.5, 3.0, 50.0])
def test_mean_number_of_interactions_is_mu(mu: float) -> None:
    """The sample mean of n equals mu within 4 standard errors sqrt(mu / N); so does the
    variance (Poisson: var = mu), which a fixed n = round(mu) would fail. An off-by-one in
    the mean is at least 8.9 standard errors away at every mu here (mu = 200 would need
    16,000 draws of 200 events for that, too slow for the default suite)."""
    pool, rng, trials = _pool(), np.random.default_rng(12345), 4000
    counts = np.empty(trials)
    for t in range(trials):
        parts, n = overlay(pool, mu, rng, vertex_sigma_z=50.0)
        counts[t] = n
        if t < 200:  # the returned count is the number of whole events in the particles
            assert _draws_in(parts) == n
    assert abs(counts.mean() - mu) < 4 * np.sqrt(mu / trials)
    var_error = np.sqrt((2 * mu**2 + mu) / trials)  # standard error of a Poisson variance
    assert abs(counts.var(ddof=1) - mu) < 5 * var_error


def test_zero_mu_overlays_nothing() -> None:
    parts, n = overlay(_pool(), 0.0, np.random.default_rng(0), vertex_sigma_z=50.0)
    assert n == 0 and parts.size == 0


def test_each_event_is_rotated_and_mirrored_whole() -> None:
    """pT, |pz|, energy and transverse vertex radius are kept; the vertex z moves per event."""
    parts, n = overlay(_pool(), 30.0, np.random.default_rng(3), vertex_sigma_z=50.0)
    assert n > 0
    np.testing.assert_allclose(np.hypot(parts.px, parts.py), 5.0)
    np.testing.assert_allclose(np.abs(parts.pz), 1.0)
    np.testing.assert_allclose(parts.e, 6.0)
    np.testing.assert_allclose(np.hypot(parts.vx, parts.vy), 1.0)
    assert np.unique(np.round(parts.vz, 9)).size > 1


@pytest.mark.parametrize("mu", [-0.1, float("nan"), float("inf"), 1000.001])
def test_mu_outside_its_range_is_refused(mu: float) -> None:
    from particlegraph.errors import ConfigError

    with pytest.raises(ConfigError, match="pile-up mu must be between 0 and 1000"):
        overlay(_pool(), mu, np.random.default_rng(0), vertex_sigma_z=50.0)


def test_mu_at_the_bound_is_accepted() -> None:
    _, n = overlay(_pool(), 1000.0, np.random.default_rng(0), vertex_sigma_z=50.0)
    assert 800 < n < 1200  # 1000 +- 6 sigma


@pytest.mark.parametrize("size", [0, 100_001])
def test_pool_size_outside_its_range_is_refused_before_pythia(size: int) -> None:
    from particlegraph.errors import ConfigError
    from particlegraph.sim.pileup import build_pool

    with pytest.raises(ConfigError, match="between 1 and 100,000 events"):
        build_pool(size, seed=0)


def test_mean_at_the_hl_lhc_value_200_off_by_one_fails() -> None:
    """At PU 200 (the HL-LHC value of the docs) over 20,000 crossings: the standard error of
    the mean is sqrt(200 / 20000) = 0.1, so the 4-sigma window +-0.4 excludes 199 and 201."""
    pool, rng, trials = _pool(), np.random.default_rng(2026), 20_000
    counts = np.array([overlay(pool, 200.0, rng, vertex_sigma_z=50.0)[1] for _ in range(trials)])
    sem = np.sqrt(200.0 / trials)
    assert abs(counts.mean() - 200.0) < 4 * sem
    assert abs(counts.mean() - 199.0) > 5 * sem and abs(counts.mean() - 201.0) > 5 * sem


def test_generation_skeleton_overlays_pileup_interactions_on_average(monkeypatch) -> None:
    """Through :func:`~particlegraph.sim.collisions.collisions` (what every generator runs with
    its --pileup): the pool events per crossing, counted from the particles, average to --pileup
    = 3 within 4 standard errors (0.11) over 4,000 crossings; the hard event is never counted."""
    from particlegraph.sim import collisions as skeleton

    zeros = np.zeros(2)
    hard = Particles(np.zeros(2, np.int32), *([zeros] * 8))  # pid 0: not a pool event
    monkeypatch.setattr(skeleton, "next_events", lambda _p, n: [hard] * n)
    rng, crossings = np.random.default_rng(99), 4000
    stream = skeleton.collisions(object(), rng, pileup=3.0, pool=_pool(), vertex_sigma_z=50.0,
                                 n=crossings)  # fmt: skip
    counts = []
    for parts in stream:
        pool_parts = parts.select(np.flatnonzero(parts.pid >= 1000))
        assert pool_parts.size == parts.size - 2  # the two hard particles come along once
        counts.append(_draws_in(pool_parts))
    assert len(counts) == crossings
    assert abs(np.mean(counts) - 3.0) < 4 * np.sqrt(3.0 / crossings)
