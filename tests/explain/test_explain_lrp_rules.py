"""Rules, composite, BatchNorm folding, output parsing and error messages."""

from __future__ import annotations

import itertools

import pytest
import torch
from lrp_reference import random_mlpf_input
from lrp_toy import TOY_OUTPUTS, ToyGravNet, toy_gravnet
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
from particlegraph.explain.lrp.engine import propagate
from particlegraph.explain.lrp.program import Tracer
from particlegraph.explain.lrp.rules import Rule, as_composite, stabilize


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


def _one_linear(x: list[float], w: list[float], rule: Rule, b: float | None = None) -> torch.Tensor:
    """Relevance (F,) on the inputs of one Linear ``z = x . w + b`` explaining R = z."""
    dt = torch.float64
    tr = Tracer(torch.tensor([x], dtype=dt))
    bias = None if b is None else torch.tensor([b], dtype=dt)
    out = tr.linear("lin", 0, torch.tensor([w], dtype=dt), bias)
    rel = propagate(tr.program({"o": out}), out, 0, torch.tensor([0]), Composite(default=rule))
    return rel.to_dense()[0, 0]


def test_signed_inputs_hand_worked() -> None:
    """Inputs (-1, -1), weights (1, -1.2): c = (-1, 1.2), z = 0.2 (issue 8's example).

    Epsilon: (-1, 1.2). Gamma(0.25), sign-aware: c' = (-1, 1.5), z' = 0.5, R = c' 0.2 / 0.5 =
    (-0.4, 0.6) (the literal rule gave (5.0, -4.8)). z+: c+ = (0, 1.2), R = (0, 0.2).
    """
    eps = Epsilon(eps=0.0)
    r_eps = _one_linear([-1.0, -1.0], [1.0, -1.2], eps)
    r_gamma = _one_linear([-1.0, -1.0], [1.0, -1.2], Gamma(gamma=0.25, eps=0.0))
    r_zplus = _one_linear([-1.0, -1.0], [1.0, -1.2], ZPlus(eps=0.0))
    f64 = torch.float64
    assert torch.allclose(r_eps, torch.tensor([-1.0, 1.2], dtype=f64))
    assert torch.allclose(r_gamma, torch.tensor([-0.4, 0.6], dtype=f64))
    assert torch.allclose(r_zplus, torch.tensor([0.0, 0.2], dtype=f64))
    assert torch.equal(torch.sign(r_gamma), torch.sign(r_eps))
    for r in (r_eps, r_gamma, r_zplus):
        assert float(r.sum()) == pytest.approx(0.2)  # conserved: no bias, eps = 0


def test_gamma_negative_output_is_the_mirror_image() -> None:
    """Inputs (1, 1), weights (1, -1.2), bias -0.4: c = (1, -1.2), z = -0.6 < 0.

    Gamma(0.5) favours the negative contributions: c' = (1, -1.8), b' = -0.6, z' = -1.4,
    R = c' (-0.6) / (-1.4) = (3/7, -5.4/7). (The textbook W + gamma W+ gave z' = -0.1 and
    R = (9, -7.2): a sign flip on non-negative inputs too.) Epsilon: R = c, same signs.
    """
    r = _one_linear([1.0, 1.0], [1.0, -1.2], Gamma(gamma=0.5, eps=0.0), b=-0.4)
    assert torch.allclose(r, torch.tensor([3 / 7, -5.4 / 7], dtype=torch.float64))
    r_eps = _one_linear([1.0, 1.0], [1.0, -1.2], Epsilon(eps=0.0), b=-0.4)
    assert torch.equal(torch.sign(r), torch.sign(r_eps))


def _textbook(layers, x: torch.Tensor, rule: Rule, target: int) -> torch.Tensor:
    """Slow float64 loops over (k, j): sign-aware LRP through Linear -> tanh -> ... -> Linear.

    Written from the rule docstrings only (contributions c_kj = a_j w_kj; gamma adds
    gamma max(c, 0), or gamma min(c, 0) where z_k < 0; z+ keeps max(c, 0) and drops b).
    """
    acts = [x.double()]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w.T + b
        acts.append(z if i == len(layers) - 1 else torch.tanh(z))
    rel = torch.zeros_like(acts[-1])
    rel[target] = acts[-1][target]
    for i in reversed(range(len(layers))):
        w, b = layers[i]
        a = acts[i]
        r_in = torch.zeros_like(a)
        for k in range(w.shape[0]):
            c = [float(a[j] * w[k, j]) for j in range(w.shape[1])]
            bk, zk = float(b[k]), sum(c) + float(b[k])
            if isinstance(rule, ZPlus):
                c, bk = [max(v, 0.0) for v in c], 0.0
            elif isinstance(rule, Gamma):
                pick = min if zk < 0 else max
                c = [v + rule.gamma * pick(v, 0.0) for v in c]
                bk = bk + rule.gamma * pick(bk, 0.0)
            den = sum(c) + bk
            den = den + rule.eps * (1.0 if den >= 0 else -1.0)
            for j in range(w.shape[1]):
                r_in[j] += 0.0 if den == 0 else c[j] / den * float(rel[k])
        rel = r_in
    return rel


@pytest.mark.parametrize("rule", [Gamma(gamma=0.3, eps=1e-3), ZPlus(eps=1e-3), Epsilon(eps=1e-3)])
@pytest.mark.parametrize("compose", [True, False])
def test_sign_aware_rules_match_slow_textbook(rule: Rule, compose: bool) -> None:
    g = torch.Generator().manual_seed(30)
    dt = torch.float64
    dims = [5, 7, 6, 3]
    layers = [
        (torch.randn(o, i, generator=g, dtype=dt), torch.randn(o, generator=g, dtype=dt) * 0.5)
        for i, o in itertools.pairwise(dims)
    ]
    x = torch.randn(4, dims[0], generator=g, dtype=dt)  # signed inputs, signed hidden (tanh)
    tr = Tracer(x)
    h = 0
    for i, (w, b) in enumerate(layers):
        h = tr.linear(f"l{i}", h, w, b)
        if i < len(layers) - 1:
            h = tr.activation(f"a{i}", h, torch.tanh)
    program = tr.program({"o": h})
    rel = propagate(program, h, 1, torch.arange(4), Composite(default=rule), compose=compose)
    dense = rel.to_dense()  # (T, N, F): only the diagonal is non-zero (no message passing)
    for n in range(4):
        ref = _textbook(layers, x[n], rule, target=1)
        assert torch.allclose(dense[n, n], ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rule", [Gamma(gamma=0.4, eps=1e-6), ZPlus(eps=1e-6)])
def test_non_negative_inputs_unchanged_where_z_positive(rule: Rule) -> None:
    """On a >= 0 the sign-aware rules equal the textbook W' (old formula) wherever z_k >= 0."""
    g = torch.Generator().manual_seed(31)
    dt = torch.float64
    w = torch.randn(6, 5, generator=g, dtype=dt)
    b = torch.randn(6, generator=g, dtype=dt) * 0.3
    x = torch.rand(40, 5, generator=g, dtype=dt)  # non-negative inputs
    tr = Tracer(x)
    out = tr.linear("lin", 0, w, b)
    program = tr.program({"o": out})
    z = x @ w.T + b
    if isinstance(rule, Gamma):  # the old formula: W + gamma W+, b + gamma b+
        w_old, b_old = w + rule.gamma * w.clamp(min=0), b + rule.gamma * b.clamp(min=0)
    else:
        w_old, b_old = w.clamp(min=0), torch.zeros_like(b)
    for k in range(6):
        rows = (z[:, k] >= 0).nonzero()[:, 0]
        assert len(rows) > 5
        rel = propagate(program, out, k, rows, Composite(default=rule)).to_dense()
        zp = x[rows] @ w_old[k] + b_old[k]
        old = x[rows] * w_old[k] * (z[rows, k] / stabilize(zp, rule.eps))[:, None]
        assert torch.allclose(rel[torch.arange(len(rows)), rows], old, rtol=1e-9, atol=1e-12)


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
    model = toy_gravnet(seed=21, dtype=torch.float32)
    x = random_mlpf_input(20, seed=21, dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = list(model.modules())
    ref = model(x)
    with folded_batchnorm(model) as folded:
        assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
        out = folded(x)
        assert torch.allclose(out[0], ref[0], atol=1e-5)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(model.modules()) == modules_before  # the very same BatchNorm objects are back
    with pytest.raises(ConfigError, match="eval"), folded_batchnorm(model.train()):
        pass


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("class:c", OutputSpec("class", 2)),
        ("class:d", OutputSpec("class", 3)),
        ("CLASS:A", OutputSpec("class", 0)),
        ("class:3", OutputSpec("class", 3)),  # index form where the names are not numbers
        ("charge:+1", OutputSpec("charge", 2)),
        ("charge:1", OutputSpec("charge", 2)),  # alias
        ("charge:-1", OutputSpec("charge", 0)),
        ("pt", OutputSpec("regression", 0)),
        ("energy", OutputSpec("regression", 2)),
        ("regression:eta", OutputSpec("regression", 1)),
        ("output:7", OutputSpec("output", 7)),  # a head outside the grammar: index only
    ],
)
def test_parse_output(text: str, spec: OutputSpec) -> None:
    assert parse_output(text, TOY_OUTPUTS) == spec
    if spec.head != "output":
        assert parse_output(spec.label(TOY_OUTPUTS), TOY_OUTPUTS) == spec
    assert parse_output(str(spec)) == spec  # "head:index" without a grammar


@pytest.mark.parametrize(
    "text", ["class:e", "mass", "charge:2", "class:", ":1", "class:9", "charge:7"]
)
def test_parse_output_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_output(text, TOY_OUTPUTS)


def test_explain_event_rejects_bad_input() -> None:
    model = toy_gravnet(seed=22, dtype=torch.float32)
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

    class Twisted(ToyGravNet):
        def forward(self, x, batch=None):  # type: ignore[override]
            logits, charge, reg = super().forward(x, batch)
            return logits * 2, charge, reg

    torch.manual_seed(23)
    model = Twisted().eval()
    x = random_mlpf_input(10, seed=23, dtype=torch.float32)
    with pytest.raises(ConfigError, match="does not reproduce"):
        explain_event(model, x, output="class:d")


def test_trace_check_tolerates_a_few_elements() -> None:
    """A second GPU forward pass may flip a kNN near-tie for a few elements: not an error."""

    class OneOff(ToyGravNet):
        def forward(self, x, batch=None):  # type: ignore[override]
            logits, charge, reg = super().forward(x, batch)
            logits = logits.clone()
            logits[0] += 1.0
            return logits, charge, reg

    torch.manual_seed(24)
    model = OneOff().eval()
    x = random_mlpf_input(40, seed=24, dtype=torch.float32)
    rel = explain_event(model, x, output="class:d", targets=torch.tensor([5]))
    assert rel.num_pairs > 0
