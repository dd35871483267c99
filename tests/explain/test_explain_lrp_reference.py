"""Tests of the dense float64 LRP reference itself (hand-computed values) and of the engine against it."""

from __future__ import annotations

import pytest
import torch
from lrp_reference import (
    dense_lrp,
)

from particlegraph.explain.lrp import Epsilon, Tracer
from particlegraph.explain.lrp.rules import Composite

# --- tests of the reference itself (hand-computed values) ----------------------------------------


def test_reference_linear_hand_value() -> None:
    """One linear layer y = 2 a0 - a1 + 1 at a = (1, 3): y = 0 -> use eps; check by hand."""
    tr = Tracer(torch.tensor([[1.0, 3.0]], dtype=torch.float64))
    y = tr.linear(
        "lin",
        0,
        torch.tensor([[2.0, -1.0]], dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
    )
    program = tr.program({"output": y})
    # y = 2 - 3 + 2 = 1 = R; den = 1 + eps = 1.5: R_0 = 2 / 1.5, R_1 = -3 / 1.5, absorbed = (2 + eps) / 1.5
    rel, absorbed = dense_lrp(program, y, 0, torch.tensor([0]), Composite(default=Epsilon(eps=0.5)))
    assert torch.allclose(rel[0, 0], torch.tensor([2 / 1.5, -3 / 1.5], dtype=torch.float64))
    assert torch.allclose(absorbed, torch.tensor([2.5 / 1.5], dtype=torch.float64))


def test_reference_aggregation_hand_value() -> None:
    """Node 0 receives 0.5 u1 + 1.0 u0 with u = (2, 4): out = 4, relevance 2/4 and 2/4 of 4."""
    tr = Tracer(torch.tensor([[2.0], [4.0]], dtype=torch.float64))
    m = tr.aggregate(
        "agg",
        0,
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        torch.tensor([1.0, 0.5], dtype=torch.float64),
    )
    program = tr.program({"output": m})
    rel, absorbed = dense_lrp(program, m, 0, torch.tensor([0]), Composite(default=Epsilon(eps=0.0)))
    assert torch.allclose(rel[0, :, 0], torch.tensor([2.0, 2.0], dtype=torch.float64))
    assert float(absorbed[0]) == pytest.approx(0.0)
