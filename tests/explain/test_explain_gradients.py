"""Gradient attributions, Taylor coefficients and graph derivatives (explain/gradients.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from particlegraph.errors import ConfigError
from particlegraph.explain.gradients import (
    distance2_coloring,
    gradients,
    graph_jacobian_dense,
    graph_taylor,
    graph_taylor_dense,
    grid_derivatives,
    hessians,
    input_x_gradient,
    integrated_gradients,
    receptive_field_graph,
    saliency,
    smoothgrad,
    taylor_coefficients,
)


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1), nn.Sigmoid()).double()
    return net


def _f(net: nn.Module):
    return lambda x: net(x)[:, 0]


@pytest.fixture
def x64() -> torch.Tensor:
    return torch.randn(40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_gradients_match_central_finite_differences(mlp, x64):
    f = _f(mlp)
    g = gradients(f, x64)
    h = 1e-6
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = h
        fd = (f(x64 + e) - f(x64 - e)) / (2 * h)
        torch.testing.assert_close(g[:, i], fd.detach(), rtol=1e-6, atol=1e-9)


def test_hessian_symmetric_and_matches_finite_differences_of_gradient(mlp, x64):
    f = _f(mlp)
    hs = hessians(f, x64)
    assert hs.shape == (40, 3, 3)
    torch.testing.assert_close(hs, hs.transpose(1, 2), rtol=0, atol=1e-12)
    h = 1e-5
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = h
        fd = (gradients(f, x64 + e) - gradients(f, x64 - e)) / (2 * h)  # (B, F): column j
        torch.testing.assert_close(hs[:, :, j], fd, rtol=1e-5, atol=1e-8)


def _taylor_loop_reference(f, x):
    """Plain per-sample loop with torch.autograd (what the classic exercise does)."""
    t1 = torch.zeros(x.shape[1], dtype=x.dtype)
    t2 = torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype)
    for row in x:
        r = row.clone().requires_grad_(True)
        out = f(r[None])[0]
        (g,) = torch.autograd.grad(out, r, create_graph=True)
        hrows = [torch.autograd.grad(g[i], r, retain_graph=True)[0] for i in range(len(g))]
        hm = torch.stack(hrows)
        coef = hm.clone()
        coef.diagonal().mul_(0.5)  # Taylor factor 1/2 on the diagonal
        t1 += g.detach().abs()
        t2 += coef.abs()
    return t1 / len(x), t2 / len(x)


def test_taylor_coefficients_equal_per_sample_loop(mlp, x64):
    f = _f(mlp)
    tc = taylor_coefficients(f, x64, chunk_size=16)
    r1, r2 = _taylor_loop_reference(f, x64)
    torch.testing.assert_close(tc.first, r1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(tc.second, r2, rtol=1e-10, atol=1e-12)
    ranked = tc.ranked(["a", "b", "c"])
    assert len(ranked) == 3 + 6
    assert [v for _, v in ranked] == sorted((v for _, v in ranked), reverse=True)


def test_hand_computed_taylor_coefficients():
    # f = x0^2 x1 + 3 x1: t_0 = 2 x0 x1, t_1 = x0^2 + 3, t_00 = x1, t_01 = 2 x0, t_11 = 0
    def f(x):
        return x[:, 0] ** 2 * x[:, 1] + 3 * x[:, 1]

    x = torch.tensor([[1.0, 2.0], [-2.0, 0.5]], dtype=torch.float64)
    tc = taylor_coefficients(f, x)
    torch.testing.assert_close(tc.first, torch.tensor([(4 + 2) / 2, (4 + 7) / 2]).double())
    expected = torch.tensor([[(2 + 0.5) / 2, (2 + 4) / 2], [(2 + 4) / 2, 0.0]]).double()
    torch.testing.assert_close(tc.second, expected)


def test_integrated_gradients_completeness(mlp, x64):
    f = _f(mlp)
    base = torch.full((3,), -0.5, dtype=torch.float64)
    ig = integrated_gradients(f, x64, base, steps=16)
    diff = (f(x64) - f(base.expand_as(x64))).detach()
    torch.testing.assert_close(ig.sum(1), diff, rtol=1e-7, atol=1e-9)


def test_linear_model_attributions_are_exact():
    w = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)

    def f(x):
        return x @ w + 1.0

    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(saliency(f, x), w.abs().expand(2, 3))
    torch.testing.assert_close(input_x_gradient(f, x), x * w)
    torch.testing.assert_close(integrated_gradients(f, x, steps=1), x * w)


def test_smoothgrad_reproducible_and_reduces_to_gradient_without_noise(mlp, x64):
    f = _f(mlp)
    a = smoothgrad(f, x64, sigma=0.2, samples=8, generator=torch.Generator().manual_seed(3))
    b = smoothgrad(f, x64, sigma=0.2, samples=8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(smoothgrad(f, x64, sigma=0.0, samples=2), gradients(f, x64))


def test_grid_derivatives_of_known_function():
    def f(x):
        return x[:, 0] ** 2 * x[:, 1] + torch.sin(x[:, 1])

    xs = torch.linspace(-1, 1, 5, dtype=torch.float64)
    ys = torch.linspace(-2, 2, 4, dtype=torch.float64)
    gd = grid_derivatives(f, xs, ys)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    assert gd.output.shape == (4, 5)
    torch.testing.assert_close(gd.output, gx**2 * gy + torch.sin(gy))
    torch.testing.assert_close(gd.d_x, 2 * gx * gy)
    torch.testing.assert_close(gd.d_y, gx**2 + torch.cos(gy))
    torch.testing.assert_close(gd.d_xx, 2 * gy)
    torch.testing.assert_close(gd.d_xy, 2 * gx)
    torch.testing.assert_close(gd.d_yy, -torch.sin(gy))


def test_bad_shapes_raise_config_error(mlp):
    with pytest.raises(ConfigError, match=r"shape \(B, F\)"):
        gradients(_f(mlp), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="must map"):
        gradients(lambda x: x, torch.zeros(2, 3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------
# graph models
# ------------------------------------------------------------------------------------------


def _graph_model(edge_index: torch.Tensor, nf: int, seed: int = 0):
    """One message-passing hop: f_i = a . tanh(x_i W + sum_j w_ji tanh(x_j V))."""
    g = torch.Generator().manual_seed(seed)
    w_mat = torch.randn(nf, 6, generator=g, dtype=torch.float64)
    v_mat = torch.randn(nf, 6, generator=g, dtype=torch.float64)
    a = torch.randn(6, generator=g, dtype=torch.float64)
    ew = torch.rand(edge_index.shape[1], generator=g, dtype=torch.float64)
    src, dst = edge_index

    def f(x):
        msg = ew[:, None] * torch.tanh(x[src] @ v_mat)  # (E, 6)
        agg = torch.zeros(x.shape[0], 6, dtype=x.dtype).index_add(0, dst, msg)
        return torch.tanh(x @ w_mat + agg) @ a

    return f


def _random_graph(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src, dst = [], []
    for i in range(n):
        nbrs = torch.randperm(n - 1, generator=g)[:k]
        nbrs = nbrs + (nbrs >= i).long()  # skip i itself
        src += nbrs.tolist()
        dst += [i] * k
    return torch.tensor([src, dst])


def test_distance2_coloring_separates_nodes_feeding_a_common_target():
    ei = _random_graph(30, 3, seed=4)
    col = distance2_coloring(ei, 30)
    for i in range(30):
        feeders = [i, *ei[0, ei[1] == i].tolist()]
        assert len(set(col[feeders].tolist())) == len(feeders)


def test_graph_taylor_matches_dense_jacobian_and_nonneighbours_are_zero():
    n, nf = 12, 3
    ei = _random_graph(n, 2, seed=5)
    f = _graph_model(ei, nf)
    x = torch.randn(n, nf, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    gt = graph_taylor(f, x, ei)
    ref = graph_taylor_dense(f, x, ei)
    torch.testing.assert_close(gt.self_first, ref.self_first, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gt.edge_first, ref.edge_first, rtol=1e-10, atol=1e-12)
    # the dense Jacobian is zero outside each node's closed neighbourhood, so the self and
    # edge terms hold all of it (no mixing of nodes)
    jac = graph_jacobian_dense(f, x)  # (N, N, F)
    mask = torch.eye(n, dtype=torch.bool)
    mask[ei[1], ei[0]] = True
    assert torch.all(jac[~mask] == 0)
    assert bool((jac[~mask].abs().sum() == 0) & (jac[mask].abs().sum() > 0))
    total = gt.self_first.abs().sum() + gt.edge_first.abs().sum()
    torch.testing.assert_close(total, jac.abs().sum())


def test_graph_taylor_second_order_matches_dense_hessian():
    n, nf = 8, 2
    ei = _random_graph(n, 2, seed=7)
    f = _graph_model(ei, nf, seed=1)
    x = torch.randn(n, nf, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    gt = graph_taylor(f, x, ei, second_order=True)
    for i in (0, 3, 7):
        h = torch.autograd.functional.hessian(lambda z, i=i: f(z)[i], x)  # (N, F, N, F)
        torch.testing.assert_close(gt.self_second[i], h[i, :, i, :], rtol=1e-9, atol=1e-12)
        for e in torch.nonzero(ei[1] == i)[:, 0].tolist():
            j = int(ei[0, e])
            torch.testing.assert_close(gt.edge_second[e], h[j, :, j, :], rtol=1e-9, atol=1e-12)


def test_graph_taylor_rejects_self_loops():
    ei = torch.tensor([[0, 1], [0, 0]])
    with pytest.raises(ConfigError, match="self loops"):
        graph_taylor(lambda x: x.sum(1), torch.zeros(2, 2), ei)


def test_two_layer_model_uses_receptive_field_graph():
    n, nf = 10, 2
    e1 = _random_graph(n, 2, seed=9)
    e2 = _random_graph(n, 2, seed=10)
    f1 = _graph_model(e1, nf, seed=2)
    w2 = torch.randn(nf, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    src, dst = e2

    def f(x):  # layer 1 on graph e1, then a sum over graph e2 of layer-1 outputs
        h = torch.tanh(x @ w2) * f1(x)[:, None]  # (N, 6)
        agg = torch.zeros_like(h).index_add(0, dst, h[src])
        return torch.tanh(h + agg).sum(1)

    rf = receptive_field_graph([e1, e2], n)
    # dense boolean reference: reach = (I + A2)(I + A1), A[i, j] = edge j -> i
    a1 = torch.eye(n)
    a1[e1[1], e1[0]] = 1
    a2 = torch.eye(n)
    a2[e2[1], e2[0]] = 1
    ref_mask = ((a2 @ a1) > 0) & ~torch.eye(n, dtype=torch.bool)
    got = torch.zeros(n, n, dtype=torch.bool)
    got[rf[1], rf[0]] = True
    assert torch.equal(got, ref_mask) and rf.shape[1] == int(ref_mask.sum())
    jac = graph_jacobian_dense(f, torch.randn(n, nf, dtype=torch.float64))
    mask = torch.eye(n, dtype=torch.bool)
    mask[rf[1], rf[0]] = True
    assert torch.all(jac.abs().sum(-1)[~mask] == 0)  # nothing outside the receptive field
    x = torch.randn(n, nf, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    gt = graph_taylor(f, x, rf)
    ref = graph_taylor_dense(f, x, rf)
    torch.testing.assert_close(gt.edge_first, ref.edge_first, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gt.self_first, ref.self_first, rtol=1e-10, atol=1e-12)
    # hand check of the composition: j -> k in layer 1 and k -> i in layer 2 gives j -> i
    j, k = int(e1[0, 0]), int(e1[1, 0])
    i = int(e2[1, e2[0] == k][0])
    if i != j:
        assert bool(((rf[0] == j) & (rf[1] == i)).any())
