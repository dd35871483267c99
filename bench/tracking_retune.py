"""Re-choose a default-pipeline run's track building (threshold, mode) on its validation events.

    python bench/tracking_retune.py --run RUN --thresholds 0.8 0.9 0.95 0.97 0.99 [--modes cc split]

For a grid that did not bracket the optimum at training time: the run's validation events (never
test events) are scored for every (threshold, mode) and ``run.json``'s ``build`` and
``build_scan`` are replaced (the previous choice is kept as ``build_before_retune``); a track
cleanup stored in ``build`` (``bench/tracking_cleanup.py``) is kept and applied in the scan.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from particlegraph.atomic import write_json
from particlegraph.tasks.tracking.build import MODES
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.learned import (
    apply_filter,
    load_layerpair_run,
    target_data,
    tune_build,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--thresholds", type=float, nargs="+", required=True)
    p.add_argument("--modes", nargs="+", default=list(MODES))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = load_layerpair_run(args.run)
    val_ev = load_events(run.cfg.data, run.info["val_events"])
    val_d = [apply_filter(run.model, target_data(e, run.map, run.cfg.edge_target), run.filter_cut)
             for e in val_ev]  # fmt: skip
    best, scan = tune_build(run.model, val_d, val_ev, tuple(args.thresholds), tuple(args.modes),
                            base=run.build)  # fmt: skip
    info = dict(run.info)
    info.setdefault("build_before_retune", info["build"])
    info["build"] = {**info["build"], "threshold": best.threshold, "mode": best.mode}
    info["build_scan"] = scan
    write_json(Path(args.run) / "run.json", info)
    top = sorted(scan, key=lambda r: -r["score"])[:5]
    print(json.dumps({"build": info["build"], "top": top}))


if __name__ == "__main__":
    main()
