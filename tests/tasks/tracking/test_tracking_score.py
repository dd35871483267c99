"""The TrackML score on hand-worked cases and against a slow re-implementation of the library."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.score import (
    hit_weights,
    order_weights,
    pt_weight,
    track_metrics,
    trackml_score,
)


def _library_score(truth_pid, weight, track_id):
    """Slow reference: the trackml-library's _analyze_tracks loop (sort by track, particle)."""
    nhits = {p: int(np.sum(truth_pid == p)) for p in np.unique(truth_pid).tolist()}
    order = np.lexsort((truth_pid, track_id))
    rows = [(int(track_id[i]), int(truth_pid[i]), float(weight[i])) for i in order]
    total = 0.0
    i = 0
    while i < len(rows):
        t = rows[i][0]
        j = i
        counts: dict[int, list[float]] = {}
        while j < len(rows) and rows[j][0] == t:
            c = counts.setdefault(rows[j][1], [0, 0.0])
            c[0] += 1
            c[1] += rows[j][2]
            j += 1
        # majority: most hits, first (smallest) particle id on ties (strict '>' while scanning)
        maj = None
        for p in sorted(counts):
            if maj is None or counts[p][0] > counts[maj][0]:
                maj = p
        n_track = j - i
        if 2 * counts[maj][0] > n_track and 2 * counts[maj][0] > nhits[maj]:
            total += counts[maj][1]
        i = j
    return total


def test_order_weights_hand_values():
    # n = 4: the 9-point profile sits at ranks 0, 0.375, ..., 3; interpolated at 0, 1, 2, 3
    w = np.array([10.0, 6.0 - (1 - 0.75) / 0.375, 3.0, 6.0])
    np.testing.assert_allclose(order_weights(4), w / w.sum())
    assert order_weights(3).sum() == 0.0
    w25 = order_weights(25)
    assert w25[20:].sum() == 0.0 and w25[:20].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(order_weights(9), np.array([10, 8, 6, 5, 3, 3, 3, 5, 6]) / 49.0)


def test_pt_weight_hand_values():
    np.testing.assert_allclose(
        pt_weight(np.array([0.01, 0.3, 0.5, 1.75, 3.0, 10.0])), [0.0, 0.2, 0.2, 0.6, 1.0, 1.0]
    )


def test_score_hand_worked_cases():
    # particles 1 and 2, four hits each, equal weights 1/8; two noise hits
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0])
    w = np.r_[np.full(8, 1 / 8), 0, 0]
    assert trackml_score(pid, w, pid.copy()) == pytest.approx(1.0)
    # one hit of each swapped: 3/4 pure and 3/4 of the particle -> 6/8
    swapped = np.array([1, 1, 1, 2, 2, 2, 2, 1, 5, 6])
    assert trackml_score(pid, w, swapped) == pytest.approx(6 / 8)
    # a 2 + 2 track is not good (50 % is not a majority); the other track keeps particle 2's 2 hits
    half = np.array([1, 1, 7, 7, 7, 7, 2, 2, 3, 3])
    # track 7 = {1, 1, 2, 2}: majority 1 by tie-break, 2/4 not > 50 % -> not good; tracks 1 and 2
    # hold 2 of 4 hits of their particle -> not good either
    assert trackml_score(pid, w, half) == 0.0
    # everything in one track: particle 1 has 4 of 10 hits -> nothing
    assert trackml_score(pid, w, np.zeros(10, int)) == 0.0
    # noise joining a track does not hurt while the particle keeps > 50 % of the track
    joined = np.array([1, 1, 1, 1, 2, 2, 2, 2, 1, 9])
    assert trackml_score(pid, w, joined) == pytest.approx(1.0)


def test_score_matches_library_loop_on_random_submissions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pid = rng.integers(0, 15, 120)
        w = rng.random(120) * (pid != 0)
        w /= w.sum()
        tid = np.where(rng.random(120) < 0.7, pid, rng.integers(0, 30, 120))
        assert trackml_score(pid, w, tid) == pytest.approx(_library_score(pid, w, tid))


def test_hit_weights_normalised_and_zero_for_short_particles():
    pid = np.array([1, 1, 1, 1, 1, 2, 2, 2, 0])
    z = np.array([50.0, 10.0, 30.0, 20.0, 40.0, 1.0, 2.0, 3.0, 0.0])
    w = hit_weights(pid, z, np.zeros(9), np.full(9, 2.0))
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w[5:] == 0)  # particle 2 has 3 hits, noise weighs 0
    # ranked by |z - z_vertex|: hit order 1 (10), 3 (20), 2 (30), 4 (40), 0 (50)
    np.testing.assert_allclose(w[[1, 3, 2, 4, 0]], order_weights(5))


def test_track_metrics_hand_case():
    # particles 1 (3 GeV, 4 hits), 2 (2 GeV, 4 hits), 3 (0.2 GeV, 4 hits)
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0])
    pt = {1: 3.0, 2: 2.0, 3: 0.2}
    # particle 1 found and split into a duplicate (3 + 1 hits), particle 2 broken (2 + 2), a
    # noise-only track of 3 hits (fake), particle 3 perfect
    tid = np.array([10, 10, 10, 11, 20, 20, 21, 21, 30, 30, 30, 30, 40, 40, 40])
    m = track_metrics(pid, tid, pt, pt_min=1.0, min_track_hits=1)
    assert m["efficiency"] == 0.5  # particle 1 yes (3/4, 3/3), particle 2 no
    assert m["perfect_efficiency"] == 0.0
    assert m["n_tracks"] == 6
    assert m["fake_rate"] == pytest.approx(1 / 6)  # the noise track
    # matched to targets: 10, 11 (particle 1), 20, 21 (particle 2) -> 4 tracks, 2 particles
    assert m["duplicate_rate"] == pytest.approx(2 / 4)
    m05 = track_metrics(pid, tid, pt, pt_min=0.1, min_track_hits=3)
    assert m05["efficiency"] == pytest.approx(2 / 3) and m05["perfect_efficiency"] == pytest.approx(
        1 / 3
    )


def _slow_order_weights(n):
    """Reference: the profile's 9 points at ranks k (m - 1) / 8, m = min(n, 20), joined by
    straight lines, read at each integer rank below m; ranks >= 20 get 0; sum 1."""
    prof = [10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0]
    if n < 4:
        return np.zeros(n)
    m = min(n, 20)
    step = (m - 1) / 8.0
    raw = []
    for r in range(n):
        if r >= 20:
            raw.append(0.0)
            continue
        k = min(int(r // step), 7)
        frac = (r - k * step) / step
        raw.append(prof[k] + frac * (prof[k + 1] - prof[k]))
    raw = np.array(raw)
    return raw / raw.sum()


@pytest.mark.parametrize("n", [4, 5, 9, 12, 19, 20, 21, 25, 40])
def test_order_weights_against_slow_reference(n):
    np.testing.assert_allclose(order_weights(n), _slow_order_weights(n), rtol=1e-12)


def test_order_weights_rank_boundaries_by_hand():
    # n = 20: profile points at ranks 0, 2.375, ..., 19 -> rank 1 is 10 - 2 / 2.375, rank 19 is 6
    w20 = order_weights(20)
    assert w20[1] / w20[0] == pytest.approx((10.0 - 2.0 / 2.375) / 10.0)
    assert w20[19] / w20[0] == pytest.approx(0.6)  # the 20th hit (rank 19) carries the last point
    assert w20[19] > 0
    # n = 21 and more: stretched over 20 hits as for n = 20, hit ranked 20 (the 21st) weighs 0
    for n in (21, 22, 30):
        w = order_weights(n)
        np.testing.assert_allclose(w[:20], w20)
        assert np.all(w[20:] == 0.0)
    # n = 3 weighs nothing, n = 4 everything
    assert order_weights(3).sum() == 0.0 and order_weights(4).sum() == pytest.approx(1.0)


def test_pt_weight_boundaries_by_hand():
    pt = [
        0.0,
        0.0499999,
        0.05,
        0.0500001,
        0.3,
        0.48,
        0.5,
        0.5000001,
        0.55,
        1.0,
        1.75,
        2.5,
        2.95,
        3.0,
    ]
    want = [0.0, 0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.216, 0.36, 0.6, 0.84, 0.984, 1.0]
    pt += [3.0000001, 3.05, 10.0]
    want += [1.0, 1.0, 1.0]
    np.testing.assert_allclose(pt_weight(np.array(pt)), want, atol=1e-6)


@pytest.mark.parametrize("n_noise", [1, 3, 4, 5, 20])
def test_noise_weighs_zero_however_many_noise_hits(n_noise):
    # one particle with 4 hits; the noise hits are given a pT too: they must still weigh 0
    pid = np.r_[np.full(4, 7), np.zeros(n_noise, int)]
    z = np.r_[10.0, 20.0, 30.0, 40.0, np.arange(n_noise, dtype=float)]
    w = hit_weights(pid, z, np.zeros(pid.size), np.full(pid.size, 2.0))
    assert np.all(w[4:] == 0.0)
    np.testing.assert_allclose(w[:4], order_weights(4))


def test_hit_weights_short_particles_and_pt_by_hand():
    # particle 1: 3 hits (weight 0); 2: 4 hits at 0.3 GeV (pT weight 0.2); 3: 4 hits at 3 GeV (1.0)
    pid = np.array([1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    z = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0])
    pt = np.array([5.0] * 3 + [0.3] * 4 + [3.0] * 4)
    w = hit_weights(pid, z, np.zeros(11), pt)
    assert np.all(w[:3] == 0.0)
    assert w[3:7].sum() == pytest.approx(0.2 / 1.2) and w[7:].sum() == pytest.approx(1.0 / 1.2)
    # particle 2's hits are ranked by |z - z_vertex|: hit 6 (z = 1) first
    np.testing.assert_allclose(w[[6, 5, 4, 3]], order_weights(4) * 0.2 / 1.2)
    # ranking uses the particle's vertex: with vertex z = 5 particle 3's order reverses
    w5 = hit_weights(pid, z, np.full(11, 5.0), pt)
    np.testing.assert_allclose(w5[[10, 9, 8, 7]], order_weights(4) / 1.2)


def test_score_is_normalised_by_the_event_weight():
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0])
    w = np.r_[np.full(4, 0.1), np.full(4, 0.3), 0.0]  # sums to 1.6
    tid = np.array([5, 5, 5, 5, 6, 6, 1, 1, 1])  # particle 1 found, particle 2 split 2 + 2
    assert trackml_score(pid, w, tid) == pytest.approx(0.4 / 1.6)
    assert trackml_score(pid, 7.0 * w, tid) == pytest.approx(0.4 / 1.6)  # scale-free
    # a subset of an event (particle 1 alone) scores on its own 0..1 scale
    assert trackml_score(pid[:4], w[:4], tid[:4]) == pytest.approx(1.0)
    assert trackml_score(pid, np.zeros(9), tid) == 0.0  # nothing to find


@pytest.mark.parametrize("bad", [-0.1, np.nan, np.inf])
def test_score_refuses_negative_or_non_finite_weights(bad):
    pid = np.array([1, 1, 1, 1])
    w = np.array([0.25, 0.25, 0.25, bad])
    with pytest.raises(DataFileError, match="negative or not finite"):
        trackml_score(pid, w, pid)


def test_track_metrics_at_the_default_cuts():
    """Called as the evaluations call it (pT > 1 GeV, >= 3 hits per particle and per track):
    a particle at exactly 1 GeV or with 2 hits is no target, one at 1.001 GeV with 3 hits is;
    a 2-hit track is no candidate, a 3-hit one is."""
    # particle 1: 1.001 GeV, 3 hits (target, found); 2: exactly 1.0 GeV (no target, found);
    # 3: 5 GeV but 2 hits (no target); noise: a 2-hit track (no candidate) and a 3-hit one (fake)
    pid = np.array([1, 1, 1, 2, 2, 2, 3, 3, 0, 0, 0, 0, 0])
    tid = np.array([10, 10, 10, 20, 20, 20, 30, 30, 40, 40, 50, 50, 50])
    pt = {1: 1.001, 2: 1.0, 3: 5.0}
    m = track_metrics(pid, tid, pt)
    assert m["n_particles"] == 1 and m["efficiency"] == 1.0 and m["perfect_efficiency"] == 1.0
    assert m["n_tracks"] == 3  # tracks 10, 20, 50 (30 and 40 hold 2 hits)
    assert m["fake_rate"] == pytest.approx(1 / 3)  # track 50
    assert m["duplicate_rate"] == 0.0  # track 10 is the only one matched to a target
