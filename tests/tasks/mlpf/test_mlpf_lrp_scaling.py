"""The changes that keep MLPF's explanation linear in N give the old results bit for bit: the
pruned exact kNN in the model, the chunked rule preparation of the aggregations and the fan-out
sink built without its (N, C, F + 1) table (issue 20)."""

from __future__ import annotations

import pytest
import torch

import particlegraph.explain.lrp.compose as compose_module
import particlegraph.explain.lrp.engine as engine_module
import particlegraph.explain.lrp.pairs as pairs_module
import particlegraph.graph.knn as knn_module
from particlegraph.explain.lrp import Composite, Epsilon, Gamma, explain_outputs, trace_model
from particlegraph.explain.lrp.compose import _compose_local, _full
from particlegraph.explain.lrp.engine import _plan
from particlegraph.explain.lrp.pairs import Pairs
from particlegraph.explain.lrp.program import Aggregate
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

OUTPUTS = ("class:neutral_hadron", "charge:+1", "pt")
#: Twelve outputs: the chain sinks (from 4 outputs on) flush into the fan-out sink mid-flush.
TWELVE = (
    *(f"class:{i}" for i in range(6)), "charge:+1", "pt", "eta", "sin_phi", "cos_phi", "energy",
)  # fmt: skip
RULES = {
    "epsilon": Composite(default=Epsilon(eps=1e-6)),
    "gamma": Composite([("aggregation", Epsilon())], default=Gamma(gamma=0.25)),
}


def _model() -> MLPF:
    torch.manual_seed(0)
    cfg = MLPFConfig(hidden=16, num_blocks=2, k=16, space_dim=4, propagate_dim=8)
    return MLPF(cfg).eval()


def _event(n: int, seed: int = 0) -> torch.Tensor:
    """Random float32 elements in the MLPF layout (bench/lrp.py's events)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    is_track = torch.rand(n, generator=g) < 0.5
    x[:, 0] = torch.where(is_track, 2.0, 1.0)
    x[:, [1, 5, 6, 7]] = x[:, [1, 5, 6, 7]].abs() * 5
    x[~is_track, 8:] = 0
    return x


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert torch.equal(a.target, b.target) and torch.equal(a.source, b.source)
    assert torch.equal(a.values, b.values) and torch.equal(a.absorbed, b.absorbed)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_pruned_knn_gives_the_dense_graph_outputs_and_relevance(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    model, x = _model(), _event(700)
    used: list[bool] = []
    real = knn_module.pruned_exact_event

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real(*args, **kwargs)
        used.append(found is not None)
        return found

    monkeypatch.setattr(knn_module, "pruned_exact_event", spy)
    results = {}
    for name, min_points in (("dense", 1 << 62), ("pruned", 300)):
        monkeypatch.setattr(knn_module, "PRUNED_MIN_POINTS", min_points)
        with torch.no_grad():
            out = model(x)
        results[name] = (out, explain_outputs(model, x, OUTPUTS, composite=RULES[rule]))
    assert used and all(used)  # the pruned search ran (2 blocks, forward and trace) and held
    (out_d, rel_d), (out_p, rel_p) = results["dense"], results["pruned"]
    assert all(torch.equal(a, b) for a, b in zip(out_d, out_p, strict=True))
    _assert_same(rel_d, rel_p)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_chunked_rule_preparation_equals_one_pass(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    """Aggregations' messages in chunks of a few edges: the same denominators, bit for bit."""
    model, x = _model(), _event(300, seed=1)
    program = trace_model(model, x)
    agg = next(op for op in program.ops if isinstance(op, Aggregate))
    u = program.values[agg.input]
    one_pass = torch.zeros_like(u).index_add_(0, agg.dst, agg.weight * u[agg.src])
    monkeypatch.setattr(pairs_module, "EDGE_CHUNK_VALUES", 7 * u.shape[1] + 3)  # 7 edges
    chunked = pairs_module._edge_sum(agg, u, lambda us, e: agg.weight[e] * us)
    assert torch.equal(chunked, one_pass)
    rel_chunked = explain_outputs(model, x, OUTPUTS, composite=RULES[rule], program=program)
    monkeypatch.setattr(pairs_module, "EDGE_CHUNK_VALUES", 1 << 40)  # one chunk: the old pass
    _assert_same(
        explain_outputs(model, x, OUTPUTS, composite=RULES[rule], program=program), rel_chunked
    )


def test_fanout_sink_matrix_equals_the_table_it_replaced() -> None:
    """``w_e u_j M_j`` gathered per batch equals the old (N, C, F + 1) table of ``u_j M_j``
    gathered and multiplied by ``w_e``, bit for bit, and the hand-written formula."""
    model, x = _model(), _event(200, seed=2)
    program = trace_model(model, x)
    heads = [(program.outputs["class"], 2)]
    plan = _plan(program, heads, RULES["epsilon"], compose=True, record_layers=False)
    [(key, sink)] = [(k, s) for k, s in plan.sinks.items() if s.fanout is not None]
    idx = -key - 1
    op, prep = plan.ops[idx], plan.prepared[idx]
    assert isinstance(op, Aggregate) and prep is not None and sink.matrix is not None
    assert prep.src is not None and prep.rowptr is not None and prep.degree is not None
    # the old table, rebuilt from the composed matrices of the aggregated tensor
    u = program.values[op.input]
    nodes = torch.tensor([0, 5, 17, 199])
    got = sink.matrix(nodes)  # (b, C, k (F + 1))
    k, c = prep.degree, u.shape[1]
    mats = _compose_local(plan.ops, plan.prepared, _local_prefix(plan.ops), {op.input}, program)
    m_u = _full(mats[op.input], u)
    table = u[:, :, None] * m_u  # the old u_j M_j table (N, C, F + 1)
    eid = prep.rowptr[nodes][:, None] + torch.arange(k)
    old = table[prep.src[eid]].permute(0, 2, 1, 3) * prep.weight[eid][:, None, :, :]
    assert torch.equal(got, old.reshape(len(nodes), c, -1))
    # element 5's block of its first in-edge, by hand: w_e u_j M_j
    e = int(prep.rowptr[5])
    j = int(prep.src[e])
    by_hand = prep.weight[e, 0] * u[j][:, None] * m_u[j]
    assert torch.allclose(got[1].view(c, k, -1)[:, 0], by_hand, rtol=1e-6, atol=0)


def _local_prefix(ops: list) -> set[int]:  # type: ignore[type-arg]
    """Tensor ids that depend on one element only (as ``engine._plan`` computes them)."""
    local = {0}
    for op in ops:
        if not isinstance(op, Aggregate) and all(i in local for i in op.inputs):
            local.add(op.output)
    return local


def _paperish() -> MLPF:
    """Wide enough that the encoder's matrices are the largest ones (as in the paper model)."""
    torch.manual_seed(3)
    cfg = MLPFConfig(hidden=48, num_blocks=2, k=16, space_dim=4, propagate_dim=8)
    return MLPF(cfg).eval()


def test_flush_scratch_memory_reuse_equals_fresh_concatenation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many small flushes through each sink's reused scratch memory: the result of fresh
    concatenations, bit for bit (no contraction keeps a view of the scratch, and a chain
    sink's flush feeding another sink does not overwrite its own)."""
    model, x = _paperish(), _event(400, seed=4)
    program = trace_model(model, x)
    monkeypatch.setattr(engine_module, "FLUSH_MIN", 3000)
    monkeypatch.setattr(engine_module, "FLUSH_MAX", 3000)
    concats: list[int] = []
    real = engine_module._Collector._concat

    def spy(self, tid, bufs):  # type: ignore[no-untyped-def]
        concats.append(tid)
        return real(self, tid, bufs)

    monkeypatch.setattr(engine_module._Collector, "_concat", spy)
    for rule, outputs in (("epsilon", TWELVE), ("gamma", OUTPUTS)):
        reused = explain_outputs(
            model, x, outputs, composite=RULES[rule], program=program, chunk_size=5
        )
        assert len(concats) > len(set(concats))  # a sink's scratch served several flushes

        def fresh(self, tid, bufs):  # type: ignore[no-untyped-def]
            return Pairs(
                *(torch.cat(z) for z in zip(*((p.t, p.n, p.v) for p in bufs), strict=True))
            )

        with monkeypatch.context() as m:
            m.setattr(engine_module._Collector, "_concat", fresh)
            again = explain_outputs(
                model, x, outputs, composite=RULES[rule], program=program, chunk_size=5
            )
            _assert_same(again, reused)


def test_spare_matrices_are_reused_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead prefix matrix (the first encoder layer's) becomes a sink's table: same result."""
    model, x = _paperish(), _event(300, seed=5)
    program = trace_model(model, x)
    taken: list[bool] = []
    real = compose_module._take

    def spy(pool, numel):  # type: ignore[no-untyped-def]
        got = real(pool, numel)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(compose_module, "_take", spy)
    reused = explain_outputs(model, x, OUTPUTS, composite=RULES["epsilon"], program=program)
    assert any(taken)
    monkeypatch.setattr(compose_module, "_take", lambda pool, numel: None)
    _assert_same(
        explain_outputs(model, x, OUTPUTS, composite=RULES["epsilon"], program=program), reused
    )


def test_take_and_retire_spare_memory() -> None:
    small, big, huge = torch.zeros(10), torch.zeros(30), torch.zeros(100)
    pool = [huge, big, small]
    got = compose_module._take(pool, 16)  # big (30) is the smallest that holds 16, <= 32
    assert got is not None and got.numel() == 16 and got.data_ptr() == big.data_ptr()
    assert [id(p) for p in pool] == [id(huge), id(small)]
    assert compose_module._take(pool, 40) is None  # huge is more than twice 40: kept
    assert compose_module._take(pool, 60) is not None and [id(p) for p in pool] == [id(small)]
    # memory still used by a live matrix (an activation shares its input's) is not retired
    live = torch.zeros(2, 3, 4)
    mats = {7: (live, live[:, :, 3])}
    compose_module._retire(mats, live, pool)
    assert [id(p) for p in pool] == [id(small)]
    compose_module._retire({}, live, pool)
    compose_module._retire({}, live, pool)  # once only
    assert len(pool) == 2 and pool[1] is live
