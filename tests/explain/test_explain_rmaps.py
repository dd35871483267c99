"""Relevance-map aggregation against hand-made sparse relevance values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from particlegraph.errors import ConfigError
from particlegraph.explain.rmaps import (
    ClassMapAccumulator,
    FeatureHistogram,
    edge_relevance,
    neighbour_maps,
    relevance_map,
    source_feature_relevance,
    target_feature_relevance,
)


@dataclass
class HandRelevance:
    """Stand-in for the engine's SparseRelevance (same attribute names)."""

    target: torch.Tensor
    source: torch.Tensor
    values: torch.Tensor
    num_elements: int


@pytest.fixture
def rel() -> HandRelevance:
    # (target, source, values over F = 3 features)
    pairs = [
        (0, 0, [1.0, 0.0, 0.0]),
        (0, 1, [0.0, 2.0, 0.0]),
        (0, 2, [0.0, 0.0, -3.0]),
        (0, 3, [0.5, 0.0, 0.0]),
        (1, 1, [0.0, 1.0, 1.0]),
        (1, 0, [-1.0, 0.0, 0.0]),
        (2, 3, [0.0, 0.0, 4.0]),  # target 2 has no self relevance
    ]
    return HandRelevance(
        target=torch.tensor([p[0] for p in pairs]),
        source=torch.tensor([p[1] for p in pairs]),
        values=torch.tensor([p[2] for p in pairs]),
        num_elements=4,
    )


def test_neighbour_maps_rank_by_absolute_relevance(rel):
    targets, sources, maps = neighbour_maps(rel, num_neighbours=2)
    np.testing.assert_array_equal(targets, [0, 1, 2])
    np.testing.assert_array_equal(sources, [[0, 2, 1], [1, 0, -1], [-1, 3, -1]])
    np.testing.assert_allclose(maps[0], [[1, 0, 0], [0, 0, -3], [0, 2, 0]])
    np.testing.assert_allclose(maps[1], [[0, 1, 1], [-1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(maps[2], [[0, 0, 0], [0, 0, 4], [0, 0, 0]])


def test_single_relevance_map(rel):
    m = relevance_map(rel, 0, num_neighbours=3)
    np.testing.assert_array_equal(m.sources, [0, 2, 1, 3])
    assert m.total == pytest.approx(0.5)  # 1 + 2 - 3 + 0.5
    with pytest.raises(ConfigError, match="element 3"):
        relevance_map(rel, 3)


def test_totals_per_source_target_and_edge(rel):
    np.testing.assert_allclose(
        source_feature_relevance(rel), [[0, 0, 0], [0, 3, 1], [0, 0, -3], [0.5, 0, 4]]
    )
    np.testing.assert_allclose(
        target_feature_relevance(rel, np.array([1, 0])), [[-1, 1, 1], [1.5, 2, -3]]
    )
    t, s, r = edge_relevance(rel)
    np.testing.assert_array_equal(t, [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(s, [1, 2, 3, 0, 3])
    np.testing.assert_allclose(r, [2, -3, 0.5, -1, 4])


def test_class_accumulator_splits_correct_and_wrong(rel):
    true = np.array([2, 2, 1, 0])
    pred = np.array([2, 1, 1, 0])
    acc = ClassMapAccumulator(num_classes=6, num_features=3, num_neighbours=2)
    acc.add(rel, true, pred)
    acc.add(rel, true, pred)  # the same event twice: same means, doubled counts
    res = acc.result()
    assert res["mean"].shape == (6, 2, 3, 3)
    expected_count = np.zeros((6, 2), dtype=int)
    expected_count[2, 0] = expected_count[2, 1] = expected_count[1, 0] = 2
    np.testing.assert_array_equal(res["count"], expected_count)
    # Normalised by total |relevance|: 6.5 for target 0, 3 for target 1, 4 for target 2.
    np.testing.assert_allclose(
        res["mean"][2, 0], np.array([[1, 0, 0], [0, 0, -3], [0, 2, 0]]) / 6.5
    )
    np.testing.assert_allclose(res["mean"][2, 1], np.array([[0, 1, 1], [-1, 0, 0], [0, 0, 0]]) / 3)
    np.testing.assert_allclose(res["mean"][1, 0, 1], [0, 0, 1])
    np.testing.assert_allclose(res["mean"][0], 0.0)  # class 0 never seen


def test_class_accumulator_target_subset_and_bad_class(rel):
    acc = ClassMapAccumulator(num_classes=3, num_features=3, num_neighbours=1)
    acc.add(rel, np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]), targets=[1])
    assert acc.result()["count"][1, 0] == 1
    with pytest.raises(ConfigError, match="true classes"):
        acc.add(rel, np.array([7, 7, 7, 7]), np.zeros(4))


def test_feature_histogram_bins(rel):
    hist = FeatureHistogram(num_classes=6, num_features=3, bins=4)  # edges -1, -0.5, 0, 0.5, 1
    hist.add(rel, np.array([2, 2, 1, 0]))
    # target 0 (class 2): fractions 1.5/6.5, 2/6.5, -3/6.5 -> bins 2, 2, 1
    # target 1 (class 2): -1/3, 1/3, 1/3 -> bins 1, 2, 2
    np.testing.assert_array_equal(hist.counts[2], [[0, 1, 1, 0], [0, 0, 2, 0], [0, 1, 1, 0]])
    # target 2 (class 1): 0, 0, 1 -> bins 2, 2, 3 (1.0 clipped into the last bin)
    np.testing.assert_array_equal(hist.counts[1], [[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert hist.counts.sum() == 9


def test_bad_shapes_are_rejected():
    bad = HandRelevance(torch.tensor([0, 1]), torch.tensor([0]), torch.zeros(2, 3), 2)
    with pytest.raises(ConfigError, match="sparse relevance"):
        neighbour_maps(bad)
