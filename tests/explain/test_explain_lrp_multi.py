"""Several output neurons explained together equal one-output explanations, output by output."""

from __future__ import annotations

import pytest
import torch
from lrp_reference import dense_lrp, random_mlpf_input
from lrp_toy import TOY_ALL, ToyGravNet, toy_gravnet

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import (
    Composite,
    Epsilon,
    Gamma,
    explain_event,
    explain_outputs,
    parse_output,
    trace_model,
)

#: The 8 outputs of the toy: 4 class scores, charge and 3 regressions.
ALL = TOY_ALL


def _toy(dtype: torch.dtype, aggr: str = "sum", seed: int = 0) -> ToyGravNet:
    return toy_gravnet(aggr, seed=seed, dtype=dtype)


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-5)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("aggr", ["sum", "max"])
def test_all_outputs_equal_one_output_runs(dtype: torch.dtype, tol: float, aggr: str) -> None:
    model = _toy(dtype, aggr)
    x = random_mlpf_input(40, seed=3).to(dtype)
    rule = Composite([("aggregation", Epsilon(eps=1e-3))], default=Gamma(gamma=0.25, eps=1e-3))
    multi = explain_outputs(model, x, ALL, composite=rule, chunk_size=9)
    assert multi.values.shape[1:] == (8, 12)
    assert multi.explained.shape == multi.absorbed.shape == (40, 8)
    assert multi.names[4] == "charge:+1" and multi.names[5] == "pt"
    for o, name in enumerate(ALL):
        one = explain_event(model, x, output=name, composite=rule, chunk_size=13)
        got = multi.output(o)
        scale = float(one.values.abs().max())
        assert float((got.to_dense() - one.to_dense()).abs().max()) <= tol * scale
        assert torch.allclose(got.explained, one.explained, rtol=0, atol=0)
        assert float((got.absorbed - one.absorbed).abs().max()) <= tol * float(
            one.explained.abs().max()
        )
        # conservation holds output by output
        assert float(got.conservation_error().max()) < (1e-8 if dtype == torch.float64 else 1e-3)


def test_subset_targets_layers_and_shared_trace() -> None:
    model = _toy(torch.float64)
    x = random_mlpf_input(30, seed=4).double()
    targets = torch.tensor([3, 17, 0, 29])
    program = trace_model(model, x)
    multi = explain_outputs(
        model, x, ["energy", "class:d"], targets=targets, program=program,
        record_layers=True, compose=False,
    )  # fmt: skip
    assert multi.layers is not None
    for o, name in enumerate(["energy", "class:d"]):
        one = explain_event(
            model, x, output=name, targets=targets, record_layers=True, compose=False
        )
        assert torch.allclose(multi.output(o).to_dense(), one.to_dense(), atol=1e-12)
        assert one.layers is not None
        for key, bal in one.layers.items():
            assert torch.allclose(multi.output(o).layers[key], bal, atol=1e-12)  # type: ignore[index]
    # a class logit's relevance never travels through the regression head
    assert float(multi.output(1).layers["reg_head.0"].abs().max()) == 0.0  # type: ignore[index]


def test_bad_outputs_are_refused() -> None:
    model = _toy(torch.float64)
    x = random_mlpf_input(10, seed=5).double()
    with pytest.raises(ConfigError, match="at least one"):
        explain_outputs(model, x, [])
    with pytest.raises(ConfigError, match="unknown"):
        explain_outputs(model, x, ["pt", "class:gluon"])
    multi = explain_outputs(model, x, ["pt"])
    with pytest.raises(ConfigError, match="out of range"):
        multi.output(1)


def test_small_node_batches_and_chunks_give_the_same_relevance(monkeypatch) -> None:
    from particlegraph.explain.lrp import compose, engine

    model = _toy(torch.float64)
    x = random_mlpf_input(35, seed=6).double()
    ref = explain_outputs(model, x, ALL[:5])
    monkeypatch.setattr(compose, "NODE_BATCH", 3)
    monkeypatch.setattr(engine, "FLUSH_MIN", 64)
    monkeypatch.setattr(engine, "FANOUT_MERGE_AT", 0)  # fan-out parts merged at every flush
    small = explain_outputs(model, x, ALL[:5], chunk_size=4)
    assert torch.allclose(small.absorbed, ref.absorbed, atol=1e-12)
    program = trace_model(model, x)
    rule = Composite()  # the default, epsilon 1e-6
    for o, name in enumerate(ALL[:5]):
        assert torch.allclose(small.output(o).to_dense(), ref.output(o).to_dense(), atol=1e-12)
        # and both against the dense reference, relevance and absorbed share
        spec = parse_output(name, model.lrp_output_names)
        dense, absorbed = dense_lrp(
            program, program.outputs[spec.head], spec.index, torch.arange(len(x)), rule
        )
        assert float((small.output(o).to_dense() - dense).abs().max()) < 1e-9 * float(
            dense.abs().max()
        )
        assert torch.allclose(small.absorbed[:, o], absorbed, rtol=1e-9, atol=1e-12)


def test_chain_sink_fast_path_matches_dense_reference(monkeypatch) -> None:
    """The chain sink (built only for several outputs with a sign-blind rule such as epsilon)
    against the dense float64 reference: relevance and absorbed share, output by output."""
    from particlegraph.explain.lrp import compose

    built = []
    real = compose._chain_sink
    monkeypatch.setattr(compose, "_chain_sink", lambda *a, **k: built.append(1) or real(*a, **k))
    model = _toy(torch.float64, "sum", seed=1)  # non-trivial BatchNorm affine parameters
    x = random_mlpf_input(30, seed=8).double()
    rule = Composite(default=Epsilon(eps=1e-2))
    outputs = ALL[:3] + ALL[5:8]  # 6 outputs (>= CHAIN_MIN_OUTPUTS): the chain path
    multi = explain_outputs(model, x, outputs, composite=rule, chunk_size=11)
    assert built, "the chain sink was not built: the test no longer covers it"
    program = trace_model(model, x)
    for o, name in enumerate(outputs):
        spec = parse_output(name, model.lrp_output_names)
        ref, absorbed = dense_lrp(
            program, program.outputs[spec.head], spec.index, torch.arange(len(x)), rule
        )
        got = multi.output(o)
        scale = float(ref.abs().max())
        assert float((got.to_dense() - ref).abs().max()) <= 1e-9 * scale
        assert float((got.absorbed - absorbed).abs().max()) <= 1e-9 * float(
            got.explained.abs().max()
        )
        assert float(got.conservation_error().max()) < 1e-8
