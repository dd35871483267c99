"""Per-graph scores: batched (dense, padded) == one graph at a time (sparse PyG path), dense GAE
score against a slow loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from particlegraph.tasks.anomaly.graphs import Preprocessing, build_graphs
from particlegraph.tasks.anomaly.models import ModelConfig, build_model
from particlegraph.tasks.anomaly.samples import read_candidates
from particlegraph.tasks.anomaly.scores import (
    Calibration,
    gae_terms,
    scatter_mean,
    score_graphs,
    score_one_by_one,
)


def _model(name: str, graphs):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    prep = Preprocessing.fit(torch.cat([g.x for g in graphs]))
    model = build_model(ModelConfig(name=name, hidden=16, latent=4), prep)
    # non-trivial BatchNorm statistics, then eval mode (per-graph independence)
    model.train()
    with torch.no_grad():
        for g in graphs[:4]:
            model.encode(g.x, g.edge_index)
    return model.eval()


@pytest.mark.parametrize("name", ["gae-seed", "gae", "node-ae"])
def test_batched_equals_one_at_a_time(sample_dir, name: str) -> None:
    cfg = ModelConfig(name=name)
    graphs = build_graphs(read_candidates(sample_dir(n_events=30)), symmetric=cfg.use_symmetric)
    model = _model(name, graphs)
    batched = score_graphs(model, graphs, batch_size=7)  # batches of mixed graphs
    single = score_one_by_one(model, graphs)
    assert batched.columns.keys() == single.columns.keys()
    for k in batched.columns:
        np.testing.assert_allclose(batched.columns[k], single.columns[k], rtol=1e-5, atol=1e-6)
    again = score_graphs(model, graphs, batch_size=1024)  # deterministic, batch-size independent
    for k in batched.columns:
        np.testing.assert_allclose(again.columns[k], batched.columns[k], rtol=1e-5, atol=1e-6)


def test_dense_gae_score_matches_a_slow_loop() -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 3, generator=g)
    ei = torch.tensor([[1, 2, 0, 4], [0, 0, 3, 3]])  # source -> target
    terms = gae_terms(z, ei, torch.zeros(5, dtype=torch.long), 1)
    edges = {(1, 0), (2, 0), (0, 3), (4, 3)}
    pos = np.mean([float(-torch.log(torch.sigmoid(z[j] @ z[i]))) for j, i in edges])
    neg = np.mean([float(-torch.log(1 - torch.sigmoid(z[j] @ z[i])))
                   for i in range(5) for j in range(5) if i != j and (j, i) not in edges])  # fmt: skip
    assert float(terms.score[0]) == pytest.approx(pos + neg, rel=1e-5)
    assert float(terms.pos[0]) == pytest.approx(pos, rel=1e-5)
    assert torch.allclose(terms.pos_edge_loss, F.softplus(-(z[ei[0]] * z[ei[1]]).sum(-1)))


def test_scatter_mean_weighted_and_empty_groups() -> None:
    v = torch.tensor([1.0, 3.0, 10.0])
    idx = torch.tensor([0, 0, 2])
    assert scatter_mean(v, idx, 3).tolist() == [2.0, 0.0, 10.0]
    assert scatter_mean(v, idx, 3, torch.tensor([3.0, 1.0, 1.0])).tolist() == [1.5, 0.0, 10.0]


def test_calibration_remedy_scores() -> None:
    rng = np.random.default_rng(0)
    summ = rng.normal(size=(500, 2))
    recon = rng.exponential(size=500)
    cal = Calibration.fit(recon, summ)
    # a point at the background mean is typical, one far away (either side) is not
    lat = cal.mahalanobis(np.array([[0.0, 0.0], [-6.0, 0.0], [6.0, 0.0]]))
    assert lat[0] < 0.2 and lat[1] > 5 and lat[2] > 5
    rem = cal.remedy(np.array([0.0, 100.0]), np.array([[0.0, 0.0], [0.0, 0.0]]))
    assert rem["combined"][1] > rem["combined"][0]
    again = Calibration.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.mahalanobis(summ[:5]), cal.mahalanobis(summ[:5]))
