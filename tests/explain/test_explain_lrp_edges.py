"""LRP through an interaction network (nodes and edges as one element set, explain_edges).

The interaction network (particlegraph.nn) is the stand-in model; its explicit-matrix reference
is in tests/nn/test_nn_interaction_lrp.py. Here: conservation (every rule), the engine's own
dense reference (epsilon, gamma, z+), LRP-0 == gradient x input on a bias-free model, locality,
refusals.
"""

from __future__ import annotations

import pytest
import torch
from lrp_reference import dense_lrp
from torch import nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import Epsilon, Gamma, ZPlus, explain_edges
from particlegraph.explain.lrp.edge_elements import EdgeLayout, _EdgeView, with_copies
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.rules import Composite, as_composite
from particlegraph.nn.interaction import InteractionNetwork

# --- fixtures -------------------------------------------------------------------------------------


def _setup(seed: int = 0, n: int = 9, e: int = 22, iterations: int = 3, bias: bool = True):
    torch.manual_seed(seed)
    net = InteractionNetwork(4, 3, hidden=5, iterations=iterations).double().eval()
    if not bias:
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    ea = torch.randn(e, 3, generator=g, dtype=torch.float64)
    ei = torch.randint(0, n, (2, e), generator=g)
    return net, x, ei, ea


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule", [Epsilon(eps=1e-9), Epsilon(eps=0.5), Gamma(gamma=0.25), ZPlus()], ids=repr
)
def test_conservation(rule) -> None:
    net, x, ei, ea = _setup(seed=1, iterations=4)
    rel = explain_edges(net, x, ei, ea, torch.arange(8), rule)
    scale = float(rel.explained.abs().max())
    assert float(rel.conservation_residual().abs().max()) < 1e-10 * max(scale, 1.0)
    assert float(rel.node_values.abs().sum() + rel.edge_values.abs().sum()) > 0


@pytest.mark.parametrize("rule", [Gamma(gamma=0.25), ZPlus(), Epsilon(eps=0.1)], ids=repr)
def test_sparse_walk_equals_the_engines_dense_reference(rule) -> None:
    net, x, ei, ea = _setup(seed=2, iterations=2)
    layout = EdgeLayout(x.shape[0], ei, 4, 3)
    with torch.no_grad():
        prog = trace_model(_EdgeView(net, layout), layout.joint_input(x, ea), None)
    edges = torch.tensor([1, 4])
    comp = with_copies(as_composite(rule))
    dense, absorbed = dense_lrp(prog, prog.outputs["logit"], 0, edges + x.shape[0], comp)
    rel = explain_edges(net, x, ei, ea, edges, rule)
    n = x.shape[0]
    torch.testing.assert_close(rel.node_dense(), dense[:, :n, :4], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(rel.edge_dense(), dense[:, n:, 4:], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(rel.absorbed, absorbed, rtol=1e-9, atol=1e-12)
    assert float(dense[:, :n, 4:].abs().max()) == 0 and float(dense[:, n:, :4].abs().max()) == 0


def test_lrp0_equals_gradient_times_input_without_biases() -> None:
    net, x, ei, ea = _setup(seed=3, iterations=3, bias=False)
    rel = explain_edges(net, x, ei, ea, [2, 9], Epsilon(eps=0.0))
    for row, edge in enumerate((2, 9)):
        xg, eg = x.clone().requires_grad_(True), ea.clone().requires_grad_(True)
        gx, ge = torch.autograd.grad(net(xg, ei, eg)[edge], (xg, eg))
        torch.testing.assert_close(rel.node_dense()[row], gx * x, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(rel.edge_dense()[row], ge * ea, rtol=1e-9, atol=1e-12)
    assert float(rel.absorbed.abs().max()) < 1e-12


def test_relevance_stays_in_the_receptive_field_and_edges_are_independent() -> None:
    torch.manual_seed(4)
    net = InteractionNetwork(4, 3, hidden=5, iterations=2).double().eval()
    # two components: nodes 0-3 (edges 0-3) and nodes 4-8 (edges 4-8)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 0, 5, 6, 7, 8, 4]])
    x, ea = torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    both = explain_edges(net, x, ei, ea, [1, 6])
    assert set(both.node_source[both.node_target == 1].tolist()) <= {0, 1, 2, 3}
    assert set(both.edge_source[both.edge_target == 6].tolist()) <= {4, 5, 6, 7, 8}
    alone = explain_edges(net, x, ei, ea, [6])
    torch.testing.assert_close(both.edge_dense()[1], alone.edge_dense()[0])
    torch.testing.assert_close(both.node_dense()[1], alone.node_dense()[0])


def test_drifting_adapter_and_bad_edges_are_refused() -> None:
    net, x, ei, ea = _setup(seed=5)

    class Drifted(InteractionNetwork):
        def forward(self, x, edge_index, edge_attr):
            return super().forward(x, edge_index, edge_attr) + 1.0

    bad = Drifted(4, 3, hidden=5, iterations=3).double()
    bad.load_state_dict(net.state_dict())
    with pytest.raises(ConfigError, match="does not reproduce"):
        explain_edges(bad, x, ei, ea, [0])
    for edges in ([], [22], [-1], [1, 1]):
        with pytest.raises(ConfigError, match="edge"):
            explain_edges(net, x, ei, ea, edges)
    with pytest.raises(ConfigError, match="edge features"):
        explain_edges(net, x, ei, ea[:-1], [0])


def test_copies_get_lrp0_whatever_the_composite() -> None:
    comp = with_copies(Composite([("decoder.*", ZPlus())], default=Gamma()))
    assert comp.rule_for("iter0.edge_block.src.copy", "aggregation") == Epsilon(eps=0.0)
    assert comp.rule_for("output.copy", "aggregation") == Epsilon(eps=0.0)
    assert isinstance(comp.rule_for("decoder.0", "linear"), ZPlus)
    assert isinstance(comp.rule_for("iter0.incoming", "aggregation"), Gamma)
