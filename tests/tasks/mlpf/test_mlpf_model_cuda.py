from __future__ import annotations

import pytest
import torch

from particlegraph.graph.knn import knn_graph
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_knn_same_graph_on_cuda_and_cpu() -> None:
    x = torch.randn(3000, 4, generator=torch.Generator().manual_seed(0))
    batch = torch.cat([torch.zeros(1000), torch.ones(2000)]).long()
    cpu = knn_graph(x, 16, batch, chunk_size=512)
    gpu = knn_graph(x.cuda(), 16, batch.cuda(), chunk_size=512).cpu()
    as_set = lambda e: set(map(tuple, e.T.tolist()))  # noqa: E731
    overlap = len(as_set(cpu) & as_set(gpu)) / cpu.size(1)
    assert overlap > 0.999  # ties at equal distance may be broken differently


def test_mlpf_forward_backward_on_cuda_matches_cpu() -> None:
    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=32, k=8)).eval()
    x = torch.rand(500, 12) * 5
    x[:, 0] = torch.randint(1, 3, (500,)).float()
    ref = model(x)
    out = model.cuda()(x.cuda())
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-3)
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.class_head.parameters())
