"""Energy calibration by numerical inversion: hand values, closure, application, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf.calibration import (
    Calibration,
    fit_calibration,
    inversion_points,
    load_calibration,
    save_calibration,
)


def test_inversion_points_hand_values() -> None:
    gen = np.array([10.0, 12.0, 14.0, 100.0, 110.0, 120.0])
    pred = np.array([9.0, 10.8, 12.6, 80.0, 88.0, 96.0])  # response 0.9 and 0.8
    pts = inversion_points(gen, pred, edges=(5.0, 50.0, 500.0), min_count=3)
    assert pts == [
        (pytest.approx(10.8), pytest.approx(0.9)),
        (pytest.approx(88.0), pytest.approx(0.8)),
    ]
    assert inversion_points(gen, pred, edges=(5.0, 50.0, 500.0), min_count=4) == []


def test_factor_interpolates_in_log_energy_and_is_flat_outside() -> None:
    cal = Calibration(points={"neutral_hadron": [[(10.0, 0.8), (100.0, 0.9)], [], []]})
    f = cal.factor(2, np.array([5.0, 10.0, np.sqrt(1000.0), 100.0, 500.0, 20.0]),
                   np.array([0.1, 0.1, 0.1, 0.1, 0.1, 2.0]))  # fmt: skip
    # sqrt(10 * 100) is half-way in log E: response 0.85; |eta| 2.0 has no points: factor 1
    assert f == pytest.approx([1 / 0.8, 1 / 0.8, 1 / 0.85, 1 / 0.9, 1 / 0.9, 1.0])
    assert cal.factor(3, np.array([10.0]), np.array([0.0])) == pytest.approx([1.0])  # no photons


def _events(rng: np.random.Generator, n_events: int = 40, n: int = 300):
    """Neutral hadrons whose predicted energy shrinks towards 20 GeV: E = 5 + 0.75 E_gen."""
    events = []
    for _ in range(n_events):
        e_gen = rng.exponential(25.0, n) + 1.0
        eta = rng.uniform(-1.4, 1.4, n)
        e_pred = (5.0 + 0.75 * e_gen) * rng.normal(1.0, 0.1, n)
        ygen = np.zeros((n, 7), np.float32)
        ygen[:, 0], ygen[:, 6], ygen[:, 3] = 2, e_gen, eta
        ygen[:, 2] = e_gen / np.cosh(eta)
        ypred = ygen.copy()
        ypred[:, 6], ypred[:, 2] = e_pred, e_pred / np.cosh(eta)
        events.append((np.zeros((n, 12), np.float32), ygen, ygen, ypred))
    return events


def test_calibration_closes_in_bins_of_true_energy() -> None:
    rng = np.random.default_rng(3)
    cal = fit_calibration(_events(rng))
    assert cal.events == 40
    test = _events(np.random.default_rng(4), n_events=20)
    gen = np.concatenate([e[1][:, 6] for e in test])
    raw = np.concatenate([e[3][:, 6] for e in test])
    fixed = np.concatenate([cal.apply(e[3])[:, 6] for e in test])
    for lo, hi in ((5.0, 10.0), (20.0, 30.0), (50.0, 80.0)):
        sel = (gen >= lo) & (gen < hi)
        before = np.median(raw[sel] / gen[sel])
        after = np.median(fixed[sel] / gen[sel])
        assert abs(after - 1.0) < 0.03, (lo, before, after)
        assert abs(after - 1.0) < abs(before - 1.0)


def test_apply_scales_pt_and_energy_of_neutral_classes_only() -> None:
    cal = Calibration(points={"neutral_hadron": [[(10.0, 0.8)]] * 3,
                              "photon": [[(10.0, 0.5)]] * 3})  # fmt: skip
    y = np.array([[1, 1, 10, 0.5, 0, 1, 11], [2, 0, 10, 0.5, 0, 1, 11],
                  [3, 0, 4, -2.0, 1, 0, 15], [0, 0, 0, 0, 0, 0, 0]], np.float32)  # fmt: skip
    out = cal.apply(y)
    assert out[0].tolist() == y[0].tolist()  # charged hadron untouched
    assert out[1, 2] == pytest.approx(12.5) and out[1, 6] == pytest.approx(13.75)
    assert out[2, 2] == pytest.approx(8.0) and out[2, 6] == pytest.approx(30.0)
    assert out[2, 3] == y[2, 3]  # direction kept
    assert out[3].tolist() == [0.0] * 7
    assert y[1, 2] == 10  # input not modified


def test_save_load_round_trip_and_bad_file(tmp_path) -> None:
    cal = fit_calibration(_events(np.random.default_rng(5), n_events=10))
    save_calibration(cal, tmp_path)
    back = load_calibration(tmp_path)
    assert back == cal
    assert load_calibration(tmp_path / "nowhere") is None
    (tmp_path / "calibration.json").write_text("{}")
    with pytest.raises(DataFileError, match="not a calibration"):
        load_calibration(tmp_path)
    with pytest.raises(DataFileError, match="no validation events"):
        fit_calibration([])
