"""Gradient attributions and Taylor coefficients, vectorised with :mod:`torch.func`.

Two kinds of model function are explained here:

* **row-wise** ``f(x (B, F)) -> (B,)``: every output row depends only on its own input row
  (an MLP classifier, or one head of a per-element model). Per-row derivatives come from
  ``vmap(jacrev(...))`` / ``vmap(hessian(...))`` in one vectorised call, no Python loop per row.
* **graph** ``f(x (N, F)) -> (N,)``: row i also depends on its neighbours. :func:`graph_taylor`
  returns the derivatives of f_i with respect to x_i (self terms) and to every neighbour x_j
  (one term per edge), kept separate, at a cost that grows linearly with N for bounded degree.

Taylor coefficients follow Wunsch, Jörger, Kopf and Quast, "Identifying the relevant dependencies
of the neural network response on characteristics of the input space", arXiv:1803.08782:
expanding ``f(x + d) = f(x) + sum_i t_i d_i + sum_{i<=j} t_ij d_i d_j + ...`` gives
``t_i = df/dx_i``, ``t_ii = 1/2 d2f/dx_i^2`` and ``t_ij = d2f/dx_i dx_j`` (i < j); the metric of
an input (pair) is the mean absolute coefficient over a data set, ``<|t_i|>`` and ``<|t_ij|>``.

Why one module of ~500 lines: the attribution methods share the row-wise/graph model adapters
and the chunked torch.func machinery defined here; split apart, each part would re-import the
same private helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.func import hessian, jacrev, jvp, vjp, vmap

from particlegraph.errors import ConfigError

ModelFn = Callable[[Tensor], Tensor]
"""A model as a function: ``(B, F) -> (B,)`` (a trailing output dimension of size 1 is allowed)."""


def _scalar_fn(f: ModelFn) -> Callable[[Tensor], Tensor]:
    """Turn a batched ``(B, F) -> (B,)`` model into a per-row ``(F,) -> ()`` function for vmap."""

    def g(row: Tensor) -> Tensor:
        out = f(row.unsqueeze(0))
        return out.reshape(-1)[0]

    return g


def _check_2d(x: Tensor, name: str = "x") -> None:
    if x.dim() != 2:
        raise ConfigError(f"{name} must have shape (B, F); got shape {tuple(x.shape)}")


def _outputs(f: ModelFn, x: Tensor) -> Tensor:
    out = f(x)
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != x.shape[:1]:
        raise ConfigError(
            f"model function must map (B, F) to (B,); got output shape {tuple(out.shape)} "
            f"for input shape {tuple(x.shape)}"
        )
    return out


# --------------------------------------------------------------------------------------------
# first and second derivatives of row-wise models
# --------------------------------------------------------------------------------------------


def gradients(f: ModelFn, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Per-row gradients ``df(x_b)/dx_b`` of a row-wise model, one vectorised call.

    Args:
        f: row-wise model function ``(B, F) -> (B,)``.
        x: inputs (B, F).
        chunk_size: rows per vmap chunk (bounds memory); ``None`` does all rows at once.

    Returns:
        (B, F) gradients, detached.
    """
    _check_2d(x)
    _outputs(f, x[:1])
    with torch.enable_grad():
        g = vmap(jacrev(_scalar_fn(f)), chunk_size=chunk_size)(x.detach())
    result: Tensor = g.detach()
    return result


def hessians(f: ModelFn, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Per-row Hessians ``d2f(x_b)/dx_b dx_b`` of a row-wise model, one vectorised call.

    Returns:
        (B, F, F) Hessians (symmetric up to float rounding), detached.
    """
    _check_2d(x)
    _outputs(f, x[:1])
    with torch.enable_grad():
        h = vmap(hessian(_scalar_fn(f)), chunk_size=chunk_size)(x.detach())
    result: Tensor = h.detach()
    return result


def saliency(f: ModelFn, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Saliency map: absolute gradient ``|df/dx|`` (Simonyan et al., arXiv:1312.6034), (B, F)."""
    return gradients(f, x, chunk_size=chunk_size).abs()


def input_x_gradient(f: ModelFn, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Input times gradient ``x * df/dx`` (Shrikumar et al., arXiv:1605.01713), (B, F)."""
    return x.detach() * gradients(f, x, chunk_size=chunk_size)


def integrated_gradients(
    f: ModelFn,
    x: Tensor,
    baseline: Tensor | None = None,
    *,
    steps: int = 32,
    chunk_size: int | None = None,
) -> Tensor:
    """Integrated gradients (Sundararajan et al., arXiv:1703.01365), (B, F).

    ``IG_i = (x_i - x0_i) * int_0^1 df/dx_i(x0 + a (x - x0)) da``, the integral done by
    Gauss-Legendre quadrature with ``steps`` nodes (exact for polynomials of degree
    ``2 steps - 1``), all ``B * steps`` gradients in one vectorised call. Completeness:
    ``IG.sum(1) ~= f(x) - f(x0)``.

    Args:
        baseline: (F,) or (B, F) reference input; zeros when ``None``.
        steps: quadrature nodes along the straight path.
    """
    _check_2d(x)
    if steps < 1:
        raise ConfigError(f"integrated_gradients needs steps >= 1, got {steps}")
    x = x.detach()
    x0 = torch.zeros_like(x) if baseline is None else baseline.to(x).expand_as(x)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alpha = torch.as_tensor((nodes + 1.0) / 2.0, dtype=x.dtype, device=x.device)  # (S,)
    w = torch.as_tensor(weights / 2.0, dtype=x.dtype, device=x.device)  # (S,), sums to 1
    delta = x - x0  # (B, F)
    path = x0[:, None, :] + alpha[None, :, None] * delta[:, None, :]  # (B, S, F)
    g = gradients(f, path.reshape(-1, x.shape[1]), chunk_size=chunk_size)
    avg = (g.reshape(x.shape[0], steps, -1) * w[None, :, None]).sum(1)  # (B, F)
    return delta * avg


def smoothgrad(
    f: ModelFn,
    x: Tensor,
    *,
    sigma: float | Tensor = 0.1,
    samples: int = 32,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """SmoothGrad (Smilkov et al., arXiv:1706.03825): gradient averaged over noisy copies, (B, F).

    Args:
        sigma: Gaussian noise width in input units, a float or a (F,) tensor.
        samples: noisy copies per row.
        generator: torch generator for reproducible noise.
    """
    _check_2d(x)
    if samples < 1:
        raise ConfigError(f"smoothgrad needs samples >= 1, got {samples}")
    x = x.detach()
    noise = torch.randn(
        (x.shape[0], samples, x.shape[1]), generator=generator, dtype=x.dtype, device=x.device
    )
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    noisy = x[:, None, :] + noise * sig  # (B, S, F)
    g = gradients(f, noisy.reshape(-1, x.shape[1]), chunk_size=chunk_size)
    return g.reshape(x.shape[0], samples, -1).mean(1)


# --------------------------------------------------------------------------------------------
# Taylor coefficients
# --------------------------------------------------------------------------------------------


class TaylorCoefficients(NamedTuple):
    """Mean absolute Taylor coefficients over a data set.

    Attributes:
        first: (F,) ``<|t_i|>``.
        second: (F, F) symmetric ``<|t_ij|>``; diagonal ``<|1/2 d2f/dx_i^2|>``, off-diagonal
            ``<|d2f/dx_i dx_j|>``.
    """

    first: Tensor
    second: Tensor

    def ranked(self, names: list[str] | None = None) -> list[tuple[str, float]]:
        """All ``F + F (F + 1) / 2`` coefficients as ``(label, value)``, largest first.

        Labels read ``t_<name>`` and ``t_<name>,<name>`` (names default to ``x1, x2, ...``).
        """
        nf = self.first.shape[0]
        names = names or [f"x{i + 1}" for i in range(nf)]
        rows = [(f"t_{names[i]}", float(self.first[i])) for i in range(nf)]
        rows += [
            (f"t_{names[i]},{names[j]}", float(self.second[i, j]))
            for i in range(nf)
            for j in range(i, nf)
        ]
        return sorted(rows, key=lambda r: -r[1])


def taylor_terms(g: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row Taylor coefficients from gradients (B, F) and Hessians (B, F, F).

    Returns ``(t1 (B, F), t2 (B, F, F))`` with ``t2`` symmetric, diagonal halved. The Hessian
    is symmetrised first so float rounding cannot make ``t_ij`` and ``t_ji`` differ.
    """
    h = 0.5 * (h + h.transpose(-1, -2))
    eye = torch.eye(h.shape[-1], dtype=torch.bool, device=h.device)
    t2 = torch.where(eye, 0.5 * h, h)
    return g, t2


def taylor_coefficients(
    f: ModelFn, x: Tensor, *, chunk_size: int | None = None
) -> TaylorCoefficients:
    """``<|t_i|>`` and ``<|t_ij|>`` of a row-wise model over rows ``x`` (B, F), vectorised."""
    g = gradients(f, x, chunk_size=chunk_size)
    h = hessians(f, x, chunk_size=chunk_size)
    t1, t2 = taylor_terms(g, h)
    return TaylorCoefficients(first=t1.abs().mean(0), second=t2.abs().mean(0))


# --------------------------------------------------------------------------------------------
# heat maps over a 2D grid
# --------------------------------------------------------------------------------------------


class GridDerivatives(NamedTuple):
    """Output and derivatives of a two-input model on a grid; every field is (ny, nx).

    ``d_x``/``d_y`` are first derivatives, ``d_xx``, ``d_xy``, ``d_yy`` second derivatives
    with respect to the first (x) and second (y) input.
    """

    output: Tensor
    d_x: Tensor
    d_y: Tensor
    d_xx: Tensor
    d_xy: Tensor
    d_yy: Tensor


def grid_derivatives(
    f: ModelFn, xs: Tensor, ys: Tensor, *, chunk_size: int | None = None
) -> GridDerivatives:
    """Output, both first and the three second derivatives of ``f: (B, 2) -> (B,)`` on a grid.

    One vectorised call each for the output, the gradients and the Hessians (no per-point loop).

    Args:
        xs: (nx,) grid values of the first input; ys: (ny,) of the second.
    """
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (ny, nx)
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (ny*nx, 2)
    shape = gx.shape
    with torch.no_grad():
        out = _outputs(f, pts).reshape(shape)
    g = gradients(f, pts, chunk_size=chunk_size)
    h = hessians(f, pts, chunk_size=chunk_size)
    return GridDerivatives(
        output=out.detach(),
        d_x=g[:, 0].reshape(shape),
        d_y=g[:, 1].reshape(shape),
        d_xx=h[:, 0, 0].reshape(shape),
        d_xy=h[:, 0, 1].reshape(shape),
        d_yy=h[:, 1, 1].reshape(shape),
    )


# --------------------------------------------------------------------------------------------
# graph models: self and neighbour derivatives kept separate
# --------------------------------------------------------------------------------------------


class GraphTaylor(NamedTuple):
    """Derivatives of a graph model's per-node output, split into self and neighbour terms.

    For ``edge_index`` (2, E) with rows (source j, target i):

    Attributes:
        self_first: (N, F) ``d f_i / d x_i``.
        edge_first: (E, F) ``d f_i / d x_j`` for each edge j -> i.
        self_second: (N, F, F) ``d2 f_i / d x_i d x_i`` or ``None``.
        edge_second: (E, F, F) ``d2 f_i / d x_j d x_j`` or ``None``.
    """

    self_first: Tensor
    edge_first: Tensor
    self_second: Tensor | None
    edge_second: Tensor | None


def distance2_coloring(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Greedy colouring in which two nodes that feed a common target never share a colour.

    A node "feeds" target i when it is i itself or a source of an edge into i. With such a
    colouring, perturbing all nodes of one colour at once changes each output f_i through at most
    one of its inputs (compressed Jacobian, Curtis, Powell and Reid 1974). Colouring the reversed
    graph instead gives outputs that never share an input, for reverse-mode products.

    Returns:
        (N,) long colour per node, colours 0..C-1.
    """
    src = edge_index[0].tolist()
    dst = edge_index[1].tolist()
    feeds: list[set[int]] = [{i} for i in range(num_nodes)]  # feeds[i] = closed in-neighbourhood
    targets: list[set[int]] = [{i} for i in range(num_nodes)]  # targets[j] = outputs j feeds
    for j, i in zip(src, dst, strict=True):
        feeds[i].add(j)
        targets[j].add(i)
    color = [-1] * num_nodes
    # high-degree nodes first keeps the number of colours small
    order = sorted(range(num_nodes), key=lambda n: -len(targets[n]))
    for j in order:
        used = {color[k] for i in targets[j] for k in feeds[i] if color[k] >= 0}
        c = 0
        while c in used:
            c += 1
        color[j] = c
    return torch.tensor(color, dtype=torch.long)


def receptive_field_graph(edge_indices: Sequence[Tensor], num_nodes: int) -> Tensor:
    """Edges j -> i of the receptive field of a stack of message-passing layers.

    Layer l aggregates over ``edge_indices[l]`` (2, E_l) and keeps each node's own state (self /
    skip path), so j influences i after all layers when a path j -> ... -> i uses the layers'
    graphs in order, staying on a node being allowed at any layer. Pass the result to
    :func:`graph_taylor`.

    Returns:
        (2, E) long, rows (source j, target i), sorted by target, without self loops.
    """
    if not edge_indices:
        raise ConfigError("receptive_field_graph needs at least one layer's edge_index")
    n = num_nodes
    idx = torch.arange(n)
    src, tgt = idx, idx  # reach pairs j -> i so far, self included
    for ei in edge_indices:
        # hop edges a -> b of this layer plus the self path, grouped by source a
        a = torch.cat([ei[0].cpu(), idx])
        b = torch.cat([ei[1].cpu(), idx])
        order = torch.argsort(a, stable=True)
        a, b = a[order], b[order]
        ptr = torch.zeros(n + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(torch.bincount(a, minlength=n), 0)
        # join: (j -> k) reached and (k -> i) a hop give j -> i
        cnt = ptr[tgt + 1] - ptr[tgt]  # hops leaving each reached target
        start = torch.repeat_interleave(ptr[tgt], cnt)
        offset = torch.arange(int(cnt.sum())) - torch.repeat_interleave(
            torch.cumsum(cnt, 0) - cnt, cnt
        )
        new_src = torch.repeat_interleave(src, cnt)
        new_tgt = b[start + offset]
        key = torch.unique(new_tgt * n + new_src)  # sorted by target, then source
        src, tgt = key % n, key // n
    keep = src != tgt
    return torch.stack([src[keep], tgt[keep]])


@torch.no_grad()
def capture_graphs(model: torch.nn.Module, *inputs: Any) -> list[Tensor]:
    """Edge indices (2, E) of every message-passing layer of ``model`` in one forward pass.

    A layer counts when it has a ``graph(h, batch)`` method returning ``(edge_index, ...)``, as
    :class:`~particlegraph.nn.gravnet.GravNetConv` does; the graphs are listed in call order, ready
    for :func:`receptive_field_graph`. The model should be in eval mode.
    """
    graphs: list[Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        graphs.append(module.graph(*args)[0].detach())  # type: ignore[operator]

    handles = [
        m.register_forward_pre_hook(hook)
        for m in model.modules()
        if callable(getattr(m, "graph", None))
    ]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return graphs


def graph_taylor(
    f: ModelFn,
    x: Tensor,
    edge_index: Tensor,
    *,
    second_order: bool = False,
    chunk_size: int | None = 8,
) -> GraphTaylor:
    """Derivatives of ``f_i`` w.r.t. its own inputs and each neighbour's, kept separate.

    ``f`` maps node features (N, F) to one output per node (N,) and its receptive field must lie
    inside the graph given by ``edge_index`` (2, E) (one message-passing hop over these edges,
    as for a GravNet layer whose kNN graph is passed here, or :func:`receptive_field_graph` of
    several layers). Any dependence outside the given graph would be mixed into the returned
    terms; :func:`graph_taylor_dense` is the exact O(N^2) reference.

    First order: outputs are coloured so that no two outputs of one colour share an input
    (:func:`distance2_coloring` of the reversed graph); one vector-Jacobian product per colour
    (``torch.func.vjp``, vmapped) then yields ``d f_i / d x_j`` for every edge and every feature at
    once. Second order: inputs are coloured so that no two inputs of one colour feed a common
    output, and one forward-over-forward product (``jvp`` of ``jvp``) per colour and feature pair
    yields the diagonal blocks ``d2 f_i / d x_j d x_j``. With C colours (at most about the
    squared maximum degree, independent of N) the cost is C (first order) and C * F * F (second
    order) passes through ``f``, so it grows linearly with N.

    Args:
        f: graph model function (N, F) -> (N,).
        x: node features (N, F).
        edge_index: (2, E) long, rows (source j, target i), no self loops (self terms are
            returned separately).
        second_order: also return the diagonal-block second derivatives.
        chunk_size: products evaluated together by vmap (memory ~ chunk_size x one pass through
            ``f``); ``None`` does all at once.
    """
    _check_2d(x)
    x = x.detach()
    edge_index = edge_index.to(x.device)
    if bool((edge_index[0] == edge_index[1]).any()):
        raise ConfigError(
            "graph_taylor: edge_index holds self loops; drop them (self terms are returned "
            "separately as self_first / self_second)"
        )
    self_first, edge_first = _graph_first_order(f, x, edge_index, chunk_size)
    self_second = edge_second = None
    if second_order:
        self_second, edge_second = _graph_second_order(f, x, edge_index, chunk_size)
    return GraphTaylor(
        self_first=self_first.detach(),
        edge_first=edge_first.detach(),
        self_second=None if self_second is None else self_second.detach(),
        edge_second=None if edge_second is None else edge_second.detach(),
    )


def _graph_first_order(
    f: ModelFn, x: Tensor, edge_index: Tensor, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """``(d f_i / d x_i (N, F), d f_i / d x_j (E, F))``: reverse mode over an output colouring."""
    n = x.shape[0]
    src, dst = edge_index
    out_col = distance2_coloring(edge_index.flip(0).cpu(), n).to(x.device)
    n_out = int(out_col.max()) + 1 if n else 0
    cot = torch.nn.functional.one_hot(out_col, n_out).to(x.dtype).T  # (C_out, N)
    with torch.enable_grad():
        _, pullback = vjp(lambda z: _outputs(f, z), x)[:2]
        g = vmap(lambda c: pullback(c)[0], chunk_size=chunk_size)(cot)  # (C_out, N, F)
    return g[out_col, torch.arange(n, device=x.device)], g[out_col[dst], src]


def _graph_second_order(
    f: ModelFn, x: Tensor, edge_index: Tensor, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """``(d2 f_i / d x_i d x_i (N, F, F), d2 f_i / d x_j d x_j (E, F, F))``: forward-over-
    forward products over an input colouring, one per colour and feature pair."""
    n, nf = x.shape
    src, dst = edge_index
    in_col = distance2_coloring(edge_index.cpu(), n).to(x.device)
    n_in = int(in_col.max()) + 1 if n else 0
    onehot = torch.nn.functional.one_hot(in_col, n_in).to(x.dtype)  # (N, C_in)
    eye_f = torch.eye(nf, dtype=x.dtype, device=x.device)
    t_c = onehot.T[:, None, :, None] * eye_f[None, :, None, :]  # (C_in, F, N, F)
    va = t_c[:, :, None].expand(n_in, nf, nf, n, nf).reshape(-1, n, nf)
    vb = t_c[:, None, :].expand(n_in, nf, nf, n, nf).reshape(-1, n, nf)

    def model(z: Tensor) -> Tensor:
        return _outputs(f, z)

    def fwd2(v: Tensor, w: Tensor) -> Tensor:
        result: Tensor = jvp(lambda z: jvp(model, (z,), (v,))[1], (x,), (w,))[1]
        return result

    with torch.enable_grad():
        d2 = vmap(fwd2, chunk_size=chunk_size)(va, vb).reshape(n_in, nf, nf, n)
    return d2[in_col, :, :, torch.arange(n, device=x.device)], d2[in_col[src], :, :, dst]


def graph_jacobian_dense(f: ModelFn, x: Tensor) -> Tensor:
    """Full Jacobian ``J[i, j, :] = d f_i / d x_j`` of a graph model, (N, N, F). O(N^2) memory.

    Reference for tests and for checking that a model's receptive field matches its graph.
    """
    _check_2d(x)
    with torch.enable_grad():
        result: Tensor = jacrev(lambda z: _outputs(f, z))(x.detach()).detach()
        return result


def graph_taylor_dense(f: ModelFn, x: Tensor, edge_index: Tensor) -> GraphTaylor:
    """First-order :class:`GraphTaylor` read off the dense Jacobian (exact, O(N^2))."""
    jac = graph_jacobian_dense(f, x)
    n = x.shape[0]
    idx = torch.arange(n, device=x.device)
    src, dst = edge_index.to(x.device)
    return GraphTaylor(
        self_first=jac[idx, idx], edge_first=jac[dst, src], self_second=None, edge_second=None
    )
