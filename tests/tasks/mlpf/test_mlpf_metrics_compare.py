"""compare(): the MLPF-vs-baseline metric core on seeded synthetic events."""

from __future__ import annotations

import json

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf import metrics as pf


def synthetic_event(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, ...]:
    """A random event with particles in two narrow cones so that jets above 20 GeV form."""
    X = rng.normal(size=(n, 12)).astype(np.float32)
    ygen = np.zeros((n, 7), dtype=np.float32)
    cls = rng.choice([0, 1, 2, 3, 4, 5], size=n, p=[0.1, 0.5, 0.15, 0.2, 0.03, 0.02])
    pt = rng.exponential(5.0, n) + 0.5
    centre = rng.uniform(-np.pi, np.pi, 2)
    which = rng.integers(0, 2, n)
    eta = rng.normal(0.0, 0.1, n) + np.where(which == 0, -1.0, 1.0)
    ph = centre[which] + rng.normal(0.0, 0.1, n)
    ygen[:, 0] = cls
    ygen[:, 1] = np.where(np.isin(cls, [1, 4, 5]), 1.0, 0.0)
    ygen[:, 2] = pt
    ygen[:, 3] = eta
    ygen[:, 4] = np.sin(ph)
    ygen[:, 5] = np.cos(ph)
    ygen[:, 6] = pt * np.cosh(eta)
    ygen[cls == 0] = 0.0
    return X, ygen


def test_perfect_prediction_gives_ideal_metrics() -> None:
    rng = np.random.default_rng(0)
    events = []
    for _ in range(5):
        X, ygen = synthetic_event(rng)
        ycand = ygen.copy()
        ycand[:, 2] *= rng.uniform(0.8, 1.2, len(ycand)).astype(np.float32)
        flip = rng.random(len(ycand)) < 0.2
        ycand[flip & (ycand[:, 0] == 2), 0] = 3  # baseline confuses neutral hadrons
        events.append((X, ygen, ycand, ygen.copy()))
    res = pf.compare(events, jet_chunk=2)
    json.dumps(res)  # JSON-ready: no NaN, no numpy scalars
    assert res["events"] == 5
    m, b = res["mlpf"], res["baseline"]
    for name in ("charged_hadron", "neutral_hadron", "photon"):
        assert m["efficiency"][name] == pytest.approx(1.0)
        assert m["fake_rate"][name] == pytest.approx(0.0)
        assert m["pt_resolution"][name] == pytest.approx(0.0, abs=1e-6)
        assert m["pt_response"][name] == pytest.approx(1.0)
        assert m["energy_resolution"][name] == pytest.approx(0.0, abs=1e-6)
        assert m["eta_resolution"][name] == pytest.approx(0.0, abs=1e-6)
        assert m["multiplicity_mean"][name] == res["gen"]["multiplicity_mean"][name]
    assert res["gen"]["jets"] > 0
    assert m["jet_pt_resolution"] == pytest.approx(0.0, abs=1e-6)
    assert m["jet_pt_response"] == pytest.approx(1.0)
    assert m["jet_matching_efficiency"] == pytest.approx(1.0)
    binned = m["jet_pt_binned"]
    assert sum(binned["count"]) == m["jets_matched"] == res["gen"]["jets"]
    filled = [r for r, n in zip(binned["resolution"], binned["count"], strict=True) if n]
    assert filled and all(r == pytest.approx(0.0, abs=1e-6) for r in filled)
    assert m["met_resolution"] == pytest.approx(0.0, abs=1e-6)
    assert m["met_std_gev"] == pytest.approx(0.0, abs=1e-4)
    # the smeared, confused baseline is worse
    assert b["efficiency"]["neutral_hadron"] < 1.0
    assert b["fake_rate"]["photon"] > 0.0
    assert b["pt_resolution"]["charged_hadron"] > 0.05
    assert b["jet_pt_resolution"] > 0.0
    assert np.array(m["confusion_matrix"]).sum() == 5 * 60


def test_confusion_matches_direct_count_and_baseline_only() -> None:
    rng = np.random.default_rng(1)
    X, ygen = synthetic_event(rng, 40)
    ycand = ygen.copy()
    ycand[:5, 0] = 0
    ycand[:5, 1:] = 0
    res = pf.compare([(X, ygen, ycand)])
    assert "mlpf" not in res
    cm = np.array(res["baseline"]["confusion_matrix"])
    np.testing.assert_array_equal(
        cm, pf.confusion_matrix(ygen[:, 0].astype(int), ycand[:, 0].astype(int))
    )


def test_compare_errors() -> None:
    rng = np.random.default_rng(2)
    X, ygen = synthetic_event(rng, 10)
    with pytest.raises(DataFileError, match="empty"):
        pf.compare([])
    with pytest.raises(DataFileError, match="same number of rows"):
        pf.compare([(X, ygen, ygen[:5])])
    with pytest.raises(DataFileError, match="sides"):
        pf.compare([(X, ygen, ygen, ygen), (X, ygen, ygen)])


@pytest.mark.parametrize(("shift", "matched"), [(0.19, 1), (0.21, 0)])
def test_default_jet_matching_radius_is_0_2(shift: float, matched: int) -> None:
    """One 50 GeV particle per event; the reco copy moved by ``shift`` in eta is matched only
    within the default Delta R of 0.2 (no jet option passed: the defaults are what is tested)."""

    def row(eta: float) -> list[float]:
        return [1.0, 1.0, 50.0, eta, 0.0, 1.0, 50.0 * np.cosh(eta)]

    ygen = np.array([row(0.0)], dtype=np.float32)
    ycand = np.array([row(shift)], dtype=np.float32)
    res = pf.compare([(np.zeros((1, 12), np.float32), ygen, ycand, None)])
    assert res["settings"]["jet_match_dr"] == 0.2
    assert res["gen"]["jets"] == 1
    assert res["baseline"]["jets_matched"] == matched
