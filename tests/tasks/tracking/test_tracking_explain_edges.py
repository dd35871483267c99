"""Explanation of one edge score of the default pipeline: gradient x input and LRP side by side
(the shipped pretrained run on a small simulated event)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tracking_events import write_events

from particlegraph.tasks.tracking.edge_model import EDGE_FEATURES, NODE_FEATURES
from particlegraph.tasks.tracking.explain_edges import (
    explain_edge_score,
    lrp_relevance,
    lrp_section,
)
from particlegraph.tasks.tracking.learned import load_layerpair_run

PRETRAINED = "pretrained:ttbar_pu50"


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("explain_edges")
    write_events(root / "data", 1, 15)
    res = explain_edge_score(PRETRAINED, root / "data", root / "out")
    return res, root


def test_gradient_keys_stay_and_lrp_is_added(explained, assert_png) -> None:
    res, root = explained
    on_disk = json.loads((root / "out" / "explain.json").read_text())
    assert_png(root / "out" / "explain_display.png")
    assert on_disk["method"] == "gradient_x_input" and on_disk["true_edge"] is True
    for key in ("event_id", "edge", "hits", "score", "node_relevance_share_on_particle",
                "node_relevance_share_on_edge_hits", "node_feature_relevance",
                "edge_feature_relevance_own_edge", "top_hits", "logit"):  # fmt: skip
        assert key in on_disk, key
    lrp = on_disk["lrp"]
    assert lrp["method"] == "lrp_epsilon"
    assert list(lrp["node_feature_relevance"]) == list(NODE_FEATURES)
    assert list(lrp["edge_feature_relevance"]) == list(EDGE_FEATURES)
    # the same logit explained twice (float32 forward vs the float64 walk)
    assert lrp["logit"] == pytest.approx(res["logit"], rel=1e-4, abs=1e-4)


def test_lrp_section_conserves_and_points_at_the_edge(explained) -> None:
    res, _ = explained
    lrp = res["lrp"]
    assert lrp["conservation_rel_err"] < 1e-9
    total = lrp["hit_relevance_total"] + lrp["edge_relevance_total"] + lrp["absorbed"]
    assert total == pytest.approx(lrp["logit"], rel=1e-9)
    assert sum(lrp["node_feature_relevance"].values()) == pytest.approx(lrp["hit_relevance_total"])
    assert 0 < lrp["node_relevance_share_on_edge_hits"] <= 1
    assert 0 < lrp["node_relevance_share_on_particle"] <= 1
    assert lrp["receptive_field"]["edges"] >= 1 and lrp["receptive_field"]["hits"] >= 2
    assert 0 < lrp["edge_relevance_share_on_own_edge"] <= 1
    listed = {int(h): r for h, r in lrp["hit_relevance"]}
    top = lrp["top_hits"][0]
    assert listed[top["hit"]] == pytest.approx(top["relevance"])
    assert all(abs(r) >= 1e-3 * abs(top["relevance"]) for r in listed.values())


def test_lrp0_is_gradient_x_input(explained) -> None:
    """A ReLU network: LRP-0 equals gradient x input (biases or not), so with eps = 0 the two
    sections agree up to the float32 gradient's round-off."""
    _, root = explained
    res = explain_edge_score(PRETRAINED, root / "data", root / "out0", eps=0.0, plots=False)
    grad, lrp = res["node_feature_relevance"], res["lrp"]["node_feature_relevance"]
    scale = max(abs(v) for v in grad.values())
    assert res["lrp"]["eps"] == 0.0
    assert list(lrp.values()) == pytest.approx(list(grad.values()), abs=1e-4 * scale)
    own_g = res["edge_feature_relevance_own_edge"]
    own_l = res["lrp"]["edge_feature_relevance_own_edge"]
    assert list(own_l.values()) == pytest.approx(list(own_g.values()), abs=1e-4 * scale)


@pytest.mark.parametrize("eps", [1e-6, 0.5])
def test_lrp_section_matches_a_direct_walk(eps: float) -> None:
    """lrp_section's numbers are the engine's program walk, on a random graph and the shipped
    model; a larger eps absorbs more and still conserves."""
    from particlegraph.explain.lrp import Epsilon, explain_edges

    model = load_layerpair_run(PRETRAINED).model
    g = torch.Generator().manual_seed(0)
    n, e = torch.randn(12, 7, generator=g), torch.randn(30, 7, generator=g)
    ei = torch.randint(0, 12, (2, 30), generator=g)
    pid = torch.randint(0, 3, (12,), generator=g)
    same = np.zeros(30, dtype=bool)
    with torch.no_grad():
        rel, seconds = lrp_relevance(model.gnn, n, ei, e, 4, eps)
        sec = lrp_section(rel, ei, pid, same, eps, seconds)
    ref = explain_edges(model.gnn.double(), n.double(), ei, e.double(), [4], Epsilon(eps=eps))
    model.gnn.float()
    assert sec["eps"] == eps and sec["conservation_rel_err"] < 1e-9
    assert sec["absorbed"] == pytest.approx(float(ref.absorbed[0]), rel=1e-9, abs=1e-12)
    edge = ref.edge_dense()[0, 4].tolist()
    assert list(sec["edge_feature_relevance_own_edge"].values()) == pytest.approx(
        edge, rel=1e-9, abs=1e-12
    )
