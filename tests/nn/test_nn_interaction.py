"""Interaction network: shapes, residual block by hand, both message directions, permutation."""

from __future__ import annotations

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


def test_in_place_gather_sums_are_bit_identical_to_the_out_of_place_ones():
    """The in-place adds of ``edge_mlp`` give the very floats of ``(e W + b) + a[src] + b[dst]``
    (the form before), with and without a bias, and the same gradients."""
    from torch import nn

    from particlegraph.nn.interaction import edge_mlp

    torch.manual_seed(4)
    for bias in (True, False):
        mlp = nn.Sequential(nn.Linear(2 * 8 + 5, 16, bias=bias), nn.ReLU(), nn.Linear(16, 3))
        h = torch.randn(50, 8, requires_grad=True)
        e = torch.randn(400, 5, requires_grad=True)
        ei = torch.randint(0, 50, (2, 400))
        w = mlp[0].weight
        first = torch.addmm(mlp[0].bias, e, w[:, 16:].T) if bias else e @ w[:, 16:].T
        before = first + (h @ w[:, :8].T)[ei[0]] + (h @ w[:, 8:16].T)[ei[1]]
        ref = mlp[2](mlp[1](before))
        out = edge_mlp(mlp, h, ei, e)
        assert torch.equal(out, ref)
        g_ref = torch.autograd.grad(ref.sum(), (h, e))
        g_out = torch.autograd.grad(out.sum(), (h, e))
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_out, g_ref, strict=True))


def test_forward_chunked_equals_forward_for_any_chunk():
    torch.manual_seed(3)
    net = InteractionNetwork(3, 2, hidden=8, iterations=3).eval()
    x, ea = torch.randn(7, 3), torch.randn(11, 2)
    ei = torch.randint(0, 7, (2, 11))
    with torch.no_grad():
        ref = net(x, ei, ea)
    for chunk in (1, 4, 11, 100):
        assert torch.allclose(net.forward_chunked(x, ei, ea, chunk), ref, atol=1e-6), chunk
    assert net.forward_chunked(x, ei[:, :0], ea[:0]).shape == (0,)
