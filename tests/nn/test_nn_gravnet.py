from __future__ import annotations

import torch

from particlegraph.nn.gravnet import DISTANCE_SCALE, GravNetConv


def _reference(conv: GravNetConv, h: torch.Tensor) -> torch.Tensor:
    """Dense O(N^2) GravNet forward written from the paper's equations."""
    s, f = conv.lin_s(h), conv.lin_h(h)
    d2 = torch.cdist(s, s).pow(2)
    nn_idx = torch.topk(d2, conv.k, dim=1, largest=False).indices  # (N, k) self included
    w = torch.exp(-DISTANCE_SCALE * torch.gather(d2, 1, nn_idx))  # (N, k)
    msgs = w[..., None] * f[nn_idx]  # (N, k, P)
    agg = {"sum": msgs.sum(1), "mean": msgs.mean(1), "max": msgs.max(1).values}[conv.aggr]
    return conv.lin_out(torch.cat([h, agg], -1))


def test_gravnet_matches_dense_reference_for_each_aggregation() -> None:
    torch.manual_seed(0)
    h = torch.randn(40, 8)
    for aggr in ("sum", "mean", "max"):
        conv = GravNetConv(8, 6, space_dimensions=3, propagate_dimensions=5, k=4, aggr=aggr)
        torch.testing.assert_close(conv(h), _reference(conv, h), rtol=1e-5, atol=1e-5)


def test_gravnet_events_do_not_talk_to_each_other() -> None:
    torch.manual_seed(1)
    conv = GravNetConv(5, 5, k=4)
    a, b = torch.randn(10, 5), torch.randn(12, 5)
    batch = torch.cat([torch.zeros(10), torch.ones(12)]).long()
    together = conv(torch.cat([a, b]), batch)
    torch.testing.assert_close(together[:10], conv(a))
    torch.testing.assert_close(together[10:], conv(b))


def test_gravnet_coordinates_get_gradients_through_edge_weights() -> None:
    conv = GravNetConv(4, 4, k=3)
    conv(torch.randn(9, 4)).sum().backward()
    assert conv.lin_s.weight.grad is not None
    assert float(conv.lin_s.weight.grad.abs().sum()) > 0
