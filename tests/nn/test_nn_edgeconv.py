"""EdgeWeightedConv against a slow, loop-based reference in float64."""

from __future__ import annotations

import torch

from particlegraph.nn.edgeconv import EdgeWeightedConv


def _reference(conv, x, edge_index):
    """Textbook loops: h = BN(x); for each i: a_i = sum_{j->i} sigmoid(mlp([h_i, h_j])) h_j."""
    h = conv.norm(x)
    n = x.shape[0]
    out = []
    for i in range(n):
        a = torch.zeros(x.shape[1], dtype=x.dtype)
        for e in range(edge_index.shape[1]):
            j, t = int(edge_index[0, e]), int(edge_index[1, e])
            if t != i:
                continue
            w = torch.sigmoid(conv.edge_mlp(torch.cat([h[i], h[j]])))[0]
            a = a + w * h[j]
        out.append(torch.relu(conv.lin(torch.cat([h[i], a]))))
    return torch.stack(out)


def _setup(seed=0, n=9, c_in=5, c_out=4):
    torch.manual_seed(seed)
    conv = EdgeWeightedConv(c_in, c_out, edge_hidden=7).double()
    # train-mode statistics once so the eval-mode BatchNorm is not the identity
    conv.train()
    conv(torch.randn(64, c_in, dtype=torch.float64) * 3 + 1, torch.zeros(2, 0, dtype=torch.long))
    conv.eval()
    x = torch.randn(n, c_in, dtype=torch.float64)
    src = torch.randint(0, n, (30,))
    dst = torch.randint(0, n, (30,))
    return conv, x, torch.stack([src, dst])


def test_matches_slow_reference():
    conv, x, ei = _setup()
    with torch.no_grad():
        torch.testing.assert_close(conv(x, ei), _reference(conv, x, ei))
    assert conv(x, ei).shape == (9, 4)


def test_edge_weights_and_isolated_nodes():
    conv, x, ei = _setup(seed=1)
    w = conv.edge_weight(conv.norm(x), ei)
    assert w.shape == (ei.shape[1],) and bool(((w > 0) & (w < 1)).all())
    # a node without incoming edges only sees itself: ReLU(W [h_i, 0] + b)
    lonely = torch.tensor([[0], [1]])
    with torch.no_grad():
        out = conv(x, lonely)
        h = conv.norm(x)
        expect = torch.relu(conv.lin(torch.cat([h[2:3], torch.zeros_like(h[2:3])], dim=-1)))
    torch.testing.assert_close(out[2:3], expect)


def test_gradients_reach_every_parameter():
    conv, x, ei = _setup(seed=2)
    conv.train()
    conv(x, ei).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in conv.parameters())
