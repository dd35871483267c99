"""Track building: components, the best-edge rule splitting a merge, thresholds, bad modes."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.build import BuildConfig, best_per_node, build_tracks


def _same_partition(a, b):
    return (
        len(set(zip(a.tolist(), b.tolist(), strict=True)))
        == len(set(a.tolist()))
        == len(set(b.tolist()))
    )


def test_components_and_threshold():
    edges = np.array([[0, 1, 3], [1, 2, 4]])
    tid = build_tracks(6, edges, np.array([0.9, 0.8, 0.2]), BuildConfig(0.5, "cc"))
    assert _same_partition(tid, np.array([0, 0, 0, 3, 4, 5]))


def test_best_edge_rule_splits_two_tracks_joined_by_a_fake_edge():
    # track A: 0 -> 1 -> 2, track B: 3 -> 4 -> 5; a fake edge 1 -> 4 scores above threshold
    edges = np.array([[0, 1, 3, 4, 1], [1, 2, 4, 5, 4]])
    score = np.array([0.9, 0.95, 0.9, 0.9, 0.7])
    cc = build_tracks(6, edges, score, BuildConfig(0.5, "cc"))
    assert len(set(cc.tolist())) == 1
    for mode in ("best", "either"):
        tid = build_tracks(6, edges, score, BuildConfig(0.5, mode))
        assert _same_partition(tid, np.array([0, 0, 0, 1, 1, 1])), mode


def test_best_per_node_ties_take_the_first():
    keep = best_per_node(np.array([0, 0, 1]), np.array([0.5, 0.5, 0.1]))
    assert keep.tolist() == [True, False, True]


def test_bad_settings():
    with pytest.raises(ConfigError):
        BuildConfig(0.5, "walk")
    with pytest.raises(ConfigError):
        BuildConfig(1.5, "cc")


def test_greedy_recovers_the_next_best_link():
    # hit 1's best successor is 2, but 2's best predecessor is 0 (0 -> 2 scores higher);
    # "best" drops 1 -> 2 and leaves 1 -> 3 unused; "greedy" takes 0 -> 2, then 1 -> 3
    edges = np.array([[0, 1, 1], [2, 2, 3]])
    score = np.array([0.95, 0.9, 0.8])
    best = build_tracks(4, edges, score, BuildConfig(0.5, "best"))
    assert _same_partition(best, np.array([0, 1, 0, 3]))
    greedy = build_tracks(4, edges, score, BuildConfig(0.5, "greedy"))
    assert _same_partition(greedy, np.array([0, 1, 0, 1]))
