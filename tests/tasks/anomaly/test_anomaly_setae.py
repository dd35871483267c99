"""set-ae: dense dynamic EdgeConv against a per-node loop in float64, Chamfer by hand, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from particlegraph.tasks.anomaly.setae import DenseEdgeConv, chamfer


def _slow_edgeconv(conv: DenseEdgeConv, h: torch.Tensor) -> torch.Tensor:
    """One graph (n, C), textbook form: kNN by sorting distances, MLP([h_i, h_j - h_i]), max."""
    n = h.shape[0]
    out = []
    for i in range(n):
        d = [(float(torch.linalg.norm(h[j] - h[i])), j) for j in range(n) if j != i]
        nb = [j for _, j in sorted(d)[: conv.k]]
        msgs = [conv.lin2(torch.relu(conv.lin1(torch.cat([h[i], h[j] - h[i]])))) for j in nb]
        out.append(torch.stack(msgs).max(0).values)
    return torch.stack(out)


def test_dense_edgeconv_matches_the_textbook_loop_with_padding() -> None:
    torch.manual_seed(0)
    conv = DenseEdgeConv(3, 5, k=3).double()
    a, b = torch.randn(7, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    hd = torch.zeros(2, 7, 3, dtype=torch.float64)
    hd[0], hd[1, :4] = a, b
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0], mask[1, :4] = True, True
    out = conv(hd, mask)
    torch.testing.assert_close(out[0], _slow_edgeconv(conv, a))
    torch.testing.assert_close(out[1, :4], _slow_edgeconv(conv, b))
    # the 4-node graph alone gives the same (padding never a neighbour)
    torch.testing.assert_close(conv(b[None], torch.ones(1, 4, dtype=torch.bool))[0], out[1, :4])


def test_chamfer_by_hand_and_permutation_invariance() -> None:
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [9.0, 9.0]]])
    y = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])  # the third node is padding
    # x -> y: min |(0,0)-.|^2 = 1, |(1,0)-.|^2 = 0 -> mean 0.5; y -> x: 1, 0 -> 0.5
    assert float(chamfer(x, y, mask)[0]) == pytest.approx(1.0)
    perm = torch.tensor([1, 0, 2])
    assert float(chamfer(x[:, perm], y, mask)[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k >= 1"):
        DenseEdgeConv(2, 2, k=0)


def test_set_ae_scores_do_not_depend_on_the_batch(sample_dir) -> None:  # type: ignore[no-untyped-def]
    from particlegraph.tasks.anomaly.graphs import build_graphs
    from particlegraph.tasks.anomaly.models import ModelConfig, build_model
    from particlegraph.tasks.anomaly.samples import read_candidates
    from particlegraph.tasks.anomaly.scores import score_graphs, score_one_by_one

    graphs = build_graphs(read_candidates(sample_dir("b", 30)), symmetric=True, frame="event")
    torch.manual_seed(1)
    model = build_model(ModelConfig(name="set-ae", hidden=8, latent=3, edgeconv_k=4, frame="event"))
    a = score_graphs(model, graphs, batch_size=7)
    b = score_one_by_one(model, graphs)
    np.testing.assert_allclose(a.columns["recon"], b.columns["recon"], rtol=1e-5, atol=1e-6)
    assert a.latent_summary is not None and a.latent_summary.shape == (30, 6)
    loss = model.loss(
        graphs[0].x, graphs[0].edge_index, torch.zeros(graphs[0].num_nodes, dtype=torch.long)
    )
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
