"""Where MLPF loses jet resolution: classification or regression, element by element.

    python bench/mlpf_jet_budget.py --run runs/medium --data runs/physics/test_ttbar_pu50 \
        --events 200 [--calibration FOLDER] --out bench/results/mlpf_jet_budget.json

Runs a trained model (plain arg-max, no operating point) on unseen events and clusters anti-kT
R = 0.4 jets (gen jets pT > 20 GeV, matched within Delta R 0.2) from hybrid particle lists, so
each loss has a name:

- ``baseline``, ``mlpf``: the two algorithms;
- ``mlpf class + gen kinematics``: MLPF's class decision, the generator's kinematics wherever
  both have a particle (what a perfect regression would give: the classification's share);
- ``gen class + mlpf kinematics``: the true class, MLPF's kinematics (the regression's share;
  elements MLPF calls "none" keep nothing);
- ``mlpf charged + baseline neutrals`` and ``baseline charged + mlpf neutrals``: tracks from one,
  towers from the other;
- ``mlpf class + (E - P) neutrals`` and ``gen class + (E - P) neutrals`` (MLPF's tracks):
  towers that carry a neutral (by MLPF's or the generator's class) keep it, but its energy becomes the rule's "tower energy minus the momenta of
  its linked tracks" (:func:`~particlegraph.tasks.mlpf.links.link_features`; nothing when that
  is <= 0), along the tower: does a regression started from that residual have room to win?

Per hybrid: jet pT response (median reco/gen) and resolution (IQR / median) in gen-jet pT bins,
and the MET standard deviation [GeV]. Also the class confusion of towers whose target is above
10 GeV, the count behind "hard neutral hadrons called no particle".
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from common import emit, machine
from particlegraph.physics.jets import cluster_jets, match_jets
from particlegraph.sim.elements import (
    ELEM_TOWER,
    NUM_CLASSES,
    Y_COS_PHI,
    Y_ENERGY,
    Y_ETA,
    Y_PID,
    Y_PT,
    Y_SIN_PHI,
)
from particlegraph.tasks.mlpf.calibration import load_calibration
from particlegraph.tasks.mlpf.evaluate import predict_events
from particlegraph.tasks.mlpf.links import link_features
from particlegraph.tasks.mlpf.metrics import (
    class_ids,
    confusion_matrix,
    iqr_over_median,
    met,
    particles,
)
from particlegraph.tasks.mlpf.train import load_model

PT_BINS = ((20.0, 50.0), (50.0, 100.0), (100.0, float("inf")))


def predict(
    run: str, data: str, events: int, calibration: str | None = None
) -> list[dict[str, np.ndarray]]:
    """Per event ``x``, ``ygen``, ``ycand``, ``ypred`` (arg-max) as numpy arrays; with
    ``calibration`` (a folder holding calibration.json) the predictions are calibrated."""
    model, _ = load_model(run)
    cal = load_calibration(calibration) if calibration else None
    if calibration and cal is None:
        raise SystemExit(f"no calibration.json in {calibration}")
    stream = predict_events(
        model, data, max_events=events, device="cpu", progress=False, calibration=cal
    )
    return [dict(zip(("x", "ygen", "ycand", "ypred"), ev, strict=True)) for ev in stream]


def with_class(cls_src: np.ndarray, kin_src: np.ndarray) -> np.ndarray:
    """Rows of ``kin_src`` with the class of ``cls_src``; no particle where either has none."""
    y = kin_src.copy()
    y[:, Y_PID] = np.where(kin_src[:, Y_PID] != 0, cls_src[:, Y_PID], 0)
    return y


def residual_neutrals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` (N, 7) with every tower that carries a particle given the energy ``E - P`` (tower
    energy minus its linked tracks' momenta [GeV]) along the tower's direction, massless;
    towers where ``E - P <= 0`` lose their particle. Tracks are unchanged."""
    link = link_features(torch.from_numpy(x).double()).numpy()
    resid = x[:, 5] - np.expm1(link[:, 0])
    out = y.copy()
    tower = (x[:, 0] == ELEM_TOWER) & (y[:, Y_PID] != 0)
    keep = tower & (resid > 0)
    norm = np.hypot(x[:, 3], x[:, 4]).clip(1e-9)
    out[keep, Y_ENERGY] = resid[keep]
    out[keep, Y_PT] = resid[keep] / np.cosh(x[keep, 2])
    out[keep, Y_ETA] = x[keep, 2]
    out[keep, Y_SIN_PHI] = x[keep, 3] / norm[keep]
    out[keep, Y_COS_PHI] = x[keep, 4] / norm[keep]
    out[tower & ~keep] = 0.0
    return out


def hybrids(ev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    g, c, p = ev["ygen"], ev["ycand"], ev["ypred"]
    tower = (ev["x"][:, 0] == ELEM_TOWER)[:, None]
    gen_where_both = np.where(g[:, :1] != 0, g, p)
    return {
        "baseline": c,
        "mlpf": p,
        "mlpf class + gen kinematics": with_class(p, gen_where_both),
        "gen class + mlpf kinematics": with_class(g, p),
        "mlpf charged + baseline neutrals": np.where(tower, c, p),
        "baseline charged + mlpf neutrals": np.where(tower, p, c),
        "mlpf class + (E - P) neutrals": residual_neutrals(ev["x"], p),
        "gen class + (E - P) neutrals": np.where(tower, residual_neutrals(ev["x"], g), p),
    }


def jet_table(events: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    gen_jets = cluster_jets([particles(e["ygen"]) for e in events], 0.4, 20.0)
    per_event = [hybrids(e) for e in events]
    table = {}
    for name in per_event[0]:
        reco_jets = cluster_jets([particles(h[name]) for h in per_event], 0.4, 5.0)
        pairs = []
        for gj, rj in zip(gen_jets, reco_jets, strict=True):
            gi, ri = match_jets(gj, rj, 0.2)
            pairs.append(np.stack([gj[gi, 0], rj[ri, 0]], axis=1))
        pr = np.concatenate(pairs)
        ratio = pr[:, 1] / pr[:, 0]
        bins = {}
        for lo, hi in PT_BINS:
            m = (pr[:, 0] >= lo) & (pr[:, 0] < hi)
            bins[f"{lo:g}-{hi:g}"] = {
                "jets": int(m.sum()),
                "response": float(np.median(ratio[m])) if m.any() else None,
                "resolution": iqr_over_median(ratio[m]) if m.sum() > 3 else None,
            }
        dmet = [met(h[name]) - met(e["ygen"]) for h, e in zip(per_event, events, strict=True)]
        table[name] = {"jets": bins, "met_std_gev": float(np.std(dmet))}
    return table


def hard_tower_confusion(events: list[dict[str, np.ndarray]], min_pt: float = 10.0) -> dict:
    out = {}
    for side in ("ypred", "ycand"):
        cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for e in events:
            m = (e["x"][:, 0] == ELEM_TOWER) & (e["ygen"][:, Y_PT] > min_pt)
            cm += confusion_matrix(class_ids(e["ygen"][m]), class_ids(e[side][m]))
        out["mlpf" if side == "ypred" else "baseline"] = cm.tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, help="run directory or pretrained:NAME")
    ap.add_argument("--data", required=True)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calibration", help="folder with calibration.json to apply to MLPF")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    events = predict(args.run, args.data, args.events, args.calibration)
    for name, row in (table := jet_table(events)).items():
        cells = " | ".join(
            f"{k}: {v['response']:.3f} / {v['resolution']:.3f}"
            for k, v in row["jets"].items()
            if v["response"] is not None and v["resolution"] is not None
        )
        print(f"{name:34s} {cells} | MET std {row['met_std_gev']:.1f} GeV")
    emit(
        {
            "run": args.run,
            "data": args.data,
            "calibration": args.calibration,
            "events": len(events),
            "jets_response_resolution": table,
            "hard_tower_confusion_gen_x_reco": hard_tower_confusion(events),
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
