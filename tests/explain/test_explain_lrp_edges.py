"""LRP through an interaction network (nodes and edges as one element set, explain_edges).

The reference here is written from the network's definition, not from the engine's Program:
every layer is an explicit matrix (the gathers and sums are dense (E, N) / (N, E) incidence
matrices), epsilon-LRP textbook style in float64. Also: conservation (every rule), the engine's
own dense reference for gamma and z+, LRP-0 == gradient x input on a bias-free model, locality.
"""

from __future__ import annotations

import pytest
import torch
from lrp_reference import dense_lrp
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import Epsilon, Gamma, ZPlus, explain_edges
from particlegraph.explain.lrp.edge_elements import EdgeLayout, _EdgeView, with_copies
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.rules import Composite, as_composite
from particlegraph.nn.interaction import InteractionNetwork

# --- the explicit-matrix reference ---------------------------------------------------------------


def _den(z: Tensor, eps: float) -> Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _frac(c: Tensor, total: Tensor, eps: float) -> Tensor:
    """``c / (total + eps sign total)`` with 0/0 := 0; c (..., J), total (...)."""
    den = _den(total, eps)
    safe = torch.where(den == 0, torch.ones_like(den), den)
    return torch.where((den == 0)[..., None], 0.0, c / safe[..., None])


def lin_lrp(a: Tensor, lin: nn.Linear, r: Tensor, eps: float) -> Tensor:
    """Relevance (T, M, in) at the input ``a`` (M, in) of ``lin`` from r (T, M, out)."""
    c = a[:, None, :] * lin.weight[None]  # (M, out, in)
    return torch.einsum("moi,tmo->tmi", _frac(c, c.sum(-1) + lin.bias, eps), r)


def matrix_lrp(m: Tensor, u: Tensor, r: Tensor, eps: float) -> Tensor:
    """``out = m @ u`` with an explicit (O, I) matrix, per channel: relevance (T, I, C) at u."""
    c = m[:, None, :] * u.T[None]  # (O, C, I)
    return torch.einsum("oci,toc->tic", _frac(c, c.sum(-1), eps), r)


def sum_lrp(a: Tensor, b: Tensor, r: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``a + b``: the two terms' shares of r."""
    den = _den(a + b, eps)
    return a * r / den, b * r / den


def mlp_forward(mlp: nn.Sequential, a: Tensor) -> tuple[Tensor, list[tuple[nn.Linear, Tensor]]]:
    recs = []
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            recs.append((layer, a))
        a = layer(a)
    return a, recs


def mlp_lrp(recs: list[tuple[nn.Linear, Tensor]], r: Tensor, eps: float) -> Tensor:
    for lin, a in reversed(recs):  # ReLUs pass relevance through
        r = lin_lrp(a, lin, r, eps)
    return r


def reference(net: InteractionNetwork, x, ei, ea, edges: Tensor, eps: float):
    """Epsilon-LRP (T, N, F_n), (T, E, F_e) of the logits of ``edges``, written layer by layer."""
    n, e_num = x.shape[0], ea.shape[0]
    s_mat = torch.zeros(e_num, n, dtype=x.dtype).index_put_(
        (torch.arange(e_num), ei[0]), torch.ones(e_num, dtype=x.dtype)
    )
    d_mat = torch.zeros(e_num, n, dtype=x.dtype).index_put_((torch.arange(e_num), ei[1]), torch.ones(e_num, dtype=x.dtype))  # fmt: skip
    h, rec_hn = mlp_forward(net.node_encoder, x)
    e, rec_en = mlp_forward(net.edge_encoder, ea)
    steps = []
    for _ in range(net.iterations):
        m, rec_m = mlp_forward(net.edge_block, torch.cat([s_mat @ h, d_mat @ h, e], 1))
        e1 = e + m
        node_in = torch.cat([h, d_mat.T @ e1, s_mat.T @ e1], 1)
        u, rec_u = mlp_forward(net.node_block, node_in)
        steps.append((h, e, m, e1, u, rec_m, rec_u))
        h, e = h + u, e1
    logits, rec_d = mlp_forward(net.decoder, torch.cat([s_mat @ h, d_mat @ h, e], 1))
    t, hid = len(edges), h.shape[1]
    r_out = torch.zeros(t, e_num, 1, dtype=x.dtype)
    r_out[torch.arange(t), edges, 0] = logits[edges, 0]
    r_cat = mlp_lrp(rec_d, r_out, eps)
    r_h = matrix_lrp(s_mat, h, r_cat[..., :hid], 0.0) + matrix_lrp(d_mat, h, r_cat[..., hid : 2 * hid], 0.0)  # fmt: skip
    r_e = r_cat[..., 2 * hid :]
    for h0, e0, m, e1, u, rec_m, rec_u in reversed(steps):
        r_h0, r_u = sum_lrp(h0, u, r_h, eps)
        r_node = mlp_lrp(rec_u, r_u, eps)
        r_h0 = r_h0 + r_node[..., :hid]
        r_e1 = r_e + matrix_lrp(d_mat.T, e1, r_node[..., hid : 2 * hid], eps)
        r_e1 = r_e1 + matrix_lrp(s_mat.T, e1, r_node[..., 2 * hid :], eps)
        r_e0, r_m = sum_lrp(e0, m, r_e1, eps)
        r_cat = mlp_lrp(rec_m, r_m, eps)
        r_h = r_h0 + matrix_lrp(s_mat, h0, r_cat[..., :hid], 0.0)
        r_h = r_h + matrix_lrp(d_mat, h0, r_cat[..., hid : 2 * hid], 0.0)
        r_e = r_e0 + r_cat[..., 2 * hid :]
    return mlp_lrp(rec_hn, r_h, eps), mlp_lrp(rec_en, r_e, eps), logits[edges, 0]


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


@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_agrees_with_the_explicit_matrix_reference(eps: float) -> None:
    net, x, ei, ea = _setup(iterations=3)
    edges = torch.tensor([0, 5, 17])
    with torch.no_grad():
        ref_n, ref_e, logits = reference(net, x, ei, ea, edges, eps)
    rel = explain_edges(net, x, ei, ea, edges, Epsilon(eps=eps))
    torch.testing.assert_close(rel.explained, logits, rtol=1e-12, atol=1e-12)
    scale = float(max(ref_n.abs().max(), ref_e.abs().max()))
    torch.testing.assert_close(rel.node_dense(), ref_n, rtol=1e-6, atol=1e-6 * scale)
    torch.testing.assert_close(rel.edge_dense(), ref_e, rtol=1e-6, atol=1e-6 * scale)
    assert float(ref_n.abs().sum()) > 0 and float(ref_e.abs().sum()) > 0


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
