"""Choose the neutral-recovery significance k (tasks/mlpf/recovery.py) on validation events.

    python bench/mlpf_recovery_scan.py --run pretrained:ttbar_pu50_medium \
        --data VAL --events 300 [--k 1 1.5 2 ...] [--decide K] --out bench/results/x.json

Predicts ``--data`` once with the run's checkpoint at its operating point and with its
calibration (as ``mlpf evaluate`` does), then for every k of the grid (and "off") adds the rule's
residual neutrals and computes, with bootstrap errors over events (paired):

- the hybrid's jet pT resolution (IQR/median) for gen pT > 50 GeV and its neutral-hadron and
  photon fake rates and efficiencies, each as ``recovery(k) - off``;
- the same quantities against the rule-based baseline (``MLPF(+recovery) - baseline``).

Rule (fixed before any number was looked at, see the commit that added recovery.py): admissible
when both fake-rate differences to "off" are not worse than +1 sigma; chosen: the admissible k
with the lowest hard-jet resolution. ``--decide K`` evaluates K and off only (the confirmation on
the second validation sample).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.calibration import load_calibration
from particlegraph.tasks.mlpf.evaluate import predict_events
from particlegraph.tasks.mlpf.operating_point import load_operating_point
from particlegraph.tasks.mlpf.recovery import detector_of, recover_neutrals
from particlegraph.tasks.mlpf.train import load_model, resolve_run_dir
from particlegraph.tasks.mlpf.uncertainty import summarize_uncertainties

GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0)
QUANTITIES = (
    "jet_pt_resolution/hard", "jet_pt_response/hard", "fake_rate/neutral_hadron",
    "fake_rate/photon", "efficiency/neutral_hadron", "efficiency/photon", "met_std_gev",
    "met_resolution",
)  # fmt: skip


def predict(run: str, data: str, events: int) -> list[tuple[np.ndarray, ...]]:
    """``(X, ygen, ycand, ypred)`` per event: the run at its operating point, calibrated."""
    src = resolve_run_dir(run)
    model, _ = load_model(src)
    op = load_operating_point(src)
    cal = load_calibration(src)
    stream = predict_events(
        model, data, max_events=events, device="cpu", progress=False,
        class_offsets=op.offsets_tensor() if op is not None else None,
        offset_max_pt=op.offset_max_pt_gev if op is not None else None, calibration=cal,
    )  # fmt: skip
    return [tuple(ev) for ev in stream]


def compare(events: list[tuple[np.ndarray, ...]], a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    """Quantities of predictions ``a`` and ``b`` (per event) with the paired difference a - b."""
    col = pf.collect((x, g, bb, aa) for (x, g, *_), aa, bb in zip(events, a, b, strict=True))
    q = summarize_uncertainties(col)["quantities"]
    return {
        name: {"a": q[name]["mlpf"], "b": q[name]["baseline"],
               "difference": q[name]["comparison"]["difference"],
               "at_least_as_good": q[name]["comparison"]["at_least_as_good"],
               "better": q[name]["comparison"]["better"]}
        for name in QUANTITIES
    }  # fmt: skip


def scan(events: list[tuple[np.ndarray, ...]], grid: list[float], data: str) -> dict[str, Any]:
    """Per k: the hybrid vs off and vs the baseline; and the chosen k."""
    cfg = detector_of(data)
    off = [ev[3] for ev in events]
    base = [ev[2] for ev in events]
    rows: dict[str, Any] = {"off": {"vs_baseline": compare(events, off, base)}}
    for k in grid:
        rec = [recover_neutrals(ev[0], ev[3], k, cfg) for ev in events]
        changed = sum(int((r[:, 0] != o[:, 0]).sum()) for r, o in zip(rec, off, strict=True))
        rows[f"{k:g}"] = {
            "k": k,
            "recovered_elements": changed,
            "vs_off": compare(events, rec, off),
            "vs_baseline": compare(events, rec, base),
        }
    best, best_res = "off", rows["off"]["vs_baseline"]["jet_pt_resolution/hard"]["a"]["value"]
    for name, row in rows.items():
        if name == "off":
            continue
        vs = row["vs_off"]
        row["admissible"] = bool(
            vs["fake_rate/neutral_hadron"]["at_least_as_good"]
            and vs["fake_rate/photon"]["at_least_as_good"]
        )
        res = vs["jet_pt_resolution/hard"]["a"]["value"]
        if row["admissible"] and res is not None and res < best_res:
            best, best_res = name, res
    return {"rows": rows, "chosen": best}


def print_table(rows: dict[str, Any]) -> None:
    def fmt(d: dict[str, Any] | None) -> str:
        return "-" if d is None or d["value"] is None else f"{d['value']:+.4f}±{d['error']:.4f}"

    for name, row in rows.items():
        vb = row["vs_baseline"]["jet_pt_resolution/hard"]
        vs = row.get("vs_off", {})
        cells = [f"k={name:>4s}", f"jet res {vb['a']['value']:.4f}±{vb['a']['error']:.4f}",
                 f"-base {fmt(vb['difference'])}"]  # fmt: skip
        for q in ("jet_pt_resolution/hard", "fake_rate/neutral_hadron", "fake_rate/photon"):
            if vs:
                cells.append(f"{q.split('/')[-1][:6]}-off {fmt(vs[q]['difference'])}")
        if "admissible" in row:
            cells.append(f"adm={row['admissible']} n={row['recovered_elements']}")
        print(" | ".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="pretrained:ttbar_pu50_medium")
    ap.add_argument("--data", required=True)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--k", type=float, nargs="+", default=list(GRID))
    ap.add_argument("--decide", type=float, help="confirmation: this k against off only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    events = predict(args.run, args.data, args.events)
    t_pred = time.perf_counter() - t0
    grid = [args.decide] if args.decide is not None else [k for k in args.k if math.isfinite(k)]
    result = scan(events, grid, args.data)
    print_table(result["rows"])
    print(f"chosen: {result['chosen']}")
    emit(
        {
            "run": args.run, "data": args.data, "events": len(events), "grid": grid,
            "mode": "decide" if args.decide is not None else "scan",
            "predict_seconds": round(t_pred, 1),
            "seconds": round(time.perf_counter() - t0, 1), **result, "machine": machine(),
        },
        args.out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
