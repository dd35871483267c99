"""Flipping curves and the model-randomisation test on toy models with known relevance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from particlegraph.errors import ConfigError
from particlegraph.explain.faithfulness import (
    cascading_layers,
    flipping_curve,
    randomization_test,
    spearman,
    unit_scores,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def grad_x_input(fn, x: torch.Tensor) -> np.ndarray:
    """Gradient x input of ``fn(x).sum()``: exact relevance for a linear model without bias."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return (grad * x).detach().numpy()


def test_feature_flipping_removes_the_known_feature_first(rng):
    x = torch.as_tensor(rng.uniform(0.5, 1.5, size=(20, 3)), dtype=torch.float64)
    weights = torch.tensor([0.5, 0.1, 5.0], dtype=torch.float64)

    def output_fn(inp: torch.Tensor) -> torch.Tensor:
        return inp @ weights  # (N,) one output per element

    scores = grad_x_input(output_fn, x)
    curve = flipping_curve(output_fn, x, scores, unit="feature", fractions=[0, 1 / 3, 2 / 3, 1])
    # Removing feature 2 (weight 5) first: drop = 5 * mean(x2), worked out by hand.
    assert curve.relevance[1] == pytest.approx(5.0 * float(x[:, 2].mean()))
    assert curve.relevance[2] == pytest.approx(float((x[:, 2] * 5.0 + x[:, 0] * 0.5).mean()))
    assert curve.relevance[0] == 0.0
    # Everything removed: both orders end at the same point.
    assert curve.relevance[-1] == pytest.approx(curve.random[-1])
    assert curve.auc_gap > 0
    d = curve.to_dict()
    assert d["auc_gap"] == pytest.approx(curve.auc_gap)
    assert len(d["fractions"]) == 4


def test_element_flipping_on_linear_message_passing_beats_random(rng):
    n = 30
    adjacency = torch.as_tensor(rng.uniform(0, 1, size=(n, n)) * (rng.uniform(size=(n, n)) < 0.2))
    adjacency.fill_diagonal_(1.0)
    w = torch.as_tensor(rng.uniform(0.1, 1.0, size=4))
    x = torch.as_tensor(rng.uniform(0.0, 2.0, size=(n, 4)))
    targets = torch.arange(5)

    def output_fn(inp: torch.Tensor) -> torch.Tensor:
        return (adjacency @ (inp @ w))[targets]  # aggregated messages of 5 target elements

    scores = grad_x_input(output_fn, x)
    curve = flipping_curve(output_fn, x, scores, unit="element", num_random=5, seed=1)
    # All contributions are positive, so greedy removal by exact relevance is optimal at every
    # step: it can never drop less than any other order.
    assert np.all(curve.relevance >= curve.random - 1e-9)
    assert curve.auc_gap > 0
    # The drop after removing everything equals the full output (zero baseline, no bias).
    assert curve.relevance[-1] == pytest.approx(float(output_fn(x).mean()))


def test_absolute_order_and_mean_baseline(rng):
    x = torch.as_tensor(rng.normal(size=(10, 2)))
    w = torch.tensor([-3.0, 0.2], dtype=torch.float64)

    def output_fn(inp: torch.Tensor) -> torch.Tensor:
        return inp @ w

    scores = grad_x_input(output_fn, x)
    curve = flipping_curve(
        output_fn, x, scores, unit="feature", fractions=[0, 0.5, 1], baseline="mean", by="absolute"
    )
    # Feature 0 has the largest |relevance|; replacing it by its mean leaves the mean output
    # unchanged for a linear model, so the drop is exactly zero.
    assert curve.relevance[1] == pytest.approx(0.0, abs=1e-12)
    assert curve.by == "absolute"


def test_cell_units_and_scores():
    s = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(unit_scores(s, "element"), [3.0, 12.0])
    np.testing.assert_allclose(unit_scores(s, "feature"), [3.0, 5.0, 7.0])
    np.testing.assert_allclose(unit_scores(s, "cell"), np.arange(6.0))
    x = torch.ones(2, 3, dtype=torch.float64)
    curve = flipping_curve(lambda inp: (inp * torch.as_tensor(s)).sum(), x, s, unit="cell",
                           fractions=[0, 1 / 6, 1])  # fmt: skip
    assert curve.relevance[1] == pytest.approx(5.0)  # the cell with score 5 goes first


def test_flipping_rejects_bad_inputs():
    x = torch.zeros(4, 3)
    with pytest.raises(ConfigError, match="same shape"):
        flipping_curve(lambda inp: inp.sum(), x, np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="baseline"):
        flipping_curve(lambda inp: inp.sum(), x, np.zeros((4, 3)), baseline="median")
    with pytest.raises(ConfigError, match="fractions"):
        flipping_curve(lambda inp: inp.sum(), x, np.zeros((4, 3)), fractions=[0.5, 0.2])
    with pytest.raises(ConfigError, match="unit"):
        flipping_curve(lambda inp: inp.sum(), x, np.zeros((4, 3)), unit="edge")


def test_spearman_matches_scipy_with_ties(rng):
    a = rng.integers(0, 5, size=40).astype(float)
    b = a + rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


@pytest.mark.filterwarnings("error")  # constant inputs give NaN, not scipy's warning
def test_spearman_ties_on_both_sides_and_degenerate_inputs(rng):
    a = rng.integers(0, 3, size=30)
    b = rng.integers(0, 4, size=30)
    # hand value: ranks of (1, 1, 2) are (1.5, 1.5, 3), of (3, 1, 1) are (3, 1.5, 1.5):
    # centred (-0.5, -0.5, 1) and (1, -0.5, -0.5): rho = -0.75 / 1.5 = -0.5
    assert spearman(np.array([1, 1, 2]), np.array([3, 1, 1])) == pytest.approx(-0.5)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(torch.as_tensor(a).reshape(5, 6), b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(spearman(np.arange(4.0), np.full(4, 2.0)))
    assert np.isnan(spearman(np.ones(3), np.ones(3)))
    assert np.isnan(spearman(np.array([1.0]), np.array([2.0])))
    with pytest.raises(ConfigError, match="equal size"):
        spearman(np.ones(3), np.ones(4))


def _toy_mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)
    )


def test_cascading_layers_top_first():
    assert cascading_layers(_toy_mlp()) == ["4", "2", "0"]


def test_randomization_test_decorrelates_and_keeps_model(rng):
    model = _toy_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.as_tensor(rng.normal(size=(50, 6)), dtype=torch.float32)

    def relevance_fn(m: nn.Module, inp: torch.Tensor) -> np.ndarray:
        return grad_x_input(m, inp)

    result = randomization_test(model, relevance_fn, x, seed=0)
    assert result.steps == ("trained", "4", "2", "0")
    assert result.spearman[0] == pytest.approx(1.0)
    assert result.spearman_abs[0] == pytest.approx(1.0)
    # With every layer re-initialised the relevance must have moved away from the original.
    assert result.spearman[-1] < 0.9
    assert result.spearman_abs[-1] < 0.9
    for p, q in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert result.to_dict()["steps"][0] == "trained"


def test_randomization_test_flags_a_model_independent_explanation(rng):
    x = torch.as_tensor(rng.normal(size=(50, 6)), dtype=torch.float32)
    result = randomization_test(_toy_mlp(), lambda m, inp: inp.numpy(), x)
    # An "explanation" that ignores the weights stays perfectly correlated: the test exposes it.
    np.testing.assert_allclose(result.spearman, 1.0)


def test_randomization_test_unknown_layer():
    with pytest.raises(ConfigError, match="not found"):
        randomization_test(_toy_mlp(), lambda m, inp: inp, torch.zeros(2, 6), layers=["head"])
