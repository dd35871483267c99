"""How a default-pipeline run copes with a vertex away from z = 0: events shifted along the beam.

    python bench/tracking_zshift.py --run RUN --data DIR --events 4 --shifts -200 -100 0 100 200
        [--first 0] [--out FILE]

Every hit, and every particle's vertex, of each event is moved by the same shift [mm] along the
beam (the luminous region has sigma_z = 55 mm, so +-200 mm is 3.6 sigma); the event is then
reconstructed by the run. Per shift: mean TrackML score and, over all events, the edge efficiency
of the graph (all true edges and pT > 1 GeV) and after the classifier (at the run's threshold).
Use validation events (the run's own, e.g. ``--data TRAIN --first 56``) to choose settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.evaluate_layerpair import event_metrics, graph_metrics
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.trackml import list_events


def shifted(ev: HitEvent, dz_mm: float) -> HitEvent:
    """``ev`` with every hit and vertex moved by ``dz_mm`` along the beam (features in m)."""
    x = ev.x.clone()
    x[:, 3] += dz_mm / 1000.0
    xyz = ev.xyz.clone()
    xyz[:, 2] += dz_mm
    return dataclasses.replace(ev, x=x, xyz=xyz, vz=ev.vz + dz_mm)


def probe(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    ids = list_events(args.data)[args.first : args.first + args.events]
    events = load_events(args.data, ids)
    rows = []
    for s in args.shifts:
        per = []
        for ev in events:
            e = shifted(ev, s)
            track, d, score, _ = reconstruct_event(run, e)
            edges = d.edge_index.numpy()
            m = event_metrics(e, track)
            m.update(graph_metrics(e, edges, "graph_"))
            m.update(graph_metrics(e, edges[:, score > run.build.threshold], "classified_"))
            per.append(m)
        keys = ("score", "efficiency_pt1", "graph_edge_efficiency", "graph_edge_efficiency_pt1",
                "classified_edge_efficiency", "classified_edge_purity")  # fmt: skip
        row = {"shift_mm": s, **{k: float(np.nanmean([p[k] for p in per])) for k in keys}}
        row["per_event_score"] = [p["score"] for p in per]
        rows.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in row.items() if k != "per_event_score"), flush=True)  # fmt: skip
    return {"bench": "tracking_zshift", "run": args.run, "data": args.data, "event_ids": ids,
            "machine": machine(), "rows": rows}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--events", type=int, default=4)
    p.add_argument("--first", type=int, default=0, help="index of the first event used")
    p.add_argument("--shifts", type=float, nargs="+", default=[-200.0, -100.0, 0.0, 100.0, 200.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="")
    args = p.parse_args()
    emit(probe(args), args.out or None)


if __name__ == "__main__":
    main()
