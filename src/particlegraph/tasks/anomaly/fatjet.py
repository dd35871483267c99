"""Groomed large-R jet substructure: the observables issue 19's hadronic signals differ in.

A third attempt at issue 19's target, after the diagnosis of the fifth session (docs/anomaly.md,
"Why W' and the dark showers were invisible"): at matched HT, W' -> W Z -> 4 quarks (m = 500 GeV)
and the dark showers differ from QCD in their jets, but the R = 0.8 jets of
:mod:`particlegraph.tasks.anomaly.jetshape` contain both prongs of a 200 GeV W or Z only in
20-40 % of the decays (truth Delta R(q, q) median 0.9), their ungroomed mass is smeared by
pile-up 25, and the 32-feature density dilutes a few shifted features among many. Per event,
from the stored leading PF candidates (massless four-vectors), :data:`SUBSTRUCTURE_FEATURES`:

- ``lj1_mfrac``, ``lj2_mfrac``: trimmed mass of the two leading anti-kT R = 1.0 jets over the
  scalar sum of their pT. Trimming as ATLAS's standard large-R jets: the jet's constituents
  reclustered into kT subjets of R = 0.2, subjets below 5 % of the jet's pT dropped (the hardest
  one always kept), which removes most pile-up and soft radiation. A W or Z jet keeps its
  mass (80-91 GeV), a QCD jet of the same pT is light.
- ``lj1_tau21``, ``lj2_tau21``: N-subjettiness ratio tau_2 / tau_1 of the trimmed jets (tau_1
  about the trimmed jet's axis, tau_2 about its two exclusive-kT subjets): small for two prongs.
- ``j1_m_pt``, ``j2_m_pt``, ``j1_girth``, ``j2_girth``: mass / pT and girth (pT-weighted mean
  Delta R of the constituents to the axis) of the two leading anti-kT R = 0.4 jets: a dark-shower
  jet is a spray of 20 GeV dark-meson decays, wider and heavier than a QCD jet of its pT.

Every number is a ratio, an angle or a count: the clustering sequences and the trimming
(a pT fraction) do not change when every pT is multiplied by one factor, so the features do
not see the event scale (tested). Missing jets give zeros; a jet with fewer than two kept
constituents has tau21 = 0.
"""

from __future__ import annotations

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.physics.kinematics import delta_phi, massless_p4
from particlegraph.tasks.anomaly.jetshape import (
    Jets,
    cluster,
    constituent_index,
    kinematics,
    members_of,
    per_rank,
    subjet_distance,
)
from particlegraph.tasks.anomaly.samples import Candidates

LARGE_R, NARROW_R = 1.0, 0.4
#: Trimming: kT subjets of this radius, kept when above this fraction of the large-R jet's pT.
SUBJET_R, TRIM_FCUT = 0.2, 0.05
N_LARGE, N_NARROW = 2, 2
SUBSTRUCTURE_FEATURES = (
    "lj1_mfrac", "lj2_mfrac", "lj1_tau21", "lj2_tau21",
    "j1_m_pt", "j2_m_pt", "j1_girth", "j2_girth",
)  # fmt: skip


def trim(
    c: Candidates,
    jets: Jets,
    selected: np.ndarray,
    subjet_r: float = SUBJET_R,
    fcut: float = TRIM_FCUT,
) -> tuple[np.ndarray, np.ndarray]:
    """Trim the ``selected`` jets (indices into ``jets``, (S,)).

    Each jet's constituents are reclustered into kT subjets of radius ``subjet_r``; subjets
    with pT < ``fcut`` x the jet's pT are dropped (the hardest subjet is always kept).

    Returns:
        ``kept`` (K,) indices into ``c``'s candidates of the kept constituents, grouped by jet
        in the order of ``selected``, and ``group`` (K,) the position in ``selected`` of each.
    """
    if not (subjet_r > 0 and 0 <= fcut < 1):
        raise ConfigError(f"trimming needs subjet_r > 0 and 0 <= fcut < 1, got {subjet_r}, {fcut}")
    members, group = members_of(jets, selected)
    if members.size == 0:
        return members, group
    p4 = massless_p4(c.pt[members], c.eta[members], c.phi[members])
    counts = np.bincount(group, minlength=selected.size)
    per_group, const_per_sub, local = constituent_index(p4, counts, subjet_r, "kt")
    sub_group = np.repeat(np.arange(selected.size), per_group)
    sub_of_const = np.repeat(np.arange(const_per_sub.size), const_per_sub)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat = local + starts[sub_group[sub_of_const]]  # position in `members`
    sub_label = np.empty(members.size, dtype=np.int64)
    sub_label[flat] = sub_of_const
    sub_p4 = [np.bincount(sub_label, p4[:, i], minlength=const_per_sub.size) for i in range(4)]
    sub_pt = np.hypot(sub_p4[0], sub_p4[1])
    keep_sub = sub_pt >= fcut * jets.pt[selected][sub_group]
    hardest = np.lexsort((-sub_pt, sub_group))
    first = np.r_[True, sub_group[hardest][1:] != sub_group[hardest][:-1]]
    keep_sub[hardest[first]] = True
    keep = keep_sub[sub_label]
    return members[keep], group[keep]


def tau21_groups(c: Candidates, index: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """tau_2 / tau_1 (n,) of ``n`` groups of candidates (``index`` into ``c``, ``group`` (K,),
    grouped); tau_1 about the group's four-momentum axis, tau_2 about its two exclusive-kT
    subjets (R = 10); 0 for a group of fewer than 2 candidates."""
    out = np.zeros(n)
    counts = np.bincount(group, minlength=n)
    multi = counts >= 2
    if not multi.any():
        return out
    sel = multi[group]
    idx, grp = index[sel], group[sel]
    remap = np.cumsum(multi) - 1
    g = remap[grp]
    p4 = massless_p4(c.pt[idx], c.eta[idx], c.phi[idx])
    m = int(multi.sum())
    dr2 = subjet_distance(c, idx, g, m)
    _, j_eta, j_phi, _ = kinematics(
        np.stack([np.bincount(g, p4[:, i], minlength=m) for i in range(4)], 1)
    )
    eta, phi = c.eta[idx].astype(np.float64), c.phi[idx].astype(np.float64)
    cpt = c.pt[idx].astype(np.float64)
    spt = np.maximum(np.bincount(g, cpt, minlength=m), 1e-12)
    tau1 = np.bincount(g, cpt * np.hypot(eta - j_eta[g], delta_phi(phi, j_phi[g])), minlength=m)
    tau2 = np.bincount(g, cpt * dr2, minlength=m)
    out[multi] = np.where(tau1 > 0, (tau2 / spt) / np.maximum(tau1 / spt, 1e-12), 0.0)
    return out


def substructure_features(c: Candidates) -> np.ndarray:
    """(E, len(SUBSTRUCTURE_FEATURES)) float64 substructure observables (see the module)."""
    n = c.num_events
    large = cluster(c, LARGE_R)
    lead = np.flatnonzero(large.rank < N_LARGE)
    kept, group = trim(c, large, lead)
    p4 = massless_p4(c.pt[kept], c.eta[kept], c.phi[kept])
    tp4 = np.stack([np.bincount(group, p4[:, i], minlength=lead.size) for i in range(4)], 1)
    mass = np.zeros(large.pt.size)
    t21 = np.zeros(large.pt.size)
    mass[lead] = kinematics(tp4)[3]
    t21[lead] = tau21_groups(c, kept, group, lead.size)
    pt_sum = sum(per_rank(large, large.pt, k, n) for k in range(N_LARGE))
    cols: dict[str, np.ndarray] = {}
    for k in range(N_LARGE):
        cols[f"lj{k + 1}_mfrac"] = per_rank(large, mass, k, n) / np.maximum(pt_sum, 1e-12)
        cols[f"lj{k + 1}_tau21"] = per_rank(large, t21, k, n)
    narrow = cluster(c, NARROW_R)
    m_pt = narrow.mass / np.maximum(narrow.pt, 1e-12)
    for k in range(N_NARROW):
        cols[f"j{k + 1}_m_pt"] = per_rank(narrow, m_pt, k, n)
        cols[f"j{k + 1}_girth"] = per_rank(narrow, narrow.girth, k, n)
    return np.stack([cols[f] for f in SUBSTRUCTURE_FEATURES], axis=1)
