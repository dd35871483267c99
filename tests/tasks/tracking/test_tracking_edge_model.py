"""Edge classifier: chunked inference (filter and network) equals the plain forward pass."""

from __future__ import annotations

import pytest
import torch

from particlegraph.tasks.tracking.edge_model import EdgeClassifier, EdgeModelConfig


def _hits(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    r = 0.03 + torch.rand(n, generator=g)
    phi = 6.28 * torch.rand(n, generator=g)
    z = torch.randn(n, generator=g)
    cells = torch.rand(n, 2, generator=g)
    return torch.cat([torch.stack([r, phi.cos(), phi.sin(), z], 1), cells], 1)


@pytest.mark.parametrize("chunk", [1, 7, 50, 1000])
def test_chunked_filter_and_network_equal_the_forward_pass(chunk):
    torch.manual_seed(0)
    model = EdgeClassifier(EdgeModelConfig(hidden=8, iterations=2, filter_hidden=16)).eval()
    x = _hits(30)
    ei = torch.randint(0, 30, (2, 50))
    model.set_standardization(x, ei)  # non-trivial means and widths
    with torch.no_grad():
        ref_filter = model.filter_logits(x, ei)
        ref = model(x, ei)
    assert torch.allclose(model.filter_logits_chunked(x, ei, chunk), ref_filter, atol=1e-5)
    assert torch.allclose(model.logits_chunked(x, ei, chunk), ref, atol=1e-5)


def test_chunked_filter_without_a_filter_keeps_every_edge():
    model = EdgeClassifier(EdgeModelConfig(hidden=4, iterations=1)).eval()
    x, ei = _hits(5), torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert torch.equal(model.filter_logits_chunked(x, ei), torch.zeros(3))


def test_edge_features_take_the_callers_eta_and_match_hand_values():
    from particlegraph.tasks.tracking.edge_model import edge_features, hit_eta

    # two hits at r = 1 m: z = 0 (eta 0) and z = sinh(1) (eta 1), the same azimuth
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.1752012, 0.0, 0.0]])
    ei = torch.tensor([[0], [1]])
    own = edge_features(x, ei)
    assert own[0, 3].item() == pytest.approx(1.0, abs=1e-6)  # deta
    assert torch.equal(edge_features(x, ei, hit_eta(x)), own)
    assert edge_features(x, ei, 2 * hit_eta(x))[0, 3].item() == pytest.approx(2.0, abs=1e-6)
