"""Dense float64 LRP reference (lives only here) and small stand-in models for the LRP tests.

``dense_lrp`` keeps a full (T, N, D) relevance tensor per program tensor and writes every rule
textbook style with explicit contributions ``z_jk = a_j w'_jk``; the aggregation is a dense
(N, N, C) matrix. It shares nothing with the engine except the recorded Program (what the
forward pass computed) and the Composite's choice of rule per layer. ``bench/lrp.py --dense``
imports it from here so the reference code exists once. A helper module, not a test module:
the test files import it (``tests/explain`` is on ``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from particlegraph.explain.lrp import Epsilon, Gamma, Tracer, ZPlus
from particlegraph.explain.lrp.program import Aggregate, Concat, Linear, PassThrough, Program
from particlegraph.explain.lrp.rules import Composite

# --- the reference ------------------------------------------------------------------------------


def modified_contributions(rule, c: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Rule-modified contributions and bias, re-derived here from the rule definitions.

    ``c`` (..., out, in) the contributions ``a_j w_jk``, ``b`` (out,) or broadcastable. The
    sign-aware rules act on contributions: z+ keeps ``max(c, 0)`` and drops the bias; gamma
    adds ``gamma max(c, 0)`` (``gamma min(c, 0)`` where the unmodified output is negative).
    """
    pos = torch.where(c > 0, c, 0.0)
    if isinstance(rule, ZPlus):
        return pos, torch.zeros_like(b)
    if isinstance(rule, Gamma):
        negative = (c.sum(-1) + b < 0)[..., None]  # z_k < 0: favour the negative contributions
        neg = torch.where(c < 0, c, 0.0)
        c_mod = c + rule.gamma * torch.where(negative, neg, pos)
        b_mod = b + rule.gamma * torch.where(negative[..., 0], b.clamp(max=0), b.clamp(min=0))
        return c_mod, b_mod
    assert type(rule) is Epsilon
    return c, b


def _fractions(z: Tensor, total: Tensor, eps: float) -> Tensor:
    """``z / (total + eps sign(total))`` with sign(0) = +1 and 0/0 := 0; z (..., J), total (...)."""
    sign = torch.where(total >= 0, 1.0, -1.0).to(total.dtype)
    den = total + eps * sign
    safe = torch.where(den == 0, torch.ones_like(den), den)
    return torch.where((den == 0)[..., None], 0.0, z / safe[..., None])


def dense_lrp(
    program: Program,
    output: int,
    index: int,
    targets: Tensor,
    composite: Composite,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Relevance (T, N, F) on the raw inputs and absorbed relevance (T,) — O(T N D) memory."""
    vals = [v.to(dtype) for v in program.values]
    n = vals[0].shape[0]
    t = len(targets)
    start = torch.zeros(t, n, vals[output].shape[1], dtype=dtype)
    start[torch.arange(t), targets, index] = vals[output][targets, index]
    rel: dict[int, Tensor] = {output: start}
    absorbed = torch.zeros(t, dtype=dtype)

    def add(tid: int, r: Tensor) -> None:
        rel[tid] = rel[tid] + r if tid in rel else r

    for op in reversed(program.ops):
        if op.output not in rel:
            continue
        r_out = rel.pop(op.output)
        if isinstance(op, Linear):
            rule = composite.rule_for(op.name, "linear")
            w = op.weight.to(dtype)
            b = torch.zeros(w.shape[0], dtype=dtype) if op.bias is None else op.bias.to(dtype)
            a = vals[op.input]
            z, b = modified_contributions(rule, a[:, None, :] * w[None], b)  # (N, out, in)
            frac = _fractions(z, z.sum(-1) + b, rule.eps)
            r_in = torch.einsum("noi,tno->tni", frac, r_out)
            absorbed += r_out.sum((1, 2)) - r_in.sum((1, 2))
            add(op.input, r_in)
        elif isinstance(op, PassThrough):
            d_in = vals[op.input].shape[1]
            cmap = torch.arange(d_in) if op.column_map is None else op.column_map
            r_in = torch.zeros(t, n, d_in, dtype=dtype)
            for c in range(r_out.shape[2]):
                r_in[:, :, cmap[c]] += r_out[:, :, c]
            add(op.input, r_in)
        elif isinstance(op, Concat):
            lo = 0
            for i in op.inputs:
                hi = lo + vals[i].shape[1]
                add(i, r_out[:, :, lo:hi])
                lo = hi
        elif isinstance(op, Aggregate):
            rule = composite.rule_for(op.name, "aggregation")
            u = vals[op.input]
            c = u.shape[1]
            w = op.weight.to(dtype).expand(-1, c)
            adj = torch.zeros(n, n, c, dtype=dtype)  # adj[i, j, c]: weight of j -> i
            adj.index_put_((op.dst, op.src), w, accumulate=True)
            z, _ = modified_contributions(
                rule, (adj * u[None]).permute(0, 2, 1), torch.zeros(c, dtype=dtype)
            )  # (N_i, C, N_j)
            frac = _fractions(z, z.sum(-1), rule.eps)
            r_in = torch.einsum("icj,tic->tjc", frac, r_out)
            absorbed += r_out.sum((1, 2)) - r_in.sum((1, 2))
            add(op.input, r_in)
        else:  # pragma: no cover
            raise TypeError(op)
    assert set(rel) <= {0}, f"relevance left at {set(rel)}"
    return rel.get(0, torch.zeros(t, n, vals[0].shape[1], dtype=dtype)), absorbed


# --- stand-in models ----------------------------------------------------------------------------


def random_graph(n: int, k: int, seed: int = 0) -> Tensor:
    """Fixed random graph (2, N k) [source, target]: each node receives from itself and k-1 others."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        others = [int(j) for j in torch.randperm(n, generator=g) if int(j) != i][: k - 1]
        rows.append([i, *others])
    return torch.stack([torch.tensor(rows).reshape(-1), torch.arange(n).repeat_interleave(k)])


class TinyGNN(nn.Module):
    """Small message-passing model on a fixed graph, written with plain torch ops.

    ``x`` (N, F) -> relu(lin0) -> L x [u = lin_u(h); m = AGG(u); h = act(lin_o(cat[h, m]))]
    -> out = head(cat[x, h]) with an optional second head ``head2(cat[h, out])``.
    ``mode``: sum / mean / max / gcn / sigmoid (edge weights sigmoid(q . (x_i - x_j)), fixed in LRP).
    """

    def __init__(self, f: int = 5, hidden: int = 8, layers: int = 2, mode: str = "sum",
                 bias: bool = True, edge_index: Tensor | None = None, batchnorm: bool = False,
                 act: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__()
        self.mode, self.edge_index = mode, edge_index
        self.lin0 = nn.Linear(f, hidden, bias=bias)
        self.bn = nn.BatchNorm1d(hidden) if batchnorm else None
        self.lin_u = nn.ModuleList(nn.Linear(hidden, hidden, bias=bias) for _ in range(layers))
        self.lin_o = nn.ModuleList(nn.Linear(2 * hidden, hidden, bias=bias) for _ in range(layers))
        self.head = nn.Linear(f + hidden, 3, bias=bias)
        self.head2 = nn.Linear(hidden + 3, 2, bias=bias)
        self.q = nn.Parameter(torch.randn(f))
        self.act = act if act is not None else nn.ReLU()

    def edge_weight(self, x: Tensor) -> Tensor | None:
        src, dst = self.edge_index
        if self.mode == "sigmoid":
            return torch.sigmoid((x[dst] - x[src]) @ self.q)
        return None

    def aggregate(self, u: Tensor, x: Tensor) -> Tensor:
        src, dst = self.edge_index
        n = u.shape[0]
        w = self.edge_weight(x)
        msg = u[src] if w is None else w[:, None] * u[src]
        if self.mode in ("sum", "sigmoid"):
            return torch.zeros_like(u).index_add(0, dst, msg)
        if self.mode == "mean":
            cnt = torch.bincount(dst, minlength=n).clamp(min=1).to(u.dtype)
            return torch.zeros_like(u).index_add(0, dst, msg) / cnt[:, None]
        if self.mode == "max":
            idx = dst[:, None].expand_as(msg)
            return torch.full_like(u, -torch.inf).scatter_reduce(0, idx, msg, "amax")
        if self.mode == "gcn":
            deg = torch.bincount(dst, minlength=n).to(u.dtype)
            norm = deg[src].rsqrt() * deg[dst].rsqrt()
            return torch.zeros_like(u).index_add(0, dst, norm[:, None] * msg)
        raise ValueError(self.mode)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.lin0(x)
        if self.bn is not None:
            h = self.bn(h)
        h = torch.relu(h)
        for lu, lo in zip(self.lin_u, self.lin_o, strict=True):
            h = self.act(lo(torch.cat([h, self.aggregate(lu(h), x)], 1)))
        out = self.head(torch.cat([x, h], 1))
        return out, self.head2(torch.cat([h, out], 1))

    def lrp_outputs(self, x: Tensor, batch: Tensor | None = None) -> dict[str, Tensor]:
        out, second = self(x, batch)
        return {"output": out, "second": second}

    def lrp_trace(self, tr: Tracer, x: Tensor, batch: Tensor | None) -> dict[str, int]:
        from particlegraph.explain.lrp import trace_message_passing

        mode = {"sigmoid": "sum"}.get(self.mode, self.mode)
        h = tr.module_linear("lin0", 0, self.lin0, self.bn)
        h = tr.activation("relu0", h, torch.relu)
        for i, (lu, lo) in enumerate(zip(self.lin_u, self.lin_o, strict=True)):
            u = tr.module_linear(f"b{i}.lin_u", h, lu)
            w = self.edge_weight(x)
            m = trace_message_passing(tr, f"b{i}.aggregate", u, self.edge_index, mode, w)
            h = tr.module_linear(f"b{i}.lin_o", tr.concat(f"b{i}.cat", [h, m]), lo)
            h = tr.activation(f"b{i}.act", h, self.act)
        out = tr.module_linear("head", tr.concat("skip", [0, h]), self.head)
        out2 = tr.module_linear("head2", tr.concat("head2_in", [h, out]), self.head2)
        return {"output": out, "second": out2}


def random_mlpf_input(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Random (N, 12) element features in the MLPF layout (towers and tracks)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g, dtype=dtype)
    is_track = torch.rand(n, generator=g) < 0.5
    x[:, 0] = torch.where(is_track, 2.0, 1.0).to(dtype)
    x[:, [1, 5, 6, 7]] = x[:, [1, 5, 6, 7]].abs() * 5
    x[~is_track, 8:] = 0
    return x
