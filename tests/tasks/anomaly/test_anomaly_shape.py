"""Shape features: hand-computed values, invariance under a common pT scale; the shape density."""

from __future__ import annotations

import math

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly.samples import Candidates
from particlegraph.tasks.anomaly.shape import (
    SHAPE_FEATURES,
    ShapeDensity,
    best_density,
    shape_features,
)


def _two_events(scale: float = 1.0) -> Candidates:
    """Event 0: e- (6 GeV), h+ (3 GeV, eta 1), photon (1 GeV, phi pi/2); event 1: one mu+."""
    f32 = np.float32
    return Candidates(
        pt=np.array([6.0, 3.0, 1.0, 5.0], f32) * scale,
        eta=np.array([0.0, 1.0, 0.0, 0.3], f32),
        phi=np.array([0.0, 0.0, math.pi / 2, 1.0], f32),
        cls=np.array([4, 1, 3, 5], np.int8),
        charge=np.array([-1, 1, 0, 1], np.int8),
        energy=np.array([6.0, 3.0, 1.0, 5.0], f32) * scale,
        offsets=np.array([0, 3, 4]),
        n_cand=np.array([3, 1]),
        ht=np.array([100.0, 40.0]) * scale,
        lead_jet_pt=np.array([50.0, 40.0]) * scale,
        lead_jet_mass=np.array([10.0, 4.0]) * scale,
        n_jets=np.array([2, 1]),
    )


def test_shape_features_by_hand() -> None:
    f = dict(zip(SHAPE_FEATURES, shape_features(_two_events()).T, strict=True))
    assert f["f1"] == pytest.approx([0.6, 1.0]) and f["f4"] == pytest.approx([1.0, 1.0])
    assert f["frac_e"] == pytest.approx([0.6, 0.0]) and f["frac_ch"] == pytest.approx([0.3, 0.0])
    assert f["frac_gamma"] == pytest.approx([0.1, 0.0]) and f["frac_mu"] == pytest.approx([0, 1])
    assert f["n_lep"].tolist() == [1.0, 1.0]
    assert f["balance"] == pytest.approx([math.hypot(0.9, 0.1), 1.0], rel=1e-6)
    assert f["spread_eta"] == pytest.approx([math.sqrt(0.3), 0.0], rel=1e-6)
    assert f["spread_phi"] == pytest.approx([math.sqrt(0.1) * math.pi / 2, 0.0], rel=1e-6)
    assert f["jet_frac"] == pytest.approx([0.5, 1.0])
    assert f["jet_m_over_pt"] == pytest.approx([0.2, 0.1])
    assert f["n_jets"].tolist() == [2.0, 1.0]


def test_shape_features_do_not_see_the_event_scale() -> None:
    np.testing.assert_allclose(
        shape_features(_two_events(7.5)), shape_features(_two_events()), rtol=1e-6, atol=1e-9
    )


def test_shape_density_chooses_components_on_validation() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int) -> np.ndarray:  # two separated clusters in 3 features
        centre = np.where(rng.random(n) < 0.5, -4.0, 4.0)[:, None]
        return centre + rng.normal(size=(n, 3))

    d = ShapeDensity.fit(sample(600), sample(300))
    assert d.components >= 2 and set(d.validation_nll) == {1, 2, 4, 8}
    assert d.validation_nll[2] < d.validation_nll[1]
    s = d.score(np.array([[4.0, 4.0, 4.0], [0.0, 0.0, 0.0]]))
    assert s[1] > s[0] + 3  # between the clusters: rare in the background
    with pytest.raises(ConfigError, match="validation"):
        ShapeDensity.fit(sample(600), sample(5))


def test_shape_density_tries_exactly_the_mixture_sizes_asked() -> None:
    rng = np.random.default_rng(2)
    train, val = rng.normal(size=(200, 2)), rng.normal(size=(60, 2))
    d = ShapeDensity.fit(train, val, components=(1, 3))
    assert set(d.validation_nll) == {1, 3} and d.components in (1, 3)
    for bad in ((), (0, 2)):
        with pytest.raises(ConfigError, match="mixture sizes"):
            ShapeDensity.fit(train, val, components=bad)


def test_fit_all_keeps_every_size_and_best_density_chooses_on_validation() -> None:
    rng = np.random.default_rng(3)

    def sample(n: int) -> np.ndarray:  # four separated clusters in 2 features
        centre = rng.choice([-6.0, -2.0, 2.0, 6.0], size=(n, 1))
        return np.concatenate([centre, -centre], 1) + rng.normal(size=(n, 2)) * 0.5

    train, val = sample(800), sample(400)
    fits = ShapeDensity.fit_all(train, val, seed=0, components=(1, 2, 4))
    assert sorted(fits) == [1, 2, 4] and [fits[k].components for k in (1, 2, 4)] == [1, 2, 4]
    nll = fits[1].validation_nll
    for k in (1, 2, 4):  # each size's validation -log p is its own mixture's mean on val
        assert nll[k] == pytest.approx(float(fits[k].score(val).mean()), rel=1e-9)
    assert nll[4] < nll[2] < nll[1]
    assert best_density(fits) is fits[4] and best_density(fits, max_components=3) is fits[2]
    chosen = ShapeDensity.fit(train, val, seed=0, components=(1, 2, 4))
    np.testing.assert_allclose(chosen.score(val), fits[4].score(val), rtol=1e-12)
    with pytest.raises(ConfigError, match="no mixture size <= 0"):
        best_density(fits, max_components=0)
