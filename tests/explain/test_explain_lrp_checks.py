"""Shipped checks: LRP-0 == gradient x input, agreement with captum, conservation summaries."""

from __future__ import annotations

import pytest
import torch
from lrp_reference import (
    TinyGNN,
    random_graph,
    random_mlpf_input,
)
from lrp_toy import toy_gravnet
from torch import nn

from particlegraph.explain.lrp import Epsilon, explain_event
from particlegraph.explain.lrp.checks import (
    conservation_summary,
    gradient_x_input,
    layer_balance,
    lrp0_gradient_error,
)


@pytest.mark.parametrize("mode", ["sum", "max", "gcn"])
def test_lrp0_equals_gradient_x_input_on_bias_free_relu_gnn(mode: str) -> None:
    torch.manual_seed(11)
    graph = random_graph(25, 4, seed=11)
    model = TinyGNN(f=4, mode=mode, bias=False, edge_index=graph).double().eval()
    x = torch.randn(25, 4, dtype=torch.float64)
    assert lrp0_gradient_error(model, x, "output:2") < 1e-9
    assert lrp0_gradient_error(model, x, "second:1") < 1e-9


def test_lrp0_differs_from_gradient_on_non_relu_network() -> None:
    """The check can fail: with tanh activations LRP-0 is not gradient x input.

    (With ReLU the two agree even with biases, since a_j / z_j is the ReLU derivative; biases
    only break conservation. Ancona et al., ICLR 2018.)
    """
    torch.manual_seed(12)
    graph = random_graph(20, 3, seed=12)
    model = TinyGNN(f=4, mode="sum", bias=True, edge_index=graph, act=nn.Tanh()).double().eval()
    x = torch.randn(20, 4, dtype=torch.float64)
    assert lrp0_gradient_error(model, x, "output:0") > 1e-3


def test_agrees_with_captum_lrp_on_plain_mlp() -> None:
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(13)
    mlp = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 3))
    mlp = mlp.double().eval()
    x = torch.randn(15, 6, dtype=torch.float64)
    ours = explain_event(mlp, x, output="output:1", composite=Epsilon(eps=1e-9))
    theirs = captum_attr.LRP(mlp).attribute(x.clone(), target=1)
    dense = ours.to_dense()
    idx = torch.arange(15)
    assert torch.allclose(dense[idx, idx], theirs, rtol=1e-8, atol=1e-12)
    # an MLP is per-element: each target only credits itself
    assert torch.equal(ours.target, ours.source)


def test_conservation_summary_and_layer_balance_on_a_gravnet() -> None:
    model = toy_gravnet(seed=14)
    x = random_mlpf_input(30, seed=14)
    rel = explain_event(model, x, output="energy", compose=False, record_layers=True)
    summary = conservation_summary(rel)
    assert summary["event_rel_err"] < 1e-10 and summary["max_target_rel_err"] < 1e-8
    assert summary["targets"] == 30 and summary["pairs"] == rel.num_pairs
    assert summary["relevance"] + summary["absorbed"] == pytest.approx(
        summary["explained"], rel=1e-9
    )
    balance = layer_balance(rel)
    assert "reg_head.0" in balance and "class_head.0" in balance  # regression credits the logits
    assert max(balance.values()) < 1e-10
    with pytest.raises(ValueError, match="record_layers"):
        layer_balance(explain_event(model, x, output="energy"))


def test_gradient_x_input_matches_finite_differences() -> None:
    """The helper itself: x * d out / dx on a linear model equals its contributions."""
    lin = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    g = gradient_x_input(lin, x, None, "output:1", torch.tensor([2]))
    assert torch.allclose(g[0, 2], x[2] * lin[0].weight[1])
    assert float(g[0, [0, 1, 3]].abs().sum()) == 0.0
