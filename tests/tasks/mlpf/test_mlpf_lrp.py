"""The MLPF model's LRP adapter: its trace against the dense float64 reference, its output
grammar, its 12 outputs together, and the structure of its heads (the engine itself is tested on
a toy in tests/explain)."""

from __future__ import annotations

import sys
from dataclasses import astuple
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "explain"))
from lrp_reference import dense_lrp, random_mlpf_input

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import (
    Composite,
    Epsilon,
    Gamma,
    OutputSpec,
    explain_event,
    explain_outputs,
    parse_output,
    trace_model,
)
from particlegraph.explain.lrp.checks import conservation_summary, layer_balance
from particlegraph.tasks.mlpf.explain import output_column
from particlegraph.tasks.mlpf.model import MLPF, MLPF_OUTPUTS, MLPFConfig

EPSILON = Composite(default=Epsilon(eps=1e-3))
GAMMA = Composite([("aggregation", Epsilon(eps=1e-3))], default=Gamma(gamma=0.3, eps=1e-3))
#: The 12 outputs of the MLPF explainability study: 6 class scores, charge and 5 regressions.
ALL = (
    "class:none", "class:charged_hadron", "class:neutral_hadron", "class:photon",
    "class:electron", "class:muon", "charge:+1", "pt", "eta", "sin_phi", "cos_phi", "energy",
)  # fmt: skip


def _mlpf(aggr: str = "sum", kind: str = "gravnet", seed: int = 0, **kw) -> MLPF:
    torch.manual_seed(seed)
    cfg = MLPFConfig(
        kind=kind, hidden=8, num_blocks=2, k=4, space_dim=3, propagate_dim=5, aggr=aggr, **kw
    )
    model = MLPF(cfg).double().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics so folding matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        model.reg_head[-1].weight.normal_(0.0, 0.3)  # not the zero "no correction" start
    return model


def _compare(model: MLPF, x: torch.Tensor, output: str, composite: Composite) -> None:
    rel = explain_event(model, x, output=output, composite=composite, chunk_size=7)
    program = trace_model(model, x)
    spec = parse_output(output, MLPF_OUTPUTS)
    ref, absorbed = dense_lrp(
        program, program.outputs[spec.head], spec.index, torch.arange(len(x)), composite
    )
    scale = float(ref.abs().max())
    assert scale > 0 and float((rel.to_dense() - ref).abs().max()) < 1e-6 * scale
    assert float((rel.absorbed - absorbed).abs().max()) <= 1e-6 * float(absorbed.abs().max())


@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_mlpf_matches_dense_reference(aggr: str) -> None:
    x = random_mlpf_input(30, seed=1)
    _compare(_mlpf(aggr), x, "class:neutral_hadron", EPSILON)
    _compare(_mlpf(aggr), x, "energy", GAMMA)


def test_mlpf_charge_head_fcn_and_link_features_match_reference() -> None:
    x = random_mlpf_input(40, seed=5)
    x[:, 6] = x[:, 2] + 0.01  # tracks enter the calorimeter near the towers so links exist
    _compare(_mlpf(), x, "charge:+1", EPSILON)
    _compare(_mlpf(kind="fcn"), x, "pt", GAMMA)
    # link features enter as extra encoded columns mapped to the element's p|E column (5)
    model = _mlpf(link_features=True)
    assert (model.encoding(x)[:, -1] > 0).any()
    _compare(model, x, "class:neutral_hadron", GAMMA)


def test_mlpf_all_twelve_outputs_equal_one_output_runs() -> None:
    model = _mlpf()
    x = random_mlpf_input(30, seed=3)
    multi = explain_outputs(model, x, ALL, composite=EPSILON, chunk_size=9)
    assert multi.values.shape[1:] == (12, 12) and multi.names[6] == "charge:+1"
    for o, name in enumerate(ALL):
        one = explain_event(model, x, output=name, composite=EPSILON)
        scale = float(one.values.abs().max())
        assert float((multi.output(o).to_dense() - one.to_dense()).abs().max()) <= 1e-10 * scale
        assert float(multi.output(o).conservation_error().max()) < 1e-8


def test_mlpf_class_logit_never_passes_the_regression_head() -> None:
    model = _mlpf()
    x = random_mlpf_input(20, seed=9)
    both = explain_outputs(model, x, ["energy", "class:photon"], compose=False, record_layers=True)
    energy, photon = both.output(0), both.output(1)
    assert photon.layers is not None and float(photon.layers["reg_head.0"].abs().max()) == 0.0
    balance = layer_balance(energy)
    assert float(energy.layers["class_head.0"].abs().max()) > 0  # type: ignore[index]
    assert max(balance.values()) < 1e-10  # the regression credits the logits, conserved
    assert conservation_summary(energy)["max_target_rel_err"] < 1e-8


def test_mlpf_trace_check_catches_a_wrong_adapter() -> None:
    class Twisted(MLPF):
        def forward(self, x, batch=None):  # type: ignore[override]
            out = super().forward(x, batch)
            return out._replace(logits=out.logits * 2)

    torch.manual_seed(23)
    model = Twisted(MLPFConfig(hidden=8, k=4, propagate_dim=5)).eval()
    x = random_mlpf_input(10, seed=23, dtype=torch.float32)
    with pytest.raises(ConfigError, match="does not reproduce"):
        explain_event(model, x, output="class:photon")


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
def test_mlpf_output_grammar(text: str, spec: OutputSpec) -> None:
    assert parse_output(text, MLPF_OUTPUTS) == spec
    if spec.head != "output" and text.islower():
        assert parse_output(spec.label(MLPF_OUTPUTS), MLPF_OUTPUTS) == spec


@pytest.mark.parametrize("text", ["class:gluon", "mass", "charge:2", "class:", "class:9"])
def test_mlpf_output_grammar_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_output(text, MLPF_OUTPUTS)


def test_workflow_and_engine_share_one_grammar() -> None:
    # "class:2" was accepted by the engine and rejected by the explain workflow
    assert (
        output_column("class:2") == ("class", 2) == astuple(parse_output("class:2", MLPF_OUTPUTS))
    )
    assert output_column("charge:1") == ("charge", 2)
