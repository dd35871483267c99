"""The sparse LRP engine against the dense float64 reference, and its structural guarantees
(on the GravNet-like toy of ``lrp_toy`` and plain message-passing models; the MLPF adapter is
tested in tests/tasks/mlpf/test_mlpf_lrp.py)."""

from __future__ import annotations

import pytest
import torch
from lrp_reference import (
    TinyGNN,
    dense_lrp,
    random_graph,
    random_mlpf_input,
)
from lrp_toy import toy_gravnet

from particlegraph.explain.lrp import Composite, Epsilon, Gamma, ZPlus, explain_event, trace_model
from particlegraph.explain.lrp.checks import conservation_summary
from particlegraph.explain.lrp.engine import propagate
from particlegraph.explain.lrp.output import parse_output

RULES = {
    "epsilon": Composite(default=Epsilon(eps=1e-3)),
    "gamma": Composite([("aggregation", Epsilon(eps=1e-3))], default=Gamma(gamma=0.3, eps=1e-3)),
    "zplus": Composite([("*.lin_out", Gamma(gamma=0.5))], default=ZPlus(eps=1e-3)),
}


def _rel_err(fast: torch.Tensor, ref: torch.Tensor) -> float:
    return float((fast - ref).abs().max() / ref.abs().max().clamp(min=1e-300))


def _compare(model, x, output, composite, targets=None, chunk_size=None) -> None:
    rel = explain_event(
        model, x, output=output, composite=composite, targets=targets, chunk_size=chunk_size
    )
    program = trace_model(model, x)
    spec = parse_output(output, getattr(model, "lrp_output_names", None))
    tgt = torch.arange(len(x)) if targets is None else targets
    ref, absorbed = dense_lrp(program, program.outputs[spec.head], spec.index, tgt, composite)
    assert _rel_err(rel.to_dense(), ref) < 1e-6
    assert _rel_err(rel.absorbed, absorbed) < 1e-6
    # the reference is dense: no relevance outside the pairs the engine kept
    mask = torch.zeros(len(tgt), len(x), dtype=torch.bool)
    lookup = {int(t): i for i, t in enumerate(tgt)}
    mask[[lookup[int(t)] for t in rel.target], rel.source] = True
    assert float(ref[~mask].abs().sum()) == 0.0


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_gravnet_toy_matches_dense_reference(rule: str, aggr: str) -> None:
    model = toy_gravnet(aggr)
    x = random_mlpf_input(30, seed=1)
    for output in ("class:c", "energy"):
        _compare(model, x, output, RULES[rule], chunk_size=7)


def test_charge_head_and_no_message_passing_match_reference() -> None:
    x = random_mlpf_input(25, seed=2)
    _compare(toy_gravnet(), x, "charge:+1", RULES["epsilon"])
    _compare(toy_gravnet(blocks=0), x, "pt", RULES["gamma"])


@pytest.mark.parametrize("mode", ["sum", "mean", "max", "gcn", "sigmoid"])
def test_generic_aggregations_match_reference(mode: str) -> None:
    torch.manual_seed(3)
    graph = random_graph(30, 4, seed=3)
    model = TinyGNN(f=5, mode=mode, edge_index=graph, batchnorm=True).double().eval()
    x = torch.randn(30, 5, dtype=torch.float64)
    for rule in ("epsilon", "gamma", "zplus"):
        _compare(model, x, "output:1", RULES[rule])
        _compare(model, x, "second:0", RULES[rule])


def test_compose_equals_layer_by_layer() -> None:
    model = toy_gravnet("sum")
    x = random_mlpf_input(30, seed=4)
    fast = explain_event(model, x, output="eta", composite=RULES["zplus"])
    slow = explain_event(
        model, x, output="eta", composite=RULES["zplus"], compose=False, chunk_size=5
    )
    assert torch.equal(fast.target, slow.target) and torch.equal(fast.source, slow.source)
    assert _rel_err(fast.values, slow.values) < 1e-10
    assert _rel_err(fast.absorbed, slow.absorbed) < 1e-10


def test_conservation_per_target_and_per_layer() -> None:
    model = toy_gravnet("sum")
    x = random_mlpf_input(30, seed=5)
    rel = explain_event(
        model,
        x,
        output="class:d",
        composite=Epsilon(eps=1e-2),
        compose=False,
        record_layers=True,
    )
    # sum of input relevance + absorbed == explained output, per target
    assert float(rel.conservation_error().max()) < 1e-10
    assert rel.layers is not None and any("aggregate" in k for k in rel.layers)
    for name, bal in rel.layers.items():  # relevance in == passed down + absorbed, per layer
        assert torch.allclose(bal[:, 0], bal[:, 1] + bal[:, 2], rtol=1e-10, atol=1e-12), name
    # epsilon absorbs something, bias-free LRP-0 nearly nothing
    assert float(rel.absorbed.abs().max()) > 0


def test_receptive_field_is_k_hop() -> None:
    torch.manual_seed(6)
    n, k, layers = 40, 3, 2
    graph = random_graph(n, k, seed=6)
    model = TinyGNN(f=4, layers=layers, mode="sum", edge_index=graph).double().eval()
    x = torch.randn(n, 4, dtype=torch.float64)
    rel = explain_event(model, x, output="output:0")
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[graph[1], graph[0]] = True  # adj[i, j]: j sends to i (self loops included)
    reach = adj.clone()
    for _ in range(layers - 1):
        reach = (reach.double() @ adj.double()) > 0
    allowed = reach[rel.target, rel.source]
    assert bool(allowed.all())
    # and the sparse result has far fewer pairs than N^2 but reaches beyond one hop
    assert rel.num_pairs <= int(reach.sum())
    assert bool((~adj[rel.target, rel.source]).any())


def test_targets_subset_equals_rows_of_full() -> None:
    model = toy_gravnet("max")
    x = random_mlpf_input(30, seed=7)
    full = explain_event(model, x, output="class:b")
    subset = torch.tensor([17, 3, 29])
    part = explain_event(model, x, output="class:b", targets=subset)
    assert torch.equal(part.targets, subset)
    assert torch.allclose(part.to_dense(), full.to_dense()[subset], rtol=1e-12, atol=0)
    assert torch.allclose(part.explained, full.explained[subset])
    # entries sorted by target in the given order, then by source
    order = {17: 0, 3: 1, 29: 2}
    pos = torch.tensor([order[int(t)] for t in part.target])
    assert bool((pos[1:] >= pos[:-1]).all())
    src, vals = part.per_source(3)
    assert torch.equal(src, torch.sort(src).values) and vals.shape == (len(src), 12)


def test_chunking_does_not_change_result() -> None:
    model = toy_gravnet("mean")
    x = random_mlpf_input(30, seed=8)
    a = explain_event(model, x, output="energy", chunk_size=1)
    b = explain_event(model, x, output="energy", chunk_size=1000)
    assert torch.equal(a.source, b.source)
    assert torch.allclose(a.values, b.values, rtol=1e-12, atol=1e-15)
    # the breadth-first target order is an internal schedule: index order gives the same result
    program = trace_model(model, x)
    c = propagate(program, program.outputs["regression"], 2, torch.arange(30), Composite(),
                  chunk_size=4, locality=False)  # fmt: skip
    assert torch.equal(a.target, c.target) and torch.equal(a.source, c.source)
    assert torch.allclose(a.values, c.values, rtol=1e-12, atol=1e-15)


def test_class_logit_does_not_touch_regression_head() -> None:
    """Perturbing reg_head changes nothing in a class explanation, but changes an energy one."""
    model = toy_gravnet("sum")
    x = random_mlpf_input(20, seed=9)
    before_cls = explain_event(model, x, output="class:d").values
    before_reg = explain_event(model, x, output="energy").values
    with torch.no_grad():
        for p in model.reg_head.parameters():
            p.add_(0.3)
    assert torch.equal(explain_event(model, x, output="class:d").values, before_cls)
    assert not torch.allclose(explain_event(model, x, output="energy").values, before_reg)


def test_float32_batch_of_events_runs() -> None:
    model = toy_gravnet(seed=10, dtype=torch.float32, hidden=16)
    x = random_mlpf_input(50, seed=10, dtype=torch.float32)
    batch = torch.cat([torch.zeros(20), torch.ones(30)]).long()
    rel = explain_event(model, x, batch, output="class:c")
    assert rel.values.dtype == torch.float32
    # float32: per-target relative errors blow up where the explained value is near 0, so check
    # the event-level balance
    assert conservation_summary(rel)["event_rel_err"] < 1e-5
    # no relevance crosses event boundaries
    assert bool((batch[rel.target] == batch[rel.source]).all())


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_ragged_in_degrees_match_reference(mode: str) -> None:
    """Elements with different in-degrees (and one with none) take the general expansion path."""
    torch.manual_seed(15)
    graph = random_graph(30, 5, seed=15)
    keep = (torch.arange(graph.shape[1]) % 3 != 1) & (graph[1] != 7)
    model = TinyGNN(f=5, mode=mode, edge_index=graph[:, keep]).double().eval()
    x = torch.randn(30, 5, dtype=torch.float64)
    _compare(model, x, "output:0", RULES["epsilon"], chunk_size=4)
    _compare(model, x, "second:1", RULES["gamma"])
