"""Seconds per stage, page faults and peak memory of the default pipeline's inference, per event.

    python bench/tracking_inference_ab.py --run runs/lp3_mu200 --data data/trk/mu200_test \
        --events 5000,5001,5002 --allocator keep|default --out FILE.json [--save-scores F.npz]

One process, the events in order without a warm-up (as an evaluation meets them): wall seconds
per stage of ``reconstruct_event``, CPU and system seconds, minor page faults, and the peak
resident memory of the process. Run it once per setting in a fresh process (the allocator
setting and the peak are per process); ``PYTHONPATH`` picks the code, so two checkouts compare
two versions of the code. ``--save-scores`` keeps the first event's edge scores and track ids
for an equality check between versions.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from common import emit, machine
from particlegraph.allocator import keep_freed_memory
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--events", required=True, help="comma-separated event ids")
    p.add_argument("--allocator", choices=("keep", "default"), default="keep")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-scores", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    applied = keep_freed_memory() if args.allocator == "keep" else False
    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    rows = []
    for n, i in enumerate(int(s) for s in args.events.split(",")):
        ev = load_events(args.data, [i])[0]
        c0, ru0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        track, d, score, times = reconstruct_event(run, ev)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"event_id": i, "hits": ev.num_hits, "edges": int(d.edge_index.shape[1]),
                     **times, "cpu_s": time.process_time() - c0,
                     "sys_s": ru1.ru_stime - ru0.ru_stime,
                     "minor_faults": ru1.ru_minflt - ru0.ru_minflt})  # fmt: skip
        if n == 0 and args.save_scores:
            np.savez(args.save_scores, score=score, track=track)
    emit({"bench": "tracking_inference_ab", "machine": machine(), "run": args.run,
          "data": args.data, "allocator": {"mode": args.allocator, "applied": applied},
          "threads": args.threads, "events": rows,
          "mean_total_s": float(np.mean([r["total_s"] for r in rows])),
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "load_avg_1_5_15": list(os.getloadavg())}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
