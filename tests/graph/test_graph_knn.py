from __future__ import annotations

import pytest
import torch

from particlegraph.graph.knn import binned_knn_event, knn_graph, knn_graph_bruteforce, morton_order


def _as_sets(edge_index: torch.Tensor, n: int) -> list[set[int]]:
    out: list[set[int]] = [set() for _ in range(n)]
    for s, t in edge_index.T.tolist():
        out[t].add(s)
    return out


@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 7, 64])
def test_knn_matches_bruteforce_with_batches(loop: bool, chunk_size: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(130, 4, generator=g)
    batch = torch.cat([torch.zeros(50), torch.ones(3), torch.full((77,), 2)]).long()
    fast = knn_graph(x, 5, batch, loop=loop, chunk_size=chunk_size)
    slow = knn_graph_bruteforce(x, 5, batch, loop=loop)
    assert _as_sets(fast, 130) == _as_sets(slow, 130)
    # never an edge across events
    assert bool((batch[fast[0]] == batch[fast[1]]).all())


def test_knn_small_event_gets_all_its_points_and_self_first() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    ei = knn_graph(x, 16, loop=True)
    assert ei.shape == (2, 9)
    # neighbours of each target are ordered by distance; the point itself comes first
    assert ei[0, ::3].tolist() == [0, 1, 2]
    # hand-computed: the 2 nearest of point 2 (x=3) are itself and point 1 (x=1)
    ei2 = knn_graph(x, 2, loop=True)
    assert _as_sets(ei2, 3)[2] == {2, 1}


def test_knn_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(torch.randn(4, 2), 0)
    with pytest.raises(ValueError, match="sorted"):
        knn_graph(torch.randn(3, 2), 1, torch.tensor([1, 0, 0]))


def test_knn_groups_and_row_chunks_match_bruteforce(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small events grouped into masked blocks, big ones split into row chunks: same graph."""
    import particlegraph.graph.knn as knn_module

    monkeypatch.setattr(knn_module, "GROUP_POINTS", 40)
    monkeypatch.setattr(knn_module, "BLOCK_ENTRIES", 600)  # forces row chunks of the 60-point event
    sizes = [5, 12, 20, 60, 8, 9]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    x = torch.randn(int(batch.numel()), 3, generator=torch.Generator().manual_seed(3))
    assert len(knn_module._event_groups([0, 5, 17, 37, 97, 105, 114])) == 3
    fast = knn_graph(x, 6, batch)
    slow = knn_graph_bruteforce(x, 6, batch)
    assert _as_sets(fast, x.size(0)) == _as_sets(slow, x.size(0))
    assert fast.size(1) == 5 * 5 + 6 * (len(batch) - 5)  # the 5-point event has only 5 neighbours


def _clustered(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(max(1, n // 40), 4, generator=g)
    pick = torch.randint(0, centers.size(0), (n,), generator=g)
    return centers[pick] + 0.3 * torch.randn(n, 4, generator=g)


def test_binned_knn_is_exact_when_one_bin_holds_the_event() -> None:
    x = _clustered(90, 0)
    src, tgt = binned_knn_event(x, 7, bin_size=128)
    assert _as_sets(torch.stack([src, tgt]), 90) == _as_sets(knn_graph_bruteforce(x, 7), 90)


def test_binned_knn_structure_and_recall() -> None:
    n, k = 3000, 16
    x = _clustered(n, 1)
    binned = knn_graph(x, k, bin_size=128)  # 3000 > 3 * 128: the binned path
    assert binned.shape == (2, n * k)
    assert torch.bincount(binned[1], minlength=n).eq(k).all()  # k neighbours for every point
    assert int((binned[0] == binned[1]).sum()) == n  # the point itself, once
    exact = set(map(tuple, knn_graph_bruteforce(x, k).T.tolist()))
    recall = len(exact & set(map(tuple, binned.T.tolist()))) / len(exact)
    assert recall > 0.85  # measured 0.92-0.99 on such clustered points


def test_morton_order_is_a_permutation_that_groups_close_points() -> None:
    x = torch.tensor([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0], [10.0, 9.9]])
    perm = morton_order(x)
    assert sorted(perm.tolist()) == [0, 1, 2, 3]
    pos = {int(p): i for i, p in enumerate(perm)}
    assert abs(pos[0] - pos[2]) == 1 and abs(pos[1] - pos[3]) == 1
