"""Graph Taylor coefficients on the GravNet MLPF model (moved out of the engine's gradient tests,
which use small models of their own)."""

from __future__ import annotations

import torch

from particlegraph.explain.gradients import (
    capture_graphs,
    graph_jacobian_dense,
    graph_taylor,
    graph_taylor_dense,
    receptive_field_graph,
)


def test_graph_taylor_on_a_gravnet_mlpf_keeps_nodes_apart():
    from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

    torch.manual_seed(0)
    cfg = MLPFConfig(
        hidden=16,
        num_blocks=2,
        k=3,
        propagate_dim=8,
        num_encoder_layers=1,
        num_head_layers=1,
        norm="none",
    )
    model = MLPF(cfg).double().eval()
    n = 30
    x = torch.randn(n, 12, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    x[:, 0] = torch.where(torch.arange(n) % 2 == 0, 1.0, 2.0)  # towers and tracks
    x[:, 1] = x[:, 1].abs() + 0.5  # positive pt / Et
    x[:, 5] = x[:, 1] * 2  # energy above pt

    def f(z):
        return model(z).logits[:, 3]  # photon logit per element

    graphs = capture_graphs(model, x)
    assert len(graphs) == 2
    rf = receptive_field_graph(graphs, n)
    jac = graph_jacobian_dense(f, x)
    mask = torch.eye(n, dtype=torch.bool)
    mask[rf[1], rf[0]] = True
    assert torch.all(jac.abs().sum(-1)[~mask] == 0)  # no element outside the receptive field
    assert rf.shape[1] < n * (n - 1)  # and the receptive field is not the whole event
    gt = graph_taylor(f, x, rf)
    ref = graph_taylor_dense(f, x, rf)
    torch.testing.assert_close(gt.self_first, ref.self_first, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gt.edge_first, ref.edge_first, rtol=1e-9, atol=1e-12)
