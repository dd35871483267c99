"""GravNetConv's aggregation without autograd, in chunks of whole targets: PyG's propagate,
bit for bit (it keeps the (E, P) messages of a large event out of memory)."""

from __future__ import annotations

import pytest
import torch

import particlegraph.nn.gravnet as gravnet_module
from particlegraph.nn.gravnet import GravNetConv, _target_runs


@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_chunked_aggregation_equals_propagate(monkeypatch: pytest.MonkeyPatch, aggr: str) -> None:
    torch.manual_seed(0)
    conv = GravNetConv(8, 8, space_dimensions=3, propagate_dimensions=6, k=5, aggr=aggr).eval()
    h = torch.randn(90, 8)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([40, 3, 47]))  # 3 < k
    with torch.no_grad():
        edge_index, w = conv.graph(h, batch)
        f = conv.lin_h(h)
        ref = conv.propagate(edge_index, x=f, edge_weight=w, size=(90, 90))
        for values in (6 * 7 + 1, 6 * 23, 1 << 21):  # chunks of ~7 and 23 edges, one chunk
            monkeypatch.setattr(gravnet_module, "MESSAGE_CHUNK_VALUES", values)
            assert torch.equal(conv.aggregate_messages(edge_index, f, w), ref)
        monkeypatch.setattr(gravnet_module, "MESSAGE_CHUNK_VALUES", 6 * 7 + 1)
        no_grad = conv(h, batch)
    # with autograd the layer takes propagate itself; same values
    assert torch.equal(conv(h, batch), no_grad)


def test_target_runs_only_for_grouped_targets() -> None:
    assert _target_runs(torch.tensor([0, 0, 2, 2, 2, 1]), 3).tolist() == [0, 2, 5]
    assert _target_runs(torch.tensor([0, 1, 0]), 2) is None  # target 0 in two places
    assert _target_runs(torch.tensor([], dtype=torch.long), 0) is None


def test_ungrouped_edges_take_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Edges not grouped by target would change the order of a target's sum: propagate."""
    torch.manual_seed(1)
    conv = GravNetConv(4, 4, space_dimensions=2, propagate_dimensions=3, k=3).eval()
    f = torch.randn(30, 3)
    src = torch.randint(0, 30, (90,))
    dst = torch.arange(30).repeat(3)  # every target in three places
    w = torch.rand(90)
    calls: list[int] = []
    real = conv.propagate

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(conv, "propagate", spy)
    monkeypatch.setattr(gravnet_module, "MESSAGE_CHUNK_VALUES", 3 * 10)
    with torch.no_grad():
        got = conv.aggregate_messages(torch.stack([src, dst]), f, w)
    assert calls == [1]
    expected = torch.zeros(30, 3).index_add_(0, dst, w[:, None] * f[src])
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7)
