"""Models: the seed architecture, LRP traces of the encoders, exact score decompositions, IG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import GCNConv

from particlegraph.explain.lrp import Tracer
from particlegraph.tasks.anomaly.explain import decompose, explain_graph, input_gradients
from particlegraph.tasks.anomaly.graphs import Preprocessing, build_graphs
from particlegraph.tasks.anomaly.models import ModelConfig, SeedEncoder, build_model, trace_gcn
from particlegraph.tasks.anomaly.samples import read_candidates
from particlegraph.tasks.anomaly.scores import score_graphs


def test_seed_encoder_is_the_exercise_architecture() -> None:
    enc = SeedEncoder()
    assert [type(m).__name__ for m in enc.children()] == [
        "BatchNorm1d",
        "GCNConv",
        "BatchNorm1d",
        "GCNConv",
    ]
    assert (enc.conv1.in_channels, enc.conv1.out_channels) == (5, 32)
    assert (enc.conv2.in_channels, enc.conv2.out_channels) == (32, 8)


def test_traced_gcn_equals_pyg() -> None:
    g = torch.Generator().manual_seed(0)
    conv = GCNConv(3, 4).double()
    torch.nn.init.normal_(conv.bias, generator=g)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    ei = torch.tensor([[1, 2, 0, 4, 5, 3], [0, 0, 1, 3, 3, 4]])
    tr = Tracer(x)
    out = trace_gcn(tr, "c", 0, conv, ei)
    torch.testing.assert_close(tr.value(out), conv(x, ei))


@pytest.mark.parametrize("name", ["gae-seed", "gae", "node-ae"])
def test_decomposition_gradients_and_lrp(sample_dir, name: str) -> None:
    cfg = ModelConfig(name=name, hidden=8, latent=3)
    graphs = build_graphs(read_candidates(sample_dir(n_events=4)), symmetric=cfg.use_symmetric)
    torch.manual_seed(1)
    model = build_model(cfg, Preprocessing.fit(torch.cat([g.x for g in graphs]))).eval()
    g = graphs[0]
    score = score_graphs(model, [g]).columns["recon"][0]
    node, edge = decompose(model, g)
    assert node.sum() == pytest.approx(score, rel=1e-5)  # exact split
    assert (edge is None) == (name == "node-ae")
    gxi, ig, completeness = input_gradients(model, g, steps=64)
    assert gxi.shape == ig.shape == (g.num_nodes, 5 if name == "gae-seed" else 12)
    assert abs(completeness) < 2e-2 * max(abs(score), 1.0)  # IG sums to f(x) - f(0)
    ex = explain_graph(model, g, "t")
    latent = 8 if name == "gae-seed" else 3  # the seed's latent is fixed at 8
    assert ex.lrp.shape == (latent, g.num_nodes, gxi.shape[1])
    assert ex.lrp_conservation_error < 1e-6  # LRP-eps with eps = 1e-6 in float64
    assert np.isfinite(ex.lrp).all()
