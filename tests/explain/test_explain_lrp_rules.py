"""Rules, composite, BatchNorm folding, output parsing and error messages."""

from __future__ import annotations

from dataclasses import astuple

import pytest
import torch
from lrp_reference import random_mlpf_input
from torch import nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import (
    Composite,
    Epsilon,
    Gamma,
    OutputSpec,
    ZPlus,
    explain_event,
    fold_linear_bn,
    folded_batchnorm,
    parse_output,
    rule_from_name,
)
from particlegraph.explain.lrp.rules import as_composite, stabilize
from particlegraph.tasks.mlpf.explain import output_column
from particlegraph.tasks.mlpf.model import MLPF, MLPF_OUTPUTS, MLPFConfig


def test_rule_modifications_by_hand() -> None:
    w = torch.tensor([[1.0, -2.0]])
    b = torch.tensor([-0.5])
    gw, gb = Gamma(gamma=0.5).modify(w, b)
    assert torch.equal(gw, torch.tensor([[1.5, -2.0]])) and torch.equal(gb, torch.tensor([-0.5]))
    zw, zb = ZPlus().modify(w, b)
    assert torch.equal(zw, torch.tensor([[1.0, 0.0]])) and zb is None
    ew, eb = Epsilon().modify(w, b)
    assert ew is w and eb is b
    assert torch.equal(
        stabilize(torch.tensor([0.0, -1.0, 2.0]), 0.1), torch.tensor([0.1, -1.1, 2.1])
    )


def test_composite_first_match_wins_and_kinds() -> None:
    comp = Composite(
        [("encoder.*", Gamma(gamma=0.1)), ("aggregation", ZPlus()), ("*", Epsilon(eps=0.2))]
    )
    assert comp.rule_for("encoder.0", "linear") == Gamma(gamma=0.1)
    assert comp.rule_for("blocks.0.aggregate", "aggregation") == ZPlus()
    assert comp.rule_for("class_head.3", "linear") == Epsilon(eps=0.2)
    assert Composite().rule_for("anything", "linear") == Epsilon(eps=1e-6)
    assert as_composite("gamma").default == Gamma()
    assert rule_from_name("epsilon", eps=0.25) == Epsilon(eps=0.25)


def test_bad_rules_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="eps"):
        Epsilon(eps=-1.0)
    with pytest.raises(ConfigError, match="gamma"):
        Gamma(gamma=-0.1)
    with pytest.raises(ConfigError, match="unknown LRP rule"):
        rule_from_name("alpha-beta")
    with pytest.raises(ConfigError, match="pattern, Rule"):
        Composite([("x", "epsilon")])  # type: ignore[list-item]


def test_fold_linear_bn_equals_eval_forward() -> None:
    torch.manual_seed(20)
    lin, bn = nn.Linear(4, 3), nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    w, b = fold_linear_bn(lin, bn)
    x = torch.randn(5, 4)
    assert torch.allclose(x @ w.T + b, bn(lin(x)), atol=1e-6)


def test_folded_batchnorm_restores_model_exactly() -> None:
    torch.manual_seed(21)
    model = MLPF(MLPFConfig(hidden=8, k=4, propagate_dim=5)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    x = random_mlpf_input(20, seed=21, dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = list(model.modules())
    ref = model(x)
    with folded_batchnorm(model) as folded:
        assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
        out = folded(x)
        assert torch.allclose(out.logits, ref.logits, atol=1e-5)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(model.modules()) == modules_before  # the very same BatchNorm objects are back
    with pytest.raises(ConfigError, match="eval"), folded_batchnorm(model.train()):
        pass


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("class:neutral_hadron", OutputSpec("class", 2)),
        ("class:photon", OutputSpec("class", 3)),
        ("CLASS:Muon", OutputSpec("class", 5)),
        ("charge:+1", OutputSpec("charge", 2)),
        ("charge:-1", OutputSpec("charge", 0)),
        ("pt", OutputSpec("regression", 0)),
        ("eta", OutputSpec("regression", 1)),
        ("sin_phi", OutputSpec("regression", 2)),
        ("cos_phi", OutputSpec("regression", 3)),
        ("energy", OutputSpec("regression", 4)),
        ("output:7", OutputSpec("output", 7)),
    ],
)
def test_parse_output(text: str, spec: OutputSpec) -> None:
    assert parse_output(text, MLPF_OUTPUTS) == spec
    if spec.head != "output" and text.islower():
        assert parse_output(spec.label(MLPF_OUTPUTS), MLPF_OUTPUTS) == spec


@pytest.mark.parametrize("text", ["class:gluon", "mass", "charge:2", "class:", "class:9"])
def test_parse_output_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_output(text, MLPF_OUTPUTS)


def test_workflow_and_engine_share_one_grammar() -> None:
    # "class:2" was accepted by the engine and rejected by the explain workflow
    assert (
        output_column("class:2") == ("class", 2) == astuple(parse_output("class:2", MLPF_OUTPUTS))
    )
    assert output_column("charge:1") == ("charge", 2)


def test_explain_event_rejects_bad_input() -> None:
    torch.manual_seed(22)
    model = MLPF(MLPFConfig(hidden=8, k=4, propagate_dim=5)).eval()
    x = random_mlpf_input(10, seed=22, dtype=torch.float32)
    with pytest.raises(ConfigError, match="needs an output"):
        explain_event(model, x)
    with pytest.raises(ConfigError, match="duplicate"):
        explain_event(model, x, output="pt", targets=torch.tensor([1, 1]))
    with pytest.raises(ConfigError, match="element ids"):
        explain_event(model, x, output="pt", targets=torch.tensor([10]))
    with pytest.raises(ConfigError, match="no output"):
        explain_event(model, x, output="output:0")
    with pytest.raises(ConfigError, match="no LRP adapter"):
        explain_event(nn.Linear(12, 2), x, output="output:0")
    with pytest.raises(ConfigError, match="cannot trace"):
        explain_event(nn.Sequential(nn.Linear(12, 4), nn.LayerNorm(4)), x, output="output:0")
    with pytest.raises(ConfigError, match="cannot trace"):  # parameter-free, not element-wise
        explain_event(nn.Sequential(nn.Linear(12, 4), nn.Softmax(dim=1)), x, output="output:0")
    rel = explain_event(model, x, output="pt", targets=torch.tensor([4]))
    with pytest.raises(ConfigError, match="not explained"):
        rel.per_source(3)
    assert model.training is False


def test_trace_check_catches_a_wrong_adapter() -> None:
    """If the model computes something the adapter does not know, tracing refuses."""

    class Twisted(MLPF):
        def forward(self, x, batch=None):  # type: ignore[override]
            out = super().forward(x, batch)
            return out._replace(logits=out.logits * 2)

    torch.manual_seed(23)
    model = Twisted(MLPFConfig(hidden=8, k=4, propagate_dim=5)).eval()
    x = random_mlpf_input(10, seed=23, dtype=torch.float32)
    with pytest.raises(ConfigError, match="does not reproduce"):
        explain_event(model, x, output="class:photon")


def test_trace_check_tolerates_a_few_elements() -> None:
    """A second GPU forward pass may flip a kNN near-tie for a few elements: not an error."""

    class OneOff(MLPF):
        def forward(self, x, batch=None):  # type: ignore[override]
            out = super().forward(x, batch)
            logits = out.logits.clone()
            logits[0] += 1.0
            return out._replace(logits=logits)

    torch.manual_seed(24)
    model = OneOff(MLPFConfig(hidden=8, k=4, propagate_dim=5)).eval()
    x = random_mlpf_input(40, seed=24, dtype=torch.float32)
    rel = explain_event(model, x, output="class:photon", targets=torch.tensor([5]))
    assert rel.num_pairs > 0
