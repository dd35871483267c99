"""Walkthrough building: longest paths against brute force, claiming order, rounds, min_hits."""

from __future__ import annotations

import numpy as np

from particlegraph.tasks.tracking.walk import claim_paths, path_values, walk_tracks


def _brute_values(num_hits, edges, gain):
    """Largest summed gain of any path from each hit, by enumerating the paths (a DAG)."""
    out = {}

    def best(v):
        if v not in out:
            nxt = [gain[k] + best(int(edges[1, k])) for k in np.flatnonzero(edges[0] == v)]
            out[v] = max([0.0, *nxt])
        return out[v]

    return np.array([best(v) for v in range(num_hits)])


def test_path_values_match_brute_force_on_random_dags():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 12
        pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)]).T
        pick = rng.random(pairs.shape[1]) < 0.3
        edges, gain = pairs[:, pick], rng.random(int(pick.sum()))
        value, succ = path_values(n, edges, gain)
        np.testing.assert_allclose(value, _brute_values(n, edges, gain))
        # the successor realises the value: value[v] = gain(v -> succ) + value[succ]
        for v in np.flatnonzero(succ >= 0):
            k = np.flatnonzero((edges[0] == v) & (edges[1] == succ[v]))[0]
            assert abs(value[v] - gain[k] - value[succ[v]]) < 1e-12


def test_walk_prefers_the_own_track_over_a_fake_jump():
    # track A: 0 -> 1 -> 2 -> 3, track B: 4 -> 5 -> 6 -> 7, skip edges 0 -> 2 and 4 -> 6, and a
    # fake edge 1 -> 6 (0.6): from hit 1 the own path 1 -> 2 -> 3 (1.8) beats 1 -> 6 -> 7 (1.55)
    edges = np.array([[0, 1, 2, 4, 5, 6, 0, 4, 1], [1, 2, 3, 5, 6, 7, 2, 6, 6]])
    score = np.array([0.9, 0.9, 0.9, 0.95, 0.95, 0.95, 0.8, 0.8, 0.6])
    value, succ = path_values(8, edges, score)
    np.testing.assert_allclose(value[[0, 1, 4]], [2.7, 1.8, 2.85])
    assert succ.tolist() == [1, 2, 3, -1, 5, 6, 7, -1]
    track = walk_tracks(8, edges, score, 0.5)
    assert track.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # B (2.85) is claimed first
    # above 0.85 only the chains are walked; hit 0 keeps 0 -> 1 and the track stays whole
    assert walk_tracks(8, edges, score, 0.85).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


def _blocked():
    """A: 0 -> 1 -> 2 -> 3 -> 4 (0.95 each, value 3.8); B: 5 -> 6 -> 7, but 6's best
    continuation is the fake edge 6 -> 2 (0.9) onto A's longer remainder (value 3.7 from 5)."""
    edges = np.array([[0, 1, 2, 3, 5, 6, 6], [1, 2, 3, 4, 6, 7, 2]])
    score = np.array([0.95, 0.95, 0.95, 0.95, 0.9, 0.6, 0.9])
    return edges, score


def test_a_path_cut_by_a_claimed_hit_waits_for_the_next_round():
    edges, score = _blocked()
    track = walk_tracks(8, edges, score, 0.5)
    assert track.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    # with a single round the cut path 5 -> 6 is claimed at once: 2 hits < min_hits, left free
    single = walk_tracks(8, edges, score, 0.5, rounds=1)
    assert single.tolist() == [0, 0, 0, 0, 0, -1, -1, -1]
    # with min_hits 2 that single round makes B's first two hits a track and leaves hit 7 alone
    two = walk_tracks(8, edges, score, 0.5, min_hits=2, rounds=1)
    assert two.tolist() == [0, 0, 0, 0, 0, 1, 1, -1]


def test_claim_paths_skips_short_paths_and_counts_claims():
    value = np.array([1.8, 0.9, 0.0, 0.9, 0.0])
    succ = np.array([1, 2, -1, 4, -1])
    track = np.full(5, -1)
    assert claim_paths(value, succ, track, min_hits=3, final=True) == 1
    assert track.tolist() == [0, 0, 0, -1, -1]  # 3 -> 4 has two hits only


def test_empty_inputs():
    assert walk_tracks(0, np.zeros((2, 0), dtype=np.int64), np.zeros(0), 0.5).size == 0
    assert walk_tracks(3, np.zeros((2, 0), dtype=np.int64), np.zeros(0), 0.5).tolist() == [-1] * 3
