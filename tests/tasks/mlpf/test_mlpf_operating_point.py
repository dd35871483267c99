from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf.operating_point import (
    OPERATING_POINT_FILE,
    _rates,
    choose_offsets,
    efficiency_fake_curves,
    fake_rate_limit,
    load_operating_point,
    operating_point_from_arrays,
)


def _rows(cls: np.ndarray, pt: np.ndarray | None = None) -> np.ndarray:
    y = np.zeros((len(cls), 7))
    y[:, 0] = cls
    y[:, 2] = 1.0 if pt is None else pt
    return y


def test_rates_hand_values() -> None:
    true = np.array([2, 2, 2, 0, 3])
    pred = np.array([2, 0, 2, 2, 2])
    eff, fake = _rates(true, pred, 2)
    assert eff == pytest.approx(2 / 3)
    assert fake == pytest.approx(2 / 4)


def _sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Towers of true class none / NH / photon; the network over-predicts NH by +1.5 log-odds."""
    rng = np.random.default_rng(seed)
    n = 3000
    true = rng.choice([0, 2, 3], size=n, p=[0.3, 0.4, 0.3])
    logits = rng.normal(0.0, 1.0, size=(n, 6))
    logits[:, [1, 4, 5]] = -10.0
    logits[np.arange(n), true] += 2.0  # informative scores
    logits[:, 2] += 1.5  # the bias a class weight leaves behind
    # the baseline: right 85 % of the time, else a random neutral class or "none"
    base = np.where(rng.random(n) < 0.85, true, rng.choice([0, 2, 3], size=n))
    return logits, true, base


def test_choose_offsets_meets_the_baseline_fake_rates() -> None:
    logits, true, base = _sample()
    plain = logits.argmax(-1)
    assert _rates(true, plain, 2)[1] > _rates(true, base, 2)[1]  # too many NH fakes at argmax
    offsets, feasible, excess, _ = choose_offsets(logits, true, base)
    assert feasible and excess == 0.0
    assert offsets[0] == offsets[1] == offsets[4] == offsets[5] == 0.0
    assert offsets[2] < 0.0  # the NH bias is taken back
    pred = (logits + offsets).argmax(-1)
    for c in (2, 3):
        assert _rates(true, pred, c)[1] <= fake_rate_limit(true, base, c, 1.0) + 1e-12


def test_fake_rate_limit_adds_the_binomial_error() -> None:
    true = np.array([2] * 75 + [0] * 25)
    base = np.full(100, 2)  # 100 NH candidates, 25 fakes
    assert fake_rate_limit(true, base, 2, 0.0) == pytest.approx(0.25)
    assert fake_rate_limit(true, base, 2, 2.0) == pytest.approx(
        0.25 + 2 * np.sqrt(0.25 * 0.75 / 100)
    )
    assert fake_rate_limit(true, base, 3, 1.0) == 0.0  # no baseline photons: no fakes allowed


def test_choose_offsets_reports_infeasible_and_takes_smallest_excess() -> None:
    rng = np.random.default_rng(1)
    true = rng.choice([0, 2, 3], size=500)
    logits = rng.normal(size=(500, 6))  # scores carry no information
    # a perfect baseline (0 fakes) and no offsets to try but 0 and 1
    offsets, feasible, excess, _ = choose_offsets(
        logits, true, true, grid=(0.0, 1.0), tolerance_sigma=0.0
    )
    assert not feasible and excess > 0.0
    assert set(offsets[[2, 3]].tolist()) <= {0.0, 1.0}
    assert offsets[[0, 1, 4, 5]].tolist() == [0.0] * 4


def test_operating_point_round_trip_and_curves(tmp_path) -> None:
    logits, true, base = _sample(2)
    pt = np.random.default_rng(3).exponential(3.0, size=len(true))
    op = operating_point_from_arrays(logits, _rows(true), _rows(base, pt), events=7)
    assert op.events == 7 and op.feasible
    for name in ("neutral_hadron", "photon"):
        assert op.mlpf["fake_rate"][name] <= op.baseline["fake_rate_limit"][name] + 1e-12
        assert op.baseline["fake_rate_limit"][name] > op.baseline["fake_rate"][name]
        curve = op.curves[name]
        assert len(curve["mlpf"]["efficiency"]) == len(curve["mlpf"]["offset"])
        # baseline threshold 0 reproduces its plain rates; higher thresholds lose efficiency
        b = curve["baseline"]["efficiency"]
        assert b[0] == pytest.approx(op.baseline["efficiency"][name])
        assert all(x >= y for x, y in itertools.pairwise(b))
    from dataclasses import asdict

    (tmp_path / OPERATING_POINT_FILE).write_text(json.dumps(asdict(op)))
    loaded = load_operating_point(tmp_path)
    assert loaded is not None and loaded.class_offsets == op.class_offsets
    assert load_operating_point(tmp_path / "missing") is None


def test_curves_mlpf_offset_scan_is_monotone_in_efficiency() -> None:
    logits, true, base = _sample(4)
    curves = efficiency_fake_curves(logits, true, _rows(base), np.zeros(6))
    eff = curves["photon"]["mlpf"]["efficiency"]
    assert all(x <= y + 1e-12 for x, y in itertools.pairwise(eff))  # larger offset: more


def test_bad_operating_point_file_is_a_data_file_error(tmp_path) -> None:
    (tmp_path / OPERATING_POINT_FILE).write_text('{"class_offsets": [1, 2]}')
    with pytest.raises(DataFileError, match="class offsets"):
        load_operating_point(tmp_path)
    with pytest.raises(DataFileError, match="empty"):
        operating_point_from_arrays(np.zeros((0, 6)), np.zeros((0, 7)), np.zeros((0, 7)))


def test_offsets_gated_by_element_pt_keep_hard_particles() -> None:
    """Soft elements carry the fakes; hard ones are all real with modest margins: the gate keeps
    the hard ones, which a global offset would remove."""
    from particlegraph.tasks.mlpf.operating_point import shift_logits

    logits, true, base = _sample(5)
    n = len(true)
    hard = np.arange(n) % 2 == 1
    pt = np.where(hard, 50.0, 0.5)
    rng = np.random.default_rng(6)
    true[hard] = rng.choice([2, 3], size=int(hard.sum()))
    logits[hard] = rng.normal(0.0, 0.3, size=(int(hard.sum()), 6))
    logits[hard, true[hard]] += 1.0  # right, but by a modest margin
    base[hard] = true[hard]
    op = operating_point_from_arrays(logits, _rows(true), _rows(base), element_pt=pt)
    assert op.offset_max_pt_gev is not None and op.offset_max_pt_gev < 50.0
    off = np.asarray(op.class_offsets)
    gated = shift_logits(logits, off, pt, op.offset_max_pt_gev).argmax(-1)
    np.testing.assert_array_equal(gated[hard], logits[hard].argmax(-1))  # untouched
    assert (gated[hard] == true[hard]).mean() > (
        (logits + off)[hard].argmax(-1) == true[hard]
    ).mean()
