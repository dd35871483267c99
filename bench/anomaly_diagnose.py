"""Why W' -> WZ and the dark showers are invisible to the scale-free scores (issue 19, session 5).

Usage (dev CPU; the candidate part holds the heavy lock, about 40 s)::

    python bench/anomaly_diagnose.py --data DATA     # DATA: the benchmark's samples (--seed 1)

Three parts, written to ``bench/results/anomaly_shape3_diagnosis.json``:

- ``truth``: Pythia 8 at parton level (no hadronisation, no detector, no trigger), W' (m = 500 GeV)
  -> W Z: the bosons' decays, pT and the Delta R of their two quarks; the hidden-valley preset
  at m(Zv) = 500 GeV: dark mesons per event, final-state multiplicity and charged fraction beside
  QCD (pTHatMin 200 GeV, generator level).
- ``matched``: single observables of the stored candidates, signal weighted to the background's
  HT (``ht-matched`` weights), against jetht events 0-2,499 (the training and reference events;
  never the test events 2,500-3,499): AUC at matched HT and plain.
- ``one_sided``: on the OLD test events (seen; a development check that chose nothing, made after
  the fresh-event result of ``shape3``): the substructure observables each calibrated to a
  background quantile at its HT and summed with physics-declared signs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from common import emit, machine
from particlegraph.metrics.roc import summarize
from particlegraph.physics.kinematics import delta_phi, massless_p4
from particlegraph.tasks.anomaly.comparison import matching_weights
from particlegraph.tasks.anomaly.decorrelate import HTCalibration
from particlegraph.tasks.anomaly.fatjet import SUBSTRUCTURE_FEATURES, substructure_features, trim
from particlegraph.tasks.anomaly.graphs import select_top
from particlegraph.tasks.anomaly.jetshape import JET_FEATURES, cluster, jet_features, tau21
from particlegraph.tasks.anomaly.samples import Candidates, read_candidates, take_events
from particlegraph.tasks.anomaly.trivial import event_observables

RESULTS = Path(__file__).parent / "results"
SIGNALS = ("wprime_wz_m500", "hv_dark_m500", "zprime_ttbar_m500")
ALL_SIGNALS = (
    "zprime_ttbar_m500",
    "wprime_wz_m500",
    "h2_zz4l_ht300",
    "lq_btau_m300",
    "hv_dark_m500",
)


def _q(x: Any) -> list[float]:
    return [round(float(v), 3) for v in np.percentile(x, [10, 25, 50, 75, 90])]


def truth_wprime(n: int = 300) -> dict[str, Any]:
    """W' (500 GeV) -> W Z at parton level: boson pT and the Delta R of its decay quarks."""
    from particlegraph.sim.pythia import make_pythia, process_settings

    py = make_pythia(process_settings("wprime_wz", ["34:m0 = 500.", "HadronLevel:all = off"]), 7)
    rows, hadronic = [], []
    for _ in range(n):
        if not py.next():
            continue
        ev, bos = py.event, {}
        for j in range(ev.size()):
            p = ev[j]
            if abs(p.id()) in (23, 24) and abs(ev[p.daughter1()].id()) not in (23, 24):
                d1, d2 = ev[p.daughter1()], ev[p.daughter2()]
                dr = float(np.hypot(d1.eta() - d2.eta(), delta_phi(d1.phi(), d2.phi())))
                bos[abs(p.id())] = (p.pT(), dr)
                hadronic.append(abs(d1.id()) <= 5)
        if 23 in bos and 24 in bos:
            rows.append([bos[24][0], bos[24][1], bos[23][0], bos[23][1]])
    r = np.array(rows)
    out: dict[str, Any] = {"events": len(rows), "hadronic_fraction": float(np.mean(hadronic)),
                           "quantiles": "10/25/50/75/90 %", "w_pt": _q(r[:, 0]),
                           "z_pt": _q(r[:, 2]), "w_dr_qq": _q(r[:, 1]), "z_dr_qq": _q(r[:, 3])}  # fmt: skip
    for radius in (0.8, 1.0, 1.2):
        out[f"dr_qq_below_{radius}"] = {"w": float(np.mean(r[:, 1] < radius)),
                                        "z": float(np.mean(r[:, 3] < radius)),
                                        "both": float(np.mean((r[:, 1] < radius) & (r[:, 3] < radius)))}  # fmt: skip
    return out


def truth_dark(n: int = 200) -> dict[str, Any]:
    """Hidden-valley preset at m(Zv) = 500 GeV vs QCD (pTHatMin 200), generator level."""
    from particlegraph.sim.pythia import make_pythia, process_settings

    def run(proc: str, extra: list[str]) -> tuple[list[int], list[int], list[float]]:
        py = make_pythia(process_settings(proc, extra), 11)
        mesons, mult, charged = [], [], []
        for _ in range(n):
            if not py.next():
                continue
            ev = py.event
            mesons.append(sum(abs(ev[j].id()) in (4900111, 4900113) for j in range(ev.size())))
            fs = [ev[j] for j in range(ev.size()) if ev[j].isFinal()]
            mult.append(len(fs))
            charged.append(float(np.mean([p.isCharged() for p in fs])))
        return mesons, mult, charged

    m, mult, ch = run("hv_dark", ["4900023:m0 = 500."])
    _, qmult, qch = run("qcd", ["PhaseSpace:pTHatMin = 200."])
    return {"dark_mesons_per_event": _q(m), "final_state_multiplicity": _q(mult),
            "charged_fraction": float(np.mean(ch)), "qcd_final_state_multiplicity": _q(qmult),
            "qcd_charged_fraction": float(np.mean(qch))}  # fmt: skip


def _top(c: Candidates, k: int) -> Candidates:
    idx, off = select_top(c.offsets, c.pt, k)
    return Candidates(c.pt[idx], c.eta[idx], c.phi[idx], c.cls[idx], c.charge[idx],
                      c.energy[idx], off, *c[7:])  # fmt: skip


def _rank(jets: Any, values: np.ndarray, k: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    sel = jets.rank == k
    out[jets.event[sel]] = values[sel]
    return out


def _large_r(c: Candidates, radius: float, tag: str) -> dict[str, np.ndarray]:
    """Leading large-R jet: mass ungroomed / trimmed [GeV], tau21; W-window count of two jets."""
    n = c.num_events
    jets = cluster(c, radius)
    lead = np.flatnonzero(jets.rank < 2)
    kept, group = trim(c, jets, lead)
    p4 = massless_p4(c.pt[kept], c.eta[kept], c.phi[kept])
    t = np.stack([np.bincount(group, p4[:, i], minlength=lead.size) for i in range(4)], 1)
    mtrim = np.zeros(jets.pt.size)
    mtrim[lead] = np.sqrt(np.maximum(t[:, 3] ** 2 - (t[:, :3] ** 2).sum(1), 0))
    t21 = np.zeros(jets.pt.size)
    t21[lead] = tau21(c, jets, lead)
    window = ((mtrim > 65) & (mtrim < 105)).astype(float)
    return {f"{tag}_fj1_m": _rank(jets, jets.mass, 0, n), f"{tag}_fj1_mtrim": _rank(jets, mtrim, 0, n),
            f"{tag}_fj1_tau21": _rank(jets, t21, 0, n),
            f"{tag}_n_wz_window_trim": _rank(jets, window, 0, n) + _rank(jets, window, 1, n)}  # fmt: skip


def _event(c: Candidates) -> dict[str, np.ndarray]:
    """MET alignment, multiplicities, charged fraction, narrow-jet mass / pT."""
    n = c.num_events
    ev = np.repeat(np.arange(n), np.diff(c.offsets))
    px = np.bincount(ev, c.pt * np.cos(c.phi), minlength=n)
    py = np.bincount(ev, c.pt * np.sin(c.phi), minlength=n)
    nar = cluster(c, 0.4)
    share = nar.pt / np.maximum(np.bincount(nar.event, nar.pt, minlength=n), 1e-9)[nar.event]
    hard = share >= 0.05
    dphi = np.abs(delta_phi(nar.phi, np.arctan2(py, px)[nar.event]))
    mind = np.full(n, np.pi)
    np.minimum.at(mind, nar.event[hard], dphi[hard])
    ch = (c.charge != 0).astype(float)
    top4 = nar.rank < 4
    return {"min_dphi_jet_met": mind, "n_jets_share5": np.bincount(nar.event[hard], minlength=n) * 1.0,
            "charged_pt_fraction": np.bincount(ev, c.pt * ch, minlength=n)
            / np.maximum(np.bincount(ev, c.pt, minlength=n), 1e-9),
            "n_cand": c.n_cand * 1.0, "n_const_4jets": np.bincount(nar.event[top4], nar.n_const[top4], minlength=n) * 1.0,
            "nch_4jets": np.bincount(nar.event[top4], nar.nch[top4], minlength=n)}  # fmt: skip


def observables(c: Candidates) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for radius in (0.8, 1.0, 1.2):
        out.update(_large_r(c, radius, f"R{radius}"))
        out.update(_large_r(_top(c, 40), radius, f"R{radius}_top40"))
    out.update(_event(c))
    out.update({f"jetshape:{k}": v for k, v in zip(JET_FEATURES, jet_features(c).T, strict=True)})
    sub = substructure_features(c).T
    out.update({f"fatjet:{k}": v for k, v in zip(SUBSTRUCTURE_FEATURES, sub, strict=True)})
    out.update({f"trivial:{k}": v for k, v in event_observables(c).items()})
    return out


def _auc(s: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> float:
    weights = None if w is None else np.r_[w, np.ones(b.size)]
    return float(summarize(np.r_[s, b], np.r_[np.ones(s.size), np.zeros(b.size)], weights).auc)


def matched(data: Path) -> dict[str, Any]:
    bkg = take_events(read_candidates(data / "jetht", max_events=2500), 0, 2500)
    ob = observables(bkg)
    out: dict[str, Any] = {"background": "jetht events 0-2499"}
    for sig in SIGNALS:
        c = read_candidates(data / sig)
        os_ = observables(c)
        w = matching_weights(c.ht.astype(float), bkg.ht.astype(float))
        rows = {k: {"auc_matched": round(_auc(os_[k], ob[k], w), 3), "auc_plain": round(_auc(os_[k], ob[k]), 3),
                    "median_sig": round(float(np.median(os_[k])), 4), "median_bkg": round(float(np.median(ob[k])), 4)}
                for k in ob}  # fmt: skip
        out[sig] = {"n_sig_eff": round(float(w.sum() ** 2 / (w**2).sum()), 1), "observables": rows}
    return out


def one_sided(data: Path) -> dict[str, Any]:
    """Development check on the OLD (seen) test events: signed sums of per-feature quantiles."""
    allj = read_candidates(data / "jetht", max_events=3500)
    parts = {"train": take_events(allj, 0, 1200), "ref": take_events(allj, 1500, 2500),
             "test": take_events(allj, 2500, 3500)}  # fmt: skip
    parts.update({s: read_candidates(data / s) for s in ALL_SIGNALS})
    f = {k: substructure_features(c) for k, c in parts.items()}
    sign = np.array([+1, +1, -1, -1, +1, +1, +1, +1])  # heavier, two-prong, wider = anomalous
    cals = [HTCalibration.fit(f["train"][:, k], parts["train"].ht) for k in range(sign.size)]

    def z(n: str) -> np.ndarray:
        return sign * np.stack(
            [cal.transform(f[n][:, k], parts[n].ht) for k, cal in enumerate(cals)], 1
        )

    variants = {"two_prong_sum": lambda v: v[:, :4].sum(1), "wide_sum": lambda v: v[:, 4:].sum(1),
                "max_of_groups": lambda v: np.maximum(v[:, :4].sum(1), v[:, 4:].sum(1)),
                "max_single": lambda v: v.max(1)}  # fmt: skip
    out: dict[str, Any] = {}
    for name, fn in variants.items():
        cal = HTCalibration.fit(fn(z("ref")), parts["ref"].ht)
        b = cal.transform(fn(z("test")), parts["test"].ht)
        out[name] = {
            s: round(_auc(cal.transform(fn(z(s)), parts[s].ht), b), 3) for s in ALL_SIGNALS
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--parts", nargs="+", default=["truth", "matched", "one_sided"])
    args = p.parse_args()
    data = Path(args.data)
    res: dict[str, Any] = {"machine": machine()}
    if "truth" in args.parts:
        res["truth"] = {"wprime_wz_m500": truth_wprime(), "hv_dark_m500": truth_dark()}
    if "matched" in args.parts:
        res["matched"] = matched(data)
    if "one_sided" in args.parts:
        res["one_sided_dev"] = one_sided(data)
    emit(res, str(RESULTS / "anomaly_shape3_diagnosis.json"))


if __name__ == "__main__":
    sys.exit(main())
