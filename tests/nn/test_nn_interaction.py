"""Interaction network: shapes, residual block by hand, both message directions, permutation."""

from __future__ import annotations

import pytest
import torch

from particlegraph.nn.interaction import InteractionNetwork


def test_shapes_and_edge_permutation_equivariance():
    torch.manual_seed(0)
    net = InteractionNetwork(3, 2, hidden=8, iterations=3)
    x, ea = torch.randn(6, 3), torch.randn(5, 2)
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])
    out = net(x, ei, ea)
    assert out.shape == (5,)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(net(x, ei[:, perm], ea[perm]), out[perm], atol=1e-6)


def test_interact_matches_hand_computation():
    torch.manual_seed(1)
    net = InteractionNetwork(2, 2, hidden=4, iterations=1)
    h, e = torch.randn(3, 4), torch.randn(2, 4)
    ei = torch.tensor([[0, 0], [1, 2]])
    h2, e2 = net.interact(h, ei, e)
    e_ref = e + net.edge_block(torch.cat([h[[0, 0]], h[[1, 2]], e], 1))
    inc = torch.stack([torch.zeros(4), e_ref[0], e_ref[1]])
    outg = torch.stack([e_ref[0] + e_ref[1], torch.zeros(4), torch.zeros(4)])
    h_ref = h + net.node_block(torch.cat([h, inc, outg], 1))
    assert torch.allclose(e2, e_ref, atol=1e-6) and torch.allclose(h2, h_ref, atol=1e-6)


def test_information_flows_against_edge_direction():
    """A node's features reach the edges upstream of it (the outgoing-message sum)."""
    torch.manual_seed(2)
    net = InteractionNetwork(2, 1, hidden=8, iterations=2)
    x = torch.randn(3, 2, requires_grad=True)
    ei = torch.tensor([[0, 1], [1, 2]])
    net(x, ei, torch.randn(2, 1))[0].backward()
    assert x.grad is not None and x.grad[2].abs().sum() > 0


def test_split_first_layer_equals_the_concatenation():
    from torch import nn

    from particlegraph.nn.interaction import edge_mlp

    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Linear(2 * 4 + 3, 5), nn.ReLU(), nn.Linear(5, 2))
    h, e = torch.randn(6, 4), torch.randn(7, 3)
    ei = torch.randint(0, 6, (2, 7))
    ref = mlp(torch.cat([h[ei[0]], h[ei[1]], e], 1))
    assert torch.allclose(edge_mlp(mlp, h, ei, e), ref, atol=1e-5)


def _hand_toy(decoder_weights: list[float]) -> InteractionNetwork:
    """hidden 1, one Linear per MLP, no biases; edge and node blocks zero (they add 0)."""
    net = InteractionNetwork(2, 3, hidden=1, iterations=1, mlp_layers=1).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.node_encoder[0].weight.copy_(torch.tensor([[0.5, 2.0]]))
        net.edge_encoder[0].weight.copy_(torch.tensor([[1.0, 2.0, -0.5]]))
        net.decoder[0].weight.copy_(torch.tensor([decoder_weights]))
    return net


def test_lrp_of_an_edge_path_toy_by_hand():
    """logit = 1.5 relu(w . a) with w = (1, 2, -0.5), a = (0.5, 1, 1): s = 2, logit L = 3.

    Epsilon (eps 0.1) layer by layer: decoder R = L * L / (L + eps); residual e + 0: share
    s / (s + eps); edge encoder: R_i = a_i w_i / (s + eps) of that. Nothing reaches the hits.
    """
    from particlegraph.explain.lrp import Epsilon, explain_edges

    net = _hand_toy([0.0, 0.0, 1.5])
    x = torch.tensor([[1.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
    ea = torch.tensor([[0.5, 1.0, 1.0], [3.0, -1.0, 0.2]], dtype=torch.float64)
    ei = torch.tensor([[0, 1], [1, 0]])
    rel = explain_edges(net, x, ei, ea, [0], Epsilon(eps=0.1))
    s, big_l, eps = 2.0, 3.0, 0.1
    r_e = s / (s + eps) * big_l * big_l / (big_l + eps)
    hand = torch.tensor([0.5, 2.0, -0.5], dtype=torch.float64) * r_e / (s + eps)
    assert float(rel.explained[0]) == pytest.approx(3.0)
    torch.testing.assert_close(rel.edge_dense()[0, 0], hand)
    assert float(rel.edge_dense()[0, 1].abs().max()) == 0.0
    assert float(rel.node_dense().abs().max()) == 0.0
    assert float(rel.absorbed[0]) == pytest.approx(3.0 - float(hand.sum()))


def test_lrp_of_a_node_path_toy_by_hand():
    """logit = 2 h_src with h = relu(0.5 x_0 + 2 x_1): the source hit (1, 1) gives h = 2.5, L = 5.

    The gather is a copy (no epsilon); residual h + 0: share h / (h + eps); node encoder
    R_i = x_i w_i / (h + eps) of that. The edge's own features and the target hit get nothing.
    """
    from particlegraph.explain.lrp import Epsilon, explain_edges

    net = _hand_toy([2.0, 0.0, 0.0])
    x = torch.tensor([[1.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
    ea = torch.tensor([[0.5, 1.0, 1.0], [3.0, -1.0, 0.2]], dtype=torch.float64)
    ei = torch.tensor([[0, 1], [1, 0]])
    rel = explain_edges(net, x, ei, ea, [0], Epsilon(eps=0.2))
    h, big_l, eps = 2.5, 5.0, 0.2
    r_h = h / (h + eps) * big_l * big_l / (big_l + eps)
    hand = torch.tensor([0.5, 2.0], dtype=torch.float64) * r_h / (h + eps)
    torch.testing.assert_close(rel.node_dense()[0, 0], hand)
    assert float(rel.node_dense()[0, 1].abs().max()) == 0.0
    assert float(rel.edge_dense().abs().max()) == 0.0
