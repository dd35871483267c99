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
        BuildConfig(0.5, "bogus")
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


def _two_tracks():
    """Tracks A (hits 0-3) and B (4-7) on layers 1-4, 100 mm apart, with skip edges 0 -> 2 and
    4 -> 6 (same-particle truth), joined by a fake edge 1 -> 6 scoring 0.6."""
    edges = np.array([[0, 1, 2, 4, 5, 6, 0, 4, 1], [1, 2, 3, 5, 6, 7, 2, 6, 6]])
    score = np.array([0.9, 0.9, 0.9, 0.95, 0.95, 0.95, 0.8, 0.8, 0.6])
    layer = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    xyz = np.zeros((8, 3))
    xyz[:, 0] = [30.0, 70.0, 110.0, 170.0] * 2
    xyz[4:, 1] = 100.0
    return edges, score, layer, xyz


def test_split_cuts_a_merge_at_a_higher_threshold():
    edges, score, layer, xyz = _two_tracks()
    cc = build_tracks(8, edges, score, BuildConfig(0.5, "cc"))
    assert len(set(cc.tolist())) == 1  # components merge the two tracks
    tid = build_tracks(8, edges, score, BuildConfig(0.5, "split"), layer, xyz)
    # level 1 cuts at 0.75: the fake edge goes, both tracks keep their skip edges
    assert _same_partition(tid, np.array([0, 0, 0, 0, 1, 1, 1, 1]))


def test_split_keeps_an_overlap_pair_and_needs_positions():
    # one track with two hits on layer 2 (an overlap, 3 mm apart): not ambiguous, kept whole
    edges = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    score = np.array([0.9, 0.6, 0.9, 0.9])
    layer = np.array([1, 2, 2, 3, 4])
    xyz = np.zeros((5, 3))
    xyz[:, 0] = [30.0, 70.0, 73.0, 110.0, 170.0]
    tid = build_tracks(5, edges, score, BuildConfig(0.5, "split"), layer, xyz)
    assert len(set(tid.tolist())) == 1
    # the same hits 40 mm apart on layer 2 are two particles: cut at 0.75 (edge 1 -> 2 goes)
    xyz[2, 1] = 40.0
    tid = build_tracks(5, edges, score, BuildConfig(0.5, "split"), layer, xyz)
    assert _same_partition(tid, np.array([0, 0, 1, 1, 1]))
    with pytest.raises(ConfigError):
        build_tracks(5, edges, score, BuildConfig(0.5, "split"))


def test_layersplit_keeps_the_best_edge_per_neighbouring_layer():
    from particlegraph.tasks.tracking.build import best_per_layer

    # hit 0 (layer 1) -> hits 1 and 2, both on layer 2: only the better (0.9) survives;
    # 0 -> 3 (layer 3, a skip edge) is the best into layer 3 and survives too
    edges = np.array([[0, 0, 0], [1, 2, 3]])
    score = np.array([0.9, 0.8, 0.7])
    layer = np.array([1, 2, 2, 3])
    assert best_per_layer(edges, score, layer).tolist() == [True, False, True]
    # on the merged pair of tracks the fake edge 1 -> 6 loses to 1 -> 2 and 5 -> 6 per layer
    edges, score, layer, xyz = _two_tracks()
    keep = best_per_layer(edges, score, layer)
    assert not keep[-1] and keep[:-1].all()
    tid = build_tracks(8, edges, score, BuildConfig(0.5, "layersplit"), layer, xyz)
    assert _same_partition(tid, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
