"""Trivial event scores: hand values, and the background density ranks outliers above the bulk."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly.samples import Candidates
from particlegraph.tasks.anomaly.trivial import TrivialDensity, event_observables, trivial_scores


def _cands(pts: list[list[float]], phis: list[list[float]], ht: list[float]) -> Candidates:
    counts = [len(p) for p in pts]
    n = sum(counts)
    flat = lambda a: np.array([v for e in a for v in e], dtype=np.float32)  # noqa: E731
    return Candidates(
        flat(pts), np.zeros(n, np.float32), flat(phis), np.ones(n, np.int64), np.ones(n, np.int64),
        flat(pts), np.r_[0, np.cumsum(counts)].astype(np.int64), np.array(counts) + 100,
        np.array(ht, np.float32), np.zeros(len(pts), np.float32), np.zeros(len(pts), np.float32),
        np.ones(len(pts), np.int64),
    )  # fmt: skip


def test_observables_by_hand() -> None:
    # event 0: back-to-back 50 + 50 GeV and a 10 GeV particle at phi = pi/2 -> MET 10
    # event 1: 45 candidates of 1 GeV at phi 0 except the first 30 GeV -> sum of top 40 = 30 + 39
    pts = [[50.0, 10.0, 50.0], [30.0] + [1.0] * 44]
    phis = [[0.0, np.pi / 2, np.pi], [0.0] * 45]
    o = event_observables(_cands(pts, phis, [100.0, 0.0]))
    np.testing.assert_allclose(o["sum_pt"], [110.0, 69.0], rtol=1e-6)
    np.testing.assert_allclose(o["lead_pt"], [50.0, 30.0])
    np.testing.assert_allclose(o["met"], [10.0, 74.0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(o["ht"], [100.0, 0.0])
    np.testing.assert_allclose(o["n_cand"], [103.0, 145.0])


def test_density_is_larger_for_events_unlike_the_background() -> None:
    rng = np.random.default_rng(0)
    n = 400
    bkg = {"ht": rng.lognormal(6, 0.2, n), "n_cand": rng.normal(1000, 100, n),
           "lead_pt": rng.lognormal(4, 0.3, n), "met": rng.lognormal(3, 0.5, n)}  # fmt: skip
    d = TrivialDensity.fit(bkg)
    bulk = d.score({k: np.median(v, keepdims=True) for k, v in bkg.items()})
    far = d.score({k: np.median(v, keepdims=True) * 4 for k, v in bkg.items()})
    soft = d.score({k: np.median(v, keepdims=True) / 4 for k, v in bkg.items()})
    assert far[0] > bulk[0] + 10 and soft[0] > bulk[0] + 10  # two-sided
    with pytest.raises(ConfigError, match="20 background"):
        TrivialDensity.fit({k: v[:5] for k, v in bkg.items()})


def test_trivial_scores_adds_the_density_column() -> None:
    rng = np.random.default_rng(1)
    pts = [list(np.sort(rng.exponential(5, 30))[::-1] + 1) for _ in range(40)]
    phis = [list(rng.uniform(-np.pi, np.pi, 30)) for _ in range(40)]
    c = _cands(pts, phis, list(rng.uniform(300, 600, 40)))
    d = TrivialDensity.fit(event_observables(c), max_components=2)
    cols = trivial_scores(c, d)
    assert set(cols) == {"ht", "sum_pt", "n_cand", "lead_pt", "met", "density"}
    assert all(v.shape == (40,) and np.isfinite(v).all() for v in cols.values())
