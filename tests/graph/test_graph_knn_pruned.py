"""The pruned exact kNN (graph/knn_pruned.py) gives the dense search's edges bit for bit."""

from __future__ import annotations

import pytest
import torch

import particlegraph.graph.knn as knn_module
import particlegraph.graph.knn_pruned as pruned_module
from particlegraph.graph.knn import knn_graph, knn_graph_bruteforce
from particlegraph.graph.knn_pruned import pruned_exact_event


def _dense(
    x: torch.Tensor, k: int, loop: bool = True, batch: torch.Tensor | None = None
) -> torch.Tensor:
    """The dense search alone (pruning switched off)."""
    old = knn_module.PRUNED_MIN_POINTS
    knn_module.PRUNED_MIN_POINTS = 1 << 62
    try:
        return knn_graph(x, k, batch, loop=loop)
    finally:
        knn_module.PRUNED_MIN_POINTS = old


def _pruned(x: torch.Tensor, k: int, loop: bool = True) -> torch.Tensor:
    found = pruned_exact_event(x, (x * x).sum(-1), 0, len(x), k, loop=loop)
    assert found is not None, "the pruned search gave up"
    return torch.stack(found)


@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize(("n", "dim", "k", "scale"), [(700, 4, 16, 1.0), (900, 3, 5, 30.0)])
def test_pruned_knn_equals_dense_search(loop: bool, n: int, dim: int, k: int, scale: float) -> None:
    g = torch.Generator().manual_seed(n)
    x = scale * torch.randn(n, dim, generator=g)
    x[: n // 3] *= 0.05  # a dense core and a sparse halo: unequal tiles and radii
    got = _pruned(x, k, loop)
    assert torch.equal(got, _dense(x, k, loop))  # same neighbours, same order, same targets
    assert got.shape == (2, n * k)
    # and the dense search itself is the textbook kNN (as sets; float64 distances)
    ref = knn_graph_bruteforce(x, k, loop=loop)
    assert {tuple(e) for e in got.T.tolist()} == {tuple(e) for e in ref.T.tolist()}


def test_pruned_knn_equals_dense_search_with_duplicated_points() -> None:
    """Exact ties (copies of a point) are searched densely, so topk's choice is the dense one."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 4, generator=g)
    x[400:500] = x[:100]  # 100 pairs
    x[600:640] = x[7]  # 41 copies of one point: more than k at distance 0
    for loop in (True, False):
        assert torch.equal(_pruned(x, 16, loop), _dense(x, 16, loop))


def test_pruned_knn_takes_balls_where_the_tree_list_is_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queries whose bound reaches past the tree's k + extra nearest get a ball query."""
    monkeypatch.setattr(pruned_module, "TREE_EXTRA", 0)  # every query is then a ball query
    monkeypatch.setattr(pruned_module, "MAX_LOOSE", 1.0)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(600, 4, generator=g)
    found = pruned_module._candidates(x.double().numpy(), 16, True, 1)
    assert found is not None and len(found[1]) == 600
    assert torch.equal(_pruned(x, 16), _dense(x, 16))


def test_pruned_knn_gives_up_where_it_cannot_vouch() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(600, 4, generator=g)
    sq = (x * x).sum(-1)
    bad = x.clone()
    bad[5, 2] = float("nan")
    assert pruned_exact_event(bad, (bad * bad).sum(-1), 0, 600, 16, loop=True) is None
    # far from the origin compared with the spacing: the float32 ranking is round-off
    far = 1e4 + 1e-2 * x
    assert pruned_exact_event(far, (far * far).sum(-1), 0, 600, 16, loop=True) is None
    assert pruned_exact_event(x[:100], sq[:100], 0, 100, 16, loop=True) is None  # too small
    assert pruned_exact_event(x, sq, 0, 600, 16, loop=True) is not None


def test_pruned_knn_checks_its_tile_against_the_dense_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BLAS whose tile product rounds differently from the dense block is caught."""
    real = pruned_module._search

    def other_rounding(
        c: torch.Tensor,
        sq: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor | None,
        kk: int,
        loop: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vals, nbr = real(c, sq, rows, cols, kk, loop)
        if cols is None:  # the dense rows: one value 1 ulp off
            vals[3, 5] = torch.nextafter(vals[3, 5], torch.tensor(float("inf")))
        return vals, nbr

    monkeypatch.setattr(pruned_module, "_search", other_rounding)
    x = torch.randn(600, 4, generator=torch.Generator().manual_seed(4))
    assert pruned_exact_event(x, (x * x).sum(-1), 0, 600, 16, loop=True) is None


def test_knn_graph_prunes_single_large_events_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """knn_graph: the pruned search for events from PRUNED_MIN_POINTS on, same graph."""
    calls: list[int] = []
    real = knn_module.pruned_exact_event

    def spy(x: torch.Tensor, sq: torch.Tensor, lo: int, hi: int, k: int, *, loop: bool):  # type: ignore[no-untyped-def]
        calls.append(hi - lo)
        return real(x, sq, lo, hi, k, loop=loop)

    monkeypatch.setattr(knn_module, "pruned_exact_event", spy)
    monkeypatch.setattr(knn_module, "PRUNED_MIN_POINTS", 500)
    monkeypatch.setattr(knn_module, "GROUP_POINTS", 100)
    g = torch.Generator().manual_seed(5)
    sizes = [30, 40, 650, 520]
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(sizes))
    x = torch.randn(int(sum(sizes)), 4, generator=g)
    got = knn_graph(x, 8, batch)
    assert calls == [650, 520]  # the two small events go to the masked dense group
    assert torch.equal(got, _dense(x, 8, batch=batch))
    assert knn_graph(x, 8, batch, chunk_size=None).shape == got.shape  # export: dense
    assert calls == [650, 520]
