"""Graph building: top-40 selection, PDG ids and masses, features, edges, preprocessing."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from particlegraph.tasks.anomaly.graphs import (
    PDG_CODES,
    Preprocessing,
    build_graphs,
    masses,
    pdg_ids,
    preprocess,
    select_top,
)
from particlegraph.tasks.anomaly.samples import Candidates, read_candidates, take_events


def test_select_top_keeps_highest_pt_per_event() -> None:
    offsets = np.array([0, 5, 7])
    pt = np.array([1.0, 9.0, 3.0, 9.0, 5.0, 2.0, 4.0])
    idx, new = select_top(offsets, pt, k=3)
    # event 0: 9 (idx 1), 9 (idx 3, stable after 1), 5 (idx 4); event 1 keeps both (4 then 2)
    assert idx.tolist() == [1, 3, 4, 6, 5]
    assert new.tolist() == [0, 3, 5]
    low, _ = select_top(offsets, pt, k=2, lowest=True)  # the exercise's bug, for reproductions
    assert low.tolist() == [0, 2, 5, 6]


def test_select_top_on_presorted_events_equals_the_sort() -> None:
    """Stored samples are already in falling pT: the no-sort path gives what the sort gives."""
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 60, 30)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    pt = np.round(rng.exponential(5.0, offsets[-1]), 1)  # rounded: many ties
    presorted = np.concatenate([np.sort(pt[a:b])[::-1] for a, b in itertools.pairwise(offsets)])
    rank = np.arange(pt.size) - np.repeat(offsets[:-1], counts)
    for k in (1, 3, 40, 100):
        fast, off_fast = select_top(offsets, presorted, k)  # no sort needed
        slow, off_slow = select_top(offsets, pt, k)  # unsorted: the sorting path
        assert np.array_equal(presorted[fast], pt[slow]) and np.array_equal(off_fast, off_slow)
        assert np.array_equal(fast, np.flatnonzero(rank < k))


def test_pdg_ids_and_masses_from_class_and_charge() -> None:
    cls = np.array([1, 1, 2, 3, 4, 4, 5, 5])
    q = np.array([1, -1, 0, 0, -1, 1, -1, 1])
    pdg = pdg_ids(cls, q)
    assert pdg.tolist() == [211, -211, 130, 22, 11, -11, 13, -13]
    assert masses(pdg)[[0, 2, 3, 6]] == pytest.approx([0.13957, 0.497611, 0.0, 0.105658])


def test_build_graphs_top40_and_wrapped_neighbours(sample_dir) -> None:
    c = read_candidates(sample_dir(n_events=6))
    graphs = build_graphs(c, k=3)
    counts = np.diff(c.offsets)
    for e, g in enumerate(graphs):
        assert g.num_nodes == min(40, counts[e])
        pts = c.pt[c.offsets[e] : c.offsets[e + 1]]
        np.testing.assert_allclose(g.x[:, 0].numpy(), np.sort(pts)[::-1][:40])
        assert g.edge_index.shape[1] == g.num_nodes * min(3, g.num_nodes - 1)
        assert int(g.edge_index.min()) >= 0 and int(g.edge_index.max()) < g.num_nodes
    # one hand-made event: particles at phi = +3.1 and -3.1 are each other's nearest neighbour
    hand = Candidates(
        pt=np.array([5.0, 4.0, 3.0], np.float32), eta=np.zeros(3, np.float32),
        phi=np.array([3.1, -3.1, 0.1], np.float32), cls=np.array([1, 3, 2]),
        charge=np.array([1, 0, 0]), energy=np.ones(3, np.float32), offsets=np.array([0, 3]),
        n_cand=np.array([3]), ht=np.zeros(1, np.float32), lead_jet_pt=np.zeros(1, np.float32),
        lead_jet_mass=np.zeros(1, np.float32), n_jets=np.zeros(1, np.int64),
    )  # fmt: skip
    g = build_graphs(hand, k=1)[0]
    assert sorted(map(tuple, g.edge_index.T.tolist())) == [(0, 1), (0, 2), (1, 0)]
    assert g.x[:, 4].tolist() == [211.0, 22.0, 130.0]


def test_take_events_slices_consistently(sample_dir) -> None:
    c = read_candidates(sample_dir(n_events=10))
    sub = take_events(c, 3, 6)
    assert sub.num_events == 3
    np.testing.assert_array_equal(sub.pt, c.pt[c.offsets[3] : c.offsets[6]])
    np.testing.assert_array_equal(sub.ht, c.ht[3:6])


def test_preprocess_is_standardised_with_one_hot() -> None:
    x = torch.tensor([[10.0, 1.0, math.pi / 2, 0.14, 211.0], [1.0, -1.0, 0.0, 0.0, 22.0],
                      [2.0, 0.0, 0.0, 0.0, 999.0]])  # fmt: skip
    p = Preprocessing.fit(x)
    h = preprocess(x, p)
    assert h.shape == (3, 12)
    assert float(h[:, 0].mean()) == pytest.approx(0.0, abs=1e-6)
    assert h[0, 2:4].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert h[0, 4 + PDG_CODES.index(211)] == 1 and h[1, 4 + PDG_CODES.index(22)] == 1
    assert float(h[2, 4:].sum()) == 0.0  # unknown PDG id: no class


def test_event_frame_by_hand() -> None:
    from particlegraph.tasks.anomaly.graphs import event_frame

    # one event: leading (pT 30, eta 1, phi 3.0), then (10, -1, -3.0): phi difference wraps
    x = np.array([[30.0, 1.0, 3.0, 0.0, 22.0], [10.0, -1.0, -3.0, 0.0, 22.0]], dtype=np.float32)
    out = event_frame(x, np.array([0, 2]))
    np.testing.assert_allclose(out[:, 0], [0.75, 0.25])
    np.testing.assert_allclose(out[:, 1], [0.0, -2.0])
    np.testing.assert_allclose(out[:, 2], [0.0, 2 * np.pi - 6.0], atol=1e-6)
    np.testing.assert_allclose(out[:, 3:], x[:, 3:])
