"""Time the default pipeline's interaction network on one event: ``edge_mlp`` before and after
the in-place gather sums, alternated in one process, outputs compared bit for bit.

    python bench/tracking_gnn_ab.py --run runs/lp2_mu200 --data data/trk/mu200_test --event 5002
        [--reps 2] [--modes old,new] [--ref FILE.npz]

With ``--ref`` the filtered edges and scores are written there on the first call and compared
with it on later calls, so that the same event can be timed in fresh processes under different
allocator settings (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_MAX_``;
see docs/tracking.md, "Inference time at mu = 200"). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import particlegraph.nn.interaction as interaction
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.graphs import event_hits
from particlegraph.tasks.tracking.learned import load_layerpair_run
from particlegraph.tasks.tracking.module_map import build_graph

NEW = interaction.edge_mlp


def old_edge_mlp(mlp: Any, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> Any:
    """``edge_mlp`` as it was before (out-of-place sums of the gathered node terms)."""
    first = mlp[0]
    hn = h.shape[1]
    w = first.weight
    a = h @ w[:, :hn].T
    b = h @ w[:, hn : 2 * hn].T
    out = (torch.addmm(first.bias, e, w[:, 2 * hn :].T) if first.bias is not None
           else e @ w[:, 2 * hn :].T)  # fmt: skip
    out = out + a[edge_index[0]] + b[edge_index[1]]
    for layer in list(mlp)[1:]:
        out = layer(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--event", type=int, required=True)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--modes", default="old,new")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ref", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    run = load_layerpair_run(args.run)
    ev = load_events(args.data, [args.event])[0]
    res: dict[str, list[float]] = {}
    scores: dict[str, np.ndarray] = {}
    with torch.no_grad():
        t = time.perf_counter()
        full = torch.from_numpy(build_graph(run.map, event_hits(ev)))
        res["graph"] = [time.perf_counter() - t]
        t = time.perf_counter()
        edges = full[:, run.model.filter_logits_chunked(ev.x, full) >= run.filter_cut]
        res["filter"] = [time.perf_counter() - t]
        for _ in range(args.reps):
            for name in modes:
                interaction.edge_mlp = old_edge_mlp if name == "old" else NEW
                t = time.perf_counter()
                scores[name] = torch.sigmoid(run.model(ev.x, edges)).double().numpy()
                res.setdefault(name, []).append(time.perf_counter() - t)
    first = scores[modes[0]]
    same = all(np.array_equal(scores[m], first) for m in modes)
    ref = "none"
    if args.ref and Path(args.ref).is_file():
        r = np.load(args.ref)
        ref = "equal" if (np.array_equal(r["edges"], edges.numpy())
                          and np.array_equal(r["score"], first)) else "DIFFERENT"  # fmt: skip
    elif args.ref:
        np.savez(args.ref, edges=edges.numpy(), score=first)
        ref = "written"
    print(json.dumps({"bench": "tracking_gnn_ab", "run": args.run, "event_id": ev.event_id,
                      "hits": ev.num_hits, "edges": int(edges.shape[1]), "threads": args.threads,
                      "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC")},
                      "seconds": res, "modes_identical": same, "reference": ref}))  # fmt: skip


if __name__ == "__main__":
    main()
