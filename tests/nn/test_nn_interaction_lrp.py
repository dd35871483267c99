"""LRP of the interaction network's edge logits: the engine's path (lrp_trace_edges +
explain_edges) and the memory-lean walker (interaction_lrp.explain_interaction).

The reference here is written from the network's definition, not from the engine's Program:
every layer is an explicit matrix (the gathers and sums are dense (E, N) / (N, E) incidence
matrices), epsilon-LRP textbook style in float64. Also hand-computed toys, the walker against
the engine for every rule, and the receptive-field cut.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import Epsilon, Gamma, ZPlus, explain_edges
from particlegraph.explain.lrp.edge_elements import receptive_field
from particlegraph.nn.interaction import InteractionNetwork
from particlegraph.nn.interaction_lrp import explain_interaction

METHODS = [explain_edges, explain_interaction]
IDS = ["engine", "walker"]

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


def _hand_graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two hits and two edges (0 -> 1, 1 -> 0) of the hand-computed toys: x, edge_index,
    edge_attr (float64)."""
    x = torch.tensor([[1.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
    ea = torch.tensor([[0.5, 1.0, 1.0], [3.0, -1.0, 0.2]], dtype=torch.float64)
    return x, torch.tensor([[0, 1], [1, 0]]), ea


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


@pytest.mark.parametrize("explain", METHODS, ids=IDS)
def test_lrp_of_an_edge_path_toy_by_hand(explain):
    """logit = 1.5 relu(w . a) with w = (1, 2, -0.5), a = (0.5, 1, 1): s = 2, logit L = 3.

    Epsilon (eps 0.1) layer by layer: decoder R = L * L / (L + eps); residual e + 0: share
    s / (s + eps); edge encoder: R_i = a_i w_i / (s + eps) of that. Nothing reaches the hits.
    """
    net = _hand_toy([0.0, 0.0, 1.5])
    x, ei, ea = _hand_graph()
    rel = explain(net, x, ei, ea, [0], Epsilon(eps=0.1))
    s, big_l, eps = 2.0, 3.0, 0.1
    r_e = s / (s + eps) * big_l * big_l / (big_l + eps)
    hand = torch.tensor([0.5, 2.0, -0.5], dtype=torch.float64) * r_e / (s + eps)
    assert float(rel.explained[0]) == pytest.approx(3.0)
    torch.testing.assert_close(rel.edge_dense()[0, 0], hand)
    assert float(rel.edge_dense()[0, 1].abs().max()) == 0.0
    assert float(rel.node_dense().abs().max()) == 0.0
    assert float(rel.absorbed[0]) == pytest.approx(3.0 - float(hand.sum()))


@pytest.mark.parametrize("explain", METHODS, ids=IDS)
def test_lrp_of_a_node_path_toy_by_hand(explain):
    """logit = 2 h_src with h = relu(0.5 x_0 + 2 x_1): the source hit (1, 1) gives h = 2.5, L = 5.

    The gather is a copy (no epsilon); residual h + 0: share h / (h + eps); node encoder
    R_i = x_i w_i / (h + eps) of that. The edge's own features and the target hit get nothing.
    """
    net = _hand_toy([2.0, 0.0, 0.0])
    x, ei, ea = _hand_graph()
    rel = explain(net, x, ei, ea, [0], Epsilon(eps=0.2))
    h, big_l, eps = 2.5, 5.0, 0.2
    r_h = h / (h + eps) * big_l * big_l / (big_l + eps)
    hand = torch.tensor([0.5, 2.0], dtype=torch.float64) * r_h / (h + eps)
    torch.testing.assert_close(rel.node_dense()[0, 0], hand)
    assert float(rel.node_dense()[0, 1].abs().max()) == 0.0
    assert float(rel.edge_dense().abs().max()) == 0.0


def _setup(seed: int = 0, n: int = 9, e: int = 22, iterations: int = 3):
    torch.manual_seed(seed)
    net = InteractionNetwork(4, 3, hidden=5, iterations=iterations).double().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    ea = torch.randn(e, 3, generator=g, dtype=torch.float64)
    ei = torch.randint(0, n, (2, e), generator=g)
    return net, x, ei, ea


@pytest.mark.parametrize("explain", METHODS, ids=IDS)
@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_agrees_with_the_explicit_matrix_reference(explain, eps: float) -> None:
    net, x, ei, ea = _setup(iterations=3)
    edges = torch.tensor([0, 5, 17])
    with torch.no_grad():
        ref_n, ref_e, logits = reference(net, x, ei, ea, edges, eps)
    rel = explain(net, x, ei, ea, edges, Epsilon(eps=eps))
    torch.testing.assert_close(rel.explained, logits, rtol=1e-12, atol=1e-12)
    scale = float(max(ref_n.abs().max(), ref_e.abs().max()))
    torch.testing.assert_close(rel.node_dense(), ref_n, rtol=1e-6, atol=1e-6 * scale)
    torch.testing.assert_close(rel.edge_dense(), ref_e, rtol=1e-6, atol=1e-6 * scale)
    assert float(ref_n.abs().sum()) > 0 and float(ref_e.abs().sum()) > 0
    resid = rel.conservation_residual().abs().max()
    assert float(resid) < 1e-10 * float(rel.explained.abs().max())


def _chain_graph(n: int = 40, seed: int = 6):
    """Sparse: node i -> i+1 and i -> i+2 (long, so a 2-iteration field is a small part)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.cat([torch.arange(n - 1), torch.arange(n - 2)])
    dst = torch.cat([torch.arange(1, n), torch.arange(2, n)])
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    ea = torch.randn(len(src), 3, generator=g, dtype=torch.float64)
    return x, torch.stack([src, dst]), ea


@pytest.mark.parametrize(
    "rule", [Epsilon(eps=1e-6), Epsilon(eps=0.4), Gamma(gamma=0.25), ZPlus()], ids=repr
)
def test_walker_equals_the_engine_for_every_rule(rule) -> None:
    torch.manual_seed(7)
    net = InteractionNetwork(4, 3, hidden=6, iterations=2).double().eval()
    x, ei, ea = _chain_graph()
    edges = torch.tensor([3, 20, 50])
    ref = explain_edges(net, x, ei, ea, edges, rule)
    cut_engine = explain_edges(net, x, ei, ea, edges, rule, steps=net.iterations)
    torch.testing.assert_close(cut_engine.node_dense(), ref.node_dense(), rtol=1e-9, atol=1e-13)
    torch.testing.assert_close(cut_engine.edge_dense(), ref.edge_dense(), rtol=1e-9, atol=1e-13)
    torch.testing.assert_close(cut_engine.absorbed, ref.absorbed, rtol=1e-9, atol=1e-13)
    for cut in (True, False):
        got = explain_interaction(net, x, ei, ea, edges, rule, cut=cut)
        torch.testing.assert_close(got.node_dense(), ref.node_dense(), rtol=1e-9, atol=1e-13)
        torch.testing.assert_close(got.edge_dense(), ref.edge_dense(), rtol=1e-9, atol=1e-13)
        torch.testing.assert_close(got.absorbed, ref.absorbed, rtol=1e-9, atol=1e-13)
        torch.testing.assert_close(got.explained, net(x, ei, ea)[edges])


def test_receptive_field_is_exactly_what_the_logit_depends_on() -> None:
    torch.manual_seed(8)
    net = InteractionNetwork(4, 3, hidden=6, iterations=2).double().eval()
    x, ei, ea = _chain_graph()
    nodes, keep = receptive_field(ei, x.shape[0], torch.tensor([20]), 2)
    xg, eg = x.clone().requires_grad_(True), ea.clone().requires_grad_(True)
    gx, ge = torch.autograd.grad(net(xg, ei, eg)[20], (xg, eg))
    assert set(gx.abs().sum(1).nonzero()[:, 0].tolist()) <= set(nodes.nonzero()[:, 0].tolist())
    assert set(ge.abs().sum(1).nonzero()[:, 0].tolist()) <= set(keep.nonzero()[:, 0].tolist())
    assert 0 < int(keep.sum()) < ei.shape[1] // 2  # the cut saves work here
    # one step less misses inputs that the logit depends on
    _, keep1 = receptive_field(ei, x.shape[0], torch.tensor([20]), 1)
    assert not set(ge.abs().sum(1).nonzero()[:, 0].tolist()) <= set(keep1.nonzero()[:, 0].tolist())


def test_walker_refuses_bad_edges() -> None:
    net, x, ei, ea = _setup(seed=9)
    for edges in ([], [22], [-1], [2, 2]):
        with pytest.raises(ConfigError, match="edge"):
            explain_interaction(net, x, ei, ea, edges)
    with pytest.raises(ConfigError, match="edge_attr"):
        explain_interaction(net, x, ei, ea[:-1], [0])


@pytest.mark.parametrize("rule", [Epsilon(eps=0.1), Gamma(gamma=0.25)], ids=repr)
def test_row_blocks_do_not_change_the_result(rule, monkeypatch: pytest.MonkeyPatch) -> None:
    import particlegraph.nn.interaction_lrp as walker

    net, x, ei, ea = _setup(seed=10, iterations=2)
    whole = explain_interaction(net, x, ei, ea, [1, 8], rule)
    monkeypatch.setattr(walker, "ROW_CHUNK", 3)
    blocks = explain_interaction(net, x, ei, ea, [1, 8], rule)
    torch.testing.assert_close(blocks.node_dense(), whole.node_dense(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(blocks.edge_dense(), whole.edge_dense(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(blocks.absorbed, whole.absorbed, rtol=1e-12, atol=1e-14)
