"""LRP through the tracking model: trace fidelity, conservation, and LRP-0 == gradient x input
(edge weights held fixed) on a bias-free network, computed by a slow autograd reference."""

from __future__ import annotations

import torch

from particlegraph.tasks.tracking.explain import explain_hit, pair_gradient_x_input
from particlegraph.tasks.tracking.model import ModelConfig, TrackingModel, trace_tracking


def _model(seed=0, bias_free=False):
    torch.manual_seed(seed)
    m = TrackingModel(
        ModelConfig(
            embed_hidden=8,
            embed_layers=2,
            embed_dim=3,
            gnn_hidden=5,
            gnn_layers=2,
            edge_hidden=4,
            out_dim=3,
        )
    ).double()
    if bias_free:
        for name, p in m.named_parameters():
            if name.endswith("bias") and "edge_mlp" not in name:
                torch.nn.init.zeros_(
                    p
                )  # BatchNorm shifts and linear biases; the kernel keeps its own
    else:
        m.set_standardization(
            torch.rand(6, dtype=torch.float64), 1 + torch.rand(6, dtype=torch.float64)
        )
        for conv in m.convs:
            conv.norm.running_mean.uniform_(-0.5, 0.5)
            conv.norm.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _graph(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    src = torch.randint(0, n, (40,), generator=g)
    dst = torch.randint(0, n, (40,), generator=g)
    return x, torch.stack([src, dst])


def test_trace_reproduces_the_model():
    m = _model()
    x, ei = _graph()
    with torch.no_grad():
        prog = trace_tracking(m, x, ei)
        torch.testing.assert_close(prog.values[prog.outputs["embedding"]], m(x, ei))
        torch.testing.assert_close(prog.values[prog.outputs["stage1"]], m.embed(x))


def test_conservation_with_biases():
    m = _model()
    x, ei = _graph()
    ex = explain_hit(m, x, ei, target=3, eps=1e-9)
    assert ex.conservation_error < 1e-6
    assert 3 in ex.sources.tolist()


def _lrp0_reference(m, x, ei, target, c):
    """gradient x input of output (target, c) with the sigmoid edge weights detached."""
    xg = x.clone().requires_grad_(True)
    h = torch.cat([m.standardize(xg), m.embedder(m.standardize(xg))], dim=-1)
    for conv in m.convs:
        hn = conv.norm(h)
        w = conv.edge_weight(hn, ei).detach()
        agg = torch.zeros_like(hn).index_add_(0, ei[1], w[:, None] * hn[ei[0]])
        h = torch.relu(conv.lin(torch.cat([hn, agg], dim=-1)))
    out = m.out(h)[target, c]
    (g,) = torch.autograd.grad(out, xg)
    return g * x


def test_lrp0_equals_gradient_times_input_on_a_bias_free_model():
    m = _model(bias_free=True)
    x, ei = _graph(seed=1)
    from particlegraph.explain.lrp.engine import propagate
    from particlegraph.explain.lrp.rules import Epsilon, as_composite

    with torch.no_grad():
        prog = trace_tracking(m, x, ei)
    for c in range(3):
        rel = propagate(
            prog, prog.outputs["embedding"], c, torch.tensor([5]), as_composite(Epsilon(eps=1e-12))
        )
        dense = torch.zeros_like(x)
        dense[rel.source] = rel.values
        torch.testing.assert_close(dense, _lrp0_reference(m, x, ei, 5, c), rtol=1e-6, atol=1e-9)


def test_pair_gradient_is_zero_outside_the_receptive_fields():
    m = _model()
    x = torch.randn(6, 6, dtype=torch.float64)
    ei = torch.tensor([[1, 0, 4], [0, 1, 3]])  # hits 0, 1 linked; 2 alone; 3 <- 4
    d, gxi = pair_gradient_x_input(m, x, ei, 0, 1)
    assert d > 0
    assert torch.all(gxi[2:] == 0) and bool(gxi[:2].abs().sum() > 0)
