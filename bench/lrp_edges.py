"""Benchmark: LRP of one edge logit of the tracking interaction network at 1x and 4x event size.

    .venv/bin/python bench/lrp_edges.py --run runs/lp2_mu0 --data data/trk/mu0_test \
        [--scales 1,4] [--repeat 2] [--threads 2] [--dtype float64] [--out FILE]

The event of size s is the disjoint union of the classified graphs (module map + filter of the
run) of the first s events of ``--data``; the explained edge is the highest-scoring true edge of
the first event, the same at every size. Timed, best of ``--repeat``, sizes interleaved:
``forward_s`` (the interaction network on the whole graph), ``lrp_s`` (``explain_interaction``
as ``tracking explain`` runs it: receptive-field cut, then the walk) and ``lrp_full_s`` (the
same walk on the whole graph, ``cut=False``: the work that grows with the event). Prints and
saves one JSON object with the sizes, times, ratios t(4x) / t(1x), the conservation residual of
each explanation and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, rss_mb
from particlegraph.explain.lrp import Epsilon
from particlegraph.explain.lrp.edge_elements import receptive_field
from particlegraph.nn.interaction_lrp import explain_interaction
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.trackml import list_events


def graphs(run_dir: str, data: str, count: int) -> tuple[list[tuple], int]:
    """Standardised (n (N, 7), edge_index, e (E, 7)) of ``count`` events; the explained edge."""
    run = load_layerpair_run(run_dir)
    out, edge = [], -1
    for ev in load_events(data, list_events(data)[:count]):
        _, d, score, _ = reconstruct_event(run, ev)
        ei = d.edge_index
        with torch.no_grad():
            n, e = run.model.inputs(ev.x, ei)
        if edge < 0:
            pid = ev.particle_id
            same = ((pid[ei[0]] == pid[ei[1]]) & (pid[ei[0]] != 0)).numpy()
            edge = int(np.argmax(np.where(same, score, -1.0)))
        out.append((n, ei, e))
    return out, edge


def union(parts: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint union of graphs: node ids of part k shifted by the nodes before it."""
    shift, eis = 0, []
    for n, ei, _ in parts:
        eis.append(ei + shift)
        shift += n.shape[0]
    return torch.cat([p[0] for p in parts]), torch.cat(eis, 1), torch.cat([p[2] for p in parts])


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/lp2_mu0")
    ap.add_argument("--data", default="data/trk/mu0_test")
    ap.add_argument("--scales", default="1,4")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    scales = [int(s) for s in args.scales.split(",")]
    parts, edge = graphs(args.run, args.data, max(scales))
    gnn = copy.deepcopy(load_layerpair_run(args.run).model.gnn).to(dtype).eval()
    events = {s: union(parts[:s]) for s in scales}
    rows: dict[int, dict] = {s: {"lrp_s": [], "lrp_full_s": [], "forward_s": []} for s in scales}
    rule = Epsilon(eps=1e-6)
    for _ in range(args.repeat):  # sizes interleaved: a load change hits both
        for s in scales:
            n, ei, e = (t.to(dtype) if t.is_floating_point() else t for t in events[s])
            with torch.no_grad():
                t_f, _ = best(lambda n=n, ei=ei, e=e: gnn(n, ei, e), 1)
            t_l, rel = best(
                lambda n=n, ei=ei, e=e: explain_interaction(gnn, n, ei, e, [edge], rule), 1
            )
            t_a, full = best(
                lambda n=n, ei=ei, e=e: explain_interaction(gnn, n, ei, e, [edge], rule, cut=False),
                1,
            )
            r = rows[s]
            r["forward_s"].append(t_f)
            r["lrp_s"].append(t_l)
            r["lrp_full_s"].append(t_a)
            r["residual"] = float(rel.conservation_residual().abs().max())
            r["residual_full"] = float(full.conservation_residual().abs().max())
            r["logit"] = float(rel.explained[0])
            r["nodes"], r["edges"] = int(n.shape[0]), int(ei.shape[1])
            field = receptive_field(ei, n.shape[0], torch.tensor([edge]), gnn.iterations)
            r["field_nodes"], r["field_edges"] = int(field[0].sum()), int(field[1].sum())
    for r in rows.values():
        for k in ("forward_s", "lrp_s", "lrp_full_s"):
            r[k] = min(r[k])
    lo, hi = min(scales), max(scales)
    result = {
        "benchmark": "lrp_edges", "run": args.run, "data": args.data, "edge": edge,
        "dtype": args.dtype, "threads": args.threads, "repeat": args.repeat,
        "hidden": gnn.edge_block[0].out_features, "iterations": gnn.iterations,
        "sizes": {str(s): rows[s] for s in scales},
        "ratio_lrp": rows[hi]["lrp_s"] / rows[lo]["lrp_s"],
        "ratio_lrp_full": rows[hi]["lrp_full_s"] / rows[lo]["lrp_full_s"],
        "ratio_forward": rows[hi]["forward_s"] / rows[lo]["forward_s"],
        "ratio_edges": rows[hi]["edges"] / rows[lo]["edges"],
        "peak_rss_mb": rss_mb(), "machine": machine(),
    }  # fmt: skip
    emit(result, args.out)


if __name__ == "__main__":
    main()
