"""Time the exact kNN: the pruned search (CPU, from graph.knn.PRUNED_MIN_POINTS points), the
dense chunked search and one (N x N) block; checks that all three give the same edges.

python bench/knn.py --points 6400 --k 16 --dims 4 [--device cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse

import torch

from common import emit, machine, time_call
from particlegraph.device import resolve_device
from particlegraph.graph import knn as knn_module
from particlegraph.graph.knn import BLOCK_ENTRIES, knn_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=6400)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--dims", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    device = resolve_device(args.device)
    x = torch.randn(args.points, args.dims, device=device)
    pruned = time_call(
        lambda: knn_graph(x, args.k, chunk_size=args.chunk_size), device, args.repeats
    )
    edges = knn_graph(x, args.k, chunk_size=args.chunk_size)
    min_points, knn_module.PRUNED_MIN_POINTS = knn_module.PRUNED_MIN_POINTS, 1 << 62
    chunked = time_call(
        lambda: knn_graph(x, args.k, chunk_size=args.chunk_size), device, args.repeats
    )
    same = bool(torch.equal(edges, knn_graph(x, args.k, chunk_size=args.chunk_size)))
    knn_module.PRUNED_MIN_POINTS = min_points
    dense = time_call(lambda: knn_graph(x, args.k, chunk_size=None), device, args.repeats)
    same = same and bool(torch.equal(edges, knn_graph(x, args.k, chunk_size=None)))
    emit(
        {
            "points": args.points,
            "k": args.k,
            "dims": args.dims,
            "device": str(device),
            "chunk_size": args.chunk_size,
            "ms_pruned": 1e3 * pruned,
            "pruned_used": device.type == "cpu" and args.points >= min_points,
            "same_edges": same,
            "ms_chunked": 1e3 * chunked,
            "ms_one_block": 1e3 * dense,
            "peak_block_mb_chunked": 4
            * min(args.chunk_size or BLOCK_ENTRIES // args.points, args.points)
            * args.points
            / 2**20,
            "peak_block_mb_one_block": 4 * args.points**2 / 2**20,
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
