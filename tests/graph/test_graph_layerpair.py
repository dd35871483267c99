"""Windowed phi pairs against a brute-force reference, wrap-around and range expansion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from particlegraph.graph.layerpair import expand_ranges, phi_window_pairs, wrap_phi


def _brute(phi_a, phi_b, lo, hi):
    d = wrap_phi(phi_b[None, :] - phi_a[:, None])
    i, j = np.nonzero((d >= lo) & (d <= hi))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize(("lo", "hi"), [(-0.1, 0.1), (-0.02, 0.3), (0.05, 0.2), (-3.0, 3.0)])
def test_phi_window_pairs_match_brute_force(lo, hi):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-math.pi, math.pi, 200), rng.uniform(-math.pi, math.pi, 300)
    i, j = phi_window_pairs(a, b, lo, hi)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(got) == i.size  # no pair twice
    assert got == _brute(a, b, lo, hi)


def test_window_wraps_around_pi():
    a = np.array([math.pi - 0.01])
    b = np.array([-math.pi + 0.01, 0.0, math.pi - 0.05])
    _, j = phi_window_pairs(a, b, -0.05, 0.05)
    assert sorted(j.tolist()) == [0, 2]  # the hit across +-pi is 0.02 rad away


def test_expand_ranges_by_hand():
    rows, k = expand_ranges(np.array([0, 5, 3]), np.array([2, 6, 3]))
    assert rows.tolist() == [0, 0, 1] and k.tolist() == [0, 1, 5]


def test_empty_inputs():
    i, j = phi_window_pairs(np.zeros(0), np.array([0.1]), -1, 1)
    assert i.size == j.size == 0


@pytest.mark.parametrize("bins", [1, 4, 16])
def test_binned_pairs_contain_every_pair_inside_both_windows(bins):
    from particlegraph.graph.layerpair import binned_window_pairs

    rng = np.random.default_rng(5)
    a, b = rng.uniform(-math.pi, math.pi, 150), rng.uniform(-math.pi, math.pi, 400)
    ua, ub = rng.uniform(-100, 100, 150), rng.uniform(-100, 100, 400)
    u_lo, u_hi = ua - 20, ua + 20
    i, j = binned_window_pairs(a, u_lo, u_hi, b, ub, -0.3, 0.2, bins)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(got) == i.size
    want = {p for p in _brute(a, b, -0.3, 0.2) if u_lo[p[0]] <= ub[p[1]] <= u_hi[p[0]]}
    assert want <= got <= _brute(a, b, -0.3, 0.2)
    if bins == 16:
        assert len(got) < 0.6 * len(_brute(a, b, -0.3, 0.2))  # the bins do prune


def test_one_phi_bins_serves_several_inner_sets_as_separate_calls_do():
    from particlegraph.graph.layerpair import PhiBins, binned_window_pairs

    rng = np.random.default_rng(8)
    b, ub = rng.uniform(-math.pi, math.pi, 500), rng.uniform(-100, 100, 500)
    bins = PhiBins(b, ub, 8)
    for n, (lo, hi) in ((120, (-0.3, 0.2)), (80, (-0.05, 0.05)), (60, (-2.0, 2.0))):
        a, ua = rng.uniform(-math.pi, math.pi, n), rng.uniform(-100, 100, n)
        got = bins.pairs(a, ua - 15, ua + 15, lo, hi)
        want = binned_window_pairs(a, ua - 15, ua + 15, b, ub, lo, hi, 8)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        inside = {p for p in _brute(a, b, lo, hi) if ua[p[0]] - 15 <= ub[p[1]] <= ua[p[0]] + 15}
        assert inside <= set(zip(got[0].tolist(), got[1].tolist(), strict=True))
