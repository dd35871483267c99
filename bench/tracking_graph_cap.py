"""Probe: cap the map graph to the k edges per (inner hit, layer pair) nearest the window centre.

    python bench/tracking_graph_cap.py RUN OUT.json DATA:EVENT[,DATA:EVENT...] K[,K...]

A graph whose edges per hit do not grow with the hit density would make the default pipeline's
time linear in the hits (docs/tracking.md, "Sixth session"). This keeps, per inner hit and layer
pair, the k edges with the smallest (dphi / half window)^2 + (z0 / half window)^2 (k = 0: no
cap), then runs the run's filter, network and track building, and prints per event and k the
edges per hit, the stage times and the TrackML metrics (validation events only). The seventh
session's result (docs/tracking.md): the position in the window ranks true edges too weakly.
"""

import json
import sys
import time

import numpy as np
import torch

from common import machine
from particlegraph.allocator import keep_freed_memory
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.graphs import event_hits
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_from_graph
from particlegraph.tasks.tracking.module_map import build_graph, pair_variables
from tracking_cleanup import metrics


def cap(m, h, edges, k):
    """The edges (2, E') of ``edges`` kept by the cap ``k`` (see the module docstring)."""
    i, j = edges
    li, lj = h.layer[i], h.layer[j]
    pairs = m.pairs  # the pair index of each edge, from a dense lookup on layer ids
    L = int(max(h.layer.max(), pairs.max())) + 1
    lut = np.full((L, L), -1, np.int64)
    lut[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    # same-layer edges are oriented; the map key is (layer_i, layer_j)
    p = lut[li, lj]
    v = pair_variables(h, i, j)
    w = m.windows[p]
    hw_phi = np.maximum(np.abs(w[:, 0, 1]), 1e-9)
    hw_z0 = np.maximum((w[:, 1, 1] - w[:, 1, 0]) / 2, 1e-9)
    z0 = np.where(np.isfinite(v[:, 1]) & np.isfinite(hw_z0), v[:, 1], 0.0)
    s = (v[:, 0] / hw_phi) ** 2 + np.where(np.isfinite(hw_z0), (z0 / hw_z0) ** 2, 0.0)
    g = i * len(pairs) + p
    order = np.lexsort((s, g))
    gs = g[order]
    start = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1]
    size = np.diff(np.r_[start, gs.size])
    rank = np.empty(gs.size, np.int64)
    rank[order] = np.arange(gs.size) - np.repeat(start, size)
    return edges[:, rank < k]


def main() -> None:
    torch.set_num_threads(2)
    keep_freed_memory()
    run = load_layerpair_run(sys.argv[1])
    ks = [int(x) for x in sys.argv[4].split(",")]
    res = []
    for spec in sys.argv[3].split(","):
        data, eid = spec.split(":")
        ev = load_events(data, [int(eid)])[0]
        h = event_hits(ev)
        t = time.perf_counter()
        g = build_graph(run.map, h)
        tg = time.perf_counter() - t
        for k in ks:
            t = time.perf_counter()
            gc = g if k == 0 else cap(run.map, h, g, k)
            tc = time.perf_counter() - t
            track, _, _, times = reconstruct_from_graph(run, ev, gc, tg + tc)
            row = dict(event=int(eid), hits=ev.num_hits, k=k,
                       graph_edges_per_hit=g.shape[1] / ev.num_hits,
                       capped_edges_per_hit=gc.shape[1] / ev.num_hits, cap_s=tc, **times,
                       **metrics(ev, track))  # fmt: skip
            print(json.dumps(row), flush=True)
            res.append(row)
    with open(sys.argv[2], "w") as f:
        json.dump({"rows": res, "machine": machine()}, f, indent=1)


if __name__ == "__main__":
    main()
