"""Dense event graphs: the batched top-k kNN and the candidate -> padded-block path give the same
edges, adjacency and scores as the per-event graph builder and PyG's one-graph-at-a-time path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from particlegraph.graph.etaphi import knn_etaphi
from particlegraph.tasks.anomaly.dense import collate, dense_events, dense_graphs, knn_dense
from particlegraph.tasks.anomaly.graphs import Preprocessing, build_graphs
from particlegraph.tasks.anomaly.models import ModelConfig, build_model
from particlegraph.tasks.anomaly.samples import read_candidates
from particlegraph.tasks.anomaly.scores import score_events, score_graphs, score_one_by_one


def _padded(sizes: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Events of the given sizes on a coarse (eta, phi) grid (many equal distances, duplicate
    points, phi on both sides of the seam), padded: eta, phi (B, n), mask (B, n)."""
    g = torch.Generator().manual_seed(seed)
    n = max(sizes)
    eta = torch.randint(-3, 4, (len(sizes), n), generator=g).float() * 0.5
    phi = torch.randint(-6, 7, (len(sizes), n), generator=g).float() * (math.pi / 6)
    mask = torch.arange(n)[None, :] < torch.tensor(sizes)[:, None]
    return eta * mask, phi * mask, mask


@pytest.mark.parametrize("k", [1, 3, 8])
def test_knn_dense_equals_knn_etaphi_with_ties(k: int) -> None:
    sizes = [1, 2, 3, 4, 9, 40, 17]
    eta, phi, mask = _padded(sizes, seed=k)
    idx, valid = knn_dense(eta, phi, mask, k)
    b, n = mask.shape
    src = (idx + torch.arange(b).view(b, 1, 1) * n)[valid]  # padded flat node ids
    dst = torch.arange(b * n).view(b, n, 1).expand_as(idx)[valid]
    sizes_t = torch.tensor(sizes)
    batch = torch.repeat_interleave(torch.arange(b), sizes_t)
    ref = knn_etaphi(eta[mask], phi[mask], k, batch)  # nearest first, ties to the lower index
    start = torch.cumsum(sizes_t, 0) - sizes_t
    flat = batch * n + torch.arange(batch.numel()) - start[batch]  # compact id -> padded flat id
    assert torch.equal(src, flat[ref[0]]) and torch.equal(dst, flat[ref[1]])
    # every real node has min(k, size - 1) neighbours, never itself nor a padded node
    assert valid.sum().item() == sum(s * min(k, s - 1) for s in sizes)
    assert not (idx == torch.arange(n).view(1, n, 1))[valid].any()
    assert mask.gather(1, idx.view(b, -1)).view_as(idx)[valid].all()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("frame", ["lab", "event"])
def test_dense_events_equal_build_graphs(sample_dir, symmetric: bool, frame: str) -> None:
    c = read_candidates(sample_dir(n_events=25, seed=3))
    ref = dense_graphs(collate(build_graphs(c, symmetric=symmetric, frame=frame)))
    got = dense_events(c, symmetric=symmetric, frame=frame)
    assert torch.equal(got.mask, ref.mask)
    assert torch.equal(got.x, ref.x)
    assert torch.equal(torch.sort(got.edges).values, torch.sort(ref.edges).values)
    torch.testing.assert_close(got.a_hat, ref.a_hat, rtol=0, atol=1e-7)
    # GCN normalisation by hand for one node: a_hat[i, j] = 1 / sqrt(deg_i deg_j)
    adj = torch.zeros(got.a_hat.shape).view(-1)
    adj[got.edges] = 1.0
    deg = adj.view(got.a_hat.shape).sum(2) + 1.0
    n = got.mask.shape[1]
    e = int(got.edges[0])
    b, i, j = e // (n * n), e // n % n, e % n
    assert float(got.a_hat[b, i, j]) == pytest.approx(1.0 / math.sqrt(deg[b, i] * deg[b, j]))
    assert float(got.a_hat[b, i, i]) == pytest.approx(1.0 / float(deg[b, i]))


@pytest.mark.parametrize("name", ["gae-seed", "gae", "node-ae", "set-ae"])
def test_score_events_equals_one_graph_at_a_time(sample_dir, name: str) -> None:
    cfg = ModelConfig(name=name, hidden=16, latent=4, frame="event" if name == "set-ae" else "lab")
    c = read_candidates(sample_dir(n_events=30, seed=5))
    graphs = build_graphs(c, symmetric=cfg.use_symmetric, frame=cfg.frame)
    torch.manual_seed(0)
    model = build_model(cfg, Preprocessing.fit(torch.cat([g.x for g in graphs])))
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for g in graphs[:4]:
            model.loss(g.x, g.edge_index, torch.zeros(g.x.shape[0], dtype=torch.long))
    model.eval()
    got = score_events(model, c, batch_size=7)
    ref = score_one_by_one(model, graphs)
    assert got.columns.keys() == ref.columns.keys()
    for key in ref.columns:
        np.testing.assert_allclose(got.columns[key], ref.columns[key], rtol=1e-5, atol=1e-6)
    assert got.latent_summary is None or np.allclose(
        got.latent_summary, ref.latent_summary, rtol=1e-5, atol=1e-6
    )


def test_dense_events_rejects_unknown_frame(sample_dir) -> None:
    with pytest.raises(ValueError, match="frame"):
        dense_events(read_candidates(sample_dir(n_events=4)), frame="jet")


@pytest.mark.parametrize("name", ["gae-seed", "gae"])
def test_full_graphs_take_the_uniform_paths(sample_dir, name: str) -> None:
    """All graphs with 40 nodes (real events): x is only viewed, every graph has as many edges
    (directed kNN); the scores still equal one graph at a time."""
    cfg = ModelConfig(name=name, hidden=16, latent=4)
    c = read_candidates(sample_dir(n_events=60, seed=8))
    graphs = [g for g in build_graphs(c, symmetric=cfg.use_symmetric) if g.num_nodes == 40]
    assert len(graphs) >= 5
    gb = collate(graphs)
    dg = dense_graphs(gb)
    assert dg.x.data_ptr() == gb.x.data_ptr() and bool(dg.mask.all())
    torch.manual_seed(1)
    model = build_model(cfg, Preprocessing.fit(gb.x)).eval()
    got = score_graphs(model, graphs, batch_size=4)
    ref = score_one_by_one(model, graphs)
    np.testing.assert_allclose(got.columns["recon"], ref.columns["recon"], rtol=1e-5, atol=1e-6)


def test_events_without_candidates(sample_dir) -> None:
    """Empty events keep their row (score 0 for node models), alone in a batch or not."""
    c = read_candidates(sample_dir(n_events=6, seed=2))
    counts = np.diff(c.offsets)
    counts[[0, 3]] = 0  # drop the candidates of events 0 and 3
    keep = np.repeat(counts > 0, np.diff(c.offsets))
    empty = c._replace(
        **{f: getattr(c, f)[keep] for f in ("pt", "eta", "phi", "cls", "charge", "energy")},
        offsets=np.concatenate([[0], np.cumsum(counts)]),
    )
    for name in ("gae-seed", "node-ae"):
        cfg = ModelConfig(name=name, hidden=16, latent=4)
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        got = score_events(model, empty, batch_size=1)  # events 0 and 3 alone: n = 0 blocks
        ref = score_graphs(model, build_graphs(empty, symmetric=cfg.use_symmetric), batch_size=6)
        np.testing.assert_allclose(got.columns["recon"], ref.columns["recon"], rtol=1e-5, atol=1e-6)
        assert got.columns["recon"][0] == 0.0 and got.columns["recon"][3] == 0.0
