"""Simulation realism against the TrackML challenge: scattering, overlaps, hits, noise, secondaries.

    python bench/tracking_realism_check.py --data DIR [--events N] [--out FILE]

Reads simulated TrackML events (``particlegraph tracking generate``) and measures, from their
truth, the quantities issue 18 compares with a real challenge event:

- ``p_deflection_mev``: p x the space angle between the true momenta at a particle's first hits
  on consecutive pixel-barrel layers, the field's rotation (the helix turning angle between the two
  points) removed; RMS over pairs with p > 0.5 GeV, and the median (challenge: 1.46 MeV);
- ``same_layer_pair_fraction``: share of true consecutive-hit pairs (hits of a particle ordered by
  distance from its vertex) on the same layer (challenge: about a quarter);
- ``hits_per_particle``: mean hits of particles with at least one hit, and of those with pT > 1 GeV
  (challenge: 10.0);
- ``noise_fraction`` (challenge: about 15 %) and ``secondary_fraction``: the share of particles
  with hits produced more than 10 mm from the beam line (challenge: about a quarter).

Mean over events with the standard error; no model, light work (a few seconds for 10 events).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from common import emit, machine
from particlegraph.sim.helix import C_LIGHT
from particlegraph.tasks.tracking.trackml import TrackMLEvent, list_events, read_event

PIXEL_BARREL = 8


def _by_particle(ev: TrackMLEvent) -> dict[str, np.ndarray]:
    """Signal hits sorted by particle, then by distance from the particle's vertex."""
    assert ev.truth is not None and ev.particles is not None
    t, parts = ev.truth, ev.particles
    sig = np.flatnonzero(t["particle_id"] != 0)
    pid = t["particle_id"][sig]
    row = np.searchsorted(parts["particle_id"], pid)
    v = np.stack([parts[c][row] for c in ("vx", "vy", "vz")], 1).astype(np.float64)
    pos = np.stack([t[c][sig] for c in ("tx", "ty", "tz")], 1).astype(np.float64)
    dist = np.linalg.norm(pos - v, axis=1)
    order = np.lexsort((dist, pid))
    idx = sig[order]
    return {
        "pid": pid[order],
        "vol": ev.hits["volume_id"][idx],
        "lay": ev.hits["layer_id"][idx],
        "pos": pos[order],
        "mom": np.stack([t[c][idx] for c in ("tpx", "tpy", "tpz")], 1).astype(np.float64),
        "q": parts["q"][row][order].astype(np.float64),
    }


def deflections(ev: TrackMLEvent, bz: float = 2.0) -> np.ndarray:
    """p x space angle [MeV] between first hits on consecutive pixel-barrel layers (field removed)."""
    h = _by_particle(ev)
    same = (h["pid"][1:] == h["pid"][:-1]) & (h["vol"][1:] == PIXEL_BARREL)
    same &= (h["vol"][:-1] == PIXEL_BARREL) & (h["lay"][1:] == h["lay"][:-1] + 2)
    i = np.flatnonzero(same)
    j = i + 1
    m1, m2 = h["mom"][i], h["mom"][j]
    pt1 = np.hypot(m1[:, 0], m1[:, 1])
    rho = pt1 / (C_LIGHT * bz) * 1e3  # mm
    chord = np.hypot(*(h["pos"][j, :2] - h["pos"][i, :2]).T)
    turn = -np.sign(h["q"][i]) * 2.0 * np.arcsin(np.clip(chord / (2 * rho), 0, 1))
    c, s = np.cos(turn), np.sin(turn)
    rot = np.stack([c * m1[:, 0] - s * m1[:, 1], s * m1[:, 0] + c * m1[:, 1], m1[:, 2]], 1)
    p1 = np.linalg.norm(m1, axis=1)
    cosang = np.sum(rot * m2, 1) / (p1 * np.linalg.norm(m2, axis=1))
    angle = np.arccos(np.clip(cosang, -1.0, 1.0))
    keep = p1 > 0.5
    return (p1 * angle * 1e3)[keep]


def event_numbers(ev: TrackMLEvent) -> dict[str, float]:
    """The per-event realism quantities (see the module docstring)."""
    assert ev.truth is not None and ev.particles is not None
    h = _by_particle(ev)
    pairs = h["pid"][1:] == h["pid"][:-1]
    same_layer = pairs & (h["vol"][1:] == h["vol"][:-1]) & (h["lay"][1:] == h["lay"][:-1])
    parts = ev.particles
    with_hits = parts["nhits"] > 0
    pt = np.hypot(parts["px"], parts["py"])
    secondary = np.hypot(parts["vx"], parts["vy"]) > 10.0
    d = deflections(ev)
    return {
        "p_deflection_rms_mev": float(np.sqrt(np.mean(d**2))) if d.size else float("nan"),
        "p_deflection_median_mev": float(np.median(d)) if d.size else float("nan"),
        "same_layer_pair_fraction": float(same_layer.sum() / max(pairs.sum(), 1)),
        "hits_per_particle": float(parts["nhits"][with_hits].mean()),
        "hits_per_particle_pt1": float(parts["nhits"][with_hits & (pt > 1.0)].mean()),
        "noise_fraction": float(np.mean(ev.truth["particle_id"] == 0)),
        "secondary_fraction": float(np.mean(secondary[with_hits])),
        "hits": float(ev.num_hits),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    rows = [event_numbers(read_event(args.data, i)) for i in list_events(args.data)[: args.events]]
    summary = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        summary[key] = {
            "mean": float(np.nanmean(v)),
            "stderr": float(np.nanstd(v) / np.sqrt(len(v))),
        }
    result = {
        "bench": "tracking_realism_check", "machine": machine(), "data": args.data,
        "events": len(rows), "measured": summary,
        "challenge": {"p_deflection_mev": 1.46, "same_layer_pair_fraction": 0.25,
                      "hits_per_particle": 10.0, "noise_fraction": 0.15, "secondary_fraction": 0.25},
    }  # fmt: skip
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
