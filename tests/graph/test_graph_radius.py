"""graph.radius (k-d tree neighbours within a radius) against a dense reference.

(The tracking task owns this engine module for now; the test lives with the task's tests.)
"""

from __future__ import annotations

import torch

from particlegraph.graph.radius import radius_graph, radius_graph_bruteforce


def _edges(ei):
    return set(zip(ei[0].tolist(), ei[1].tolist(), strict=True))


def test_matches_bruteforce():
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    for r, k in ((0.5, 8), (1.0, 20), (float("inf"), 5)):
        got = radius_graph(x, r, k)
        assert _edges(got) == _edges(radius_graph_bruteforce(x, r, k))
        assert bool((got[0] != got[1]).all())


def test_batches_do_not_mix_and_loop():
    x = torch.zeros(6, 2)  # all points coincide
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    ei = radius_graph(x, 0.1, 10, batch, loop=True)
    assert all((a < 3) == (b < 3) for a, b in _edges(ei))
    assert len(_edges(ei)) == 18  # 3 x 3 per event, self-loops included
