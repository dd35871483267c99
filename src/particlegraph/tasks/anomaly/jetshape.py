"""Jet-shape observables: scale-free per-jet and event-shape numbers from the stored candidates.

A second attempt at issue 19's target (after :mod:`particlegraph.tasks.anomaly.shape`): the
signals differ from QCD jets in *how* their energy is arranged inside jets, which no HT-like
number sees. From the stored leading PF candidates of each event (massless four-vectors from
pT, eta, phi), reclustered with anti-kT (fastjet, every candidate in a jet, no pT threshold), per
event (:data:`JET_FEATURES`):

- ``met_frac``: |vector sum pT| / scalar sum pT of all stored candidates. Neutrinos from tau and
  semileptonic b decays (LQ -> b tau) leave the visible event unbalanced.
- ``sph_t``: linearised transverse sphericity ``2 l2 / (l1 + l2)`` of the tensor
  ``sum p_a p_b / pT / sum pT`` (a, b = x, y) of the narrow jets carrying >= 5 % of the jets'
  scalar sum pT: 0 for a back-to-back dijet, 1 for an isotropic event. Dark showers (many soft jets) and four-quark decays (W' -> W Z) are rounder than QCD 2 -> 2.
- Large-R jets (R = 0.8, the two leading): ``fj1_m_pt``, ``fj2_m_pt`` (mass / pT: a boosted W, Z
  or top jet is heavy for its pT, a QCD jet light), ``fj1_tau21``, ``fj2_tau21`` (N-subjettiness
  ratio tau_2 / tau_1, axes from exclusive kT: small for a two-prong W/Z jet), ``fj_deta``
  (|eta_1 - eta_2|: an s-channel resonance decays centrally, QCD 2 -> 2 is mostly t-channel and
  forward) and ``fj_pt_ratio`` (pT_2 / pT_1: a two-body decay is balanced).
- Narrow jets (R = 0.4, the four leading): ``j{k}_nch`` (charged constituents: a hadronic tau has
  1 or 3, a gluon jet many, a dark-shower jet more) and ``j{k}_girth`` (pT-weighted mean Delta R of
  the constituents to the jet axis: tau jets are narrow, gluon and dark-shower jets wide).
- ``n_tau_like``: narrow jets with >= 10 % of the jets' scalar sum pT, 1-3 charged constituents
  and girth < 0.05 (a hadronic tau's footprint).

Every number is a ratio, an angle or a count, and anti-kT / kT clustering sequences do not
change when every pT is multiplied by the same factor, so the features do not see the event
scale (tested). Missing jets (an event with fewer jets) give zeros. Each event's tau_N uses
``tau_N = sum_i pT_i min_k Delta R(i, axis_k) / sum_i pT_i`` (no R normalisation: it cancels in
the ratio); tau21 = 0 for a jet with fewer than 2 constituents.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.physics.kinematics import delta_phi, massless_p4
from particlegraph.tasks.anomaly.samples import Candidates

N_FAT, N_NARROW = 2, 4
FAT_R, NARROW_R = 0.8, 0.4
#: Tau-like narrow jet: share of the jets' scalar sum pT, charged constituents, girth.
TAU_MIN_SHARE, TAU_MAX_NCH, TAU_MAX_GIRTH = 0.1, 3, 0.05
#: Narrow jets entering the sphericity: at least this share of the event's jet scalar sum pT.
SPH_MIN_SHARE = 0.05
JET_FEATURES = (
    "met_frac", "sph_t", "fj1_m_pt", "fj2_m_pt", "fj1_tau21", "fj2_tau21", "fj_deta",
    "fj_pt_ratio", *(f"j{k}_nch" for k in range(1, N_NARROW + 1)),
    *(f"j{k}_girth" for k in range(1, N_NARROW + 1)), "n_tau_like",
)  # fmt: skip


@dataclass(frozen=True)
class Jets:
    """Inclusive jets of many events, flat (J jets, C candidates).

    ``label`` (C,) is the jet of each candidate; ``event``, ``rank`` (0 = leading pT in its
    event), ``pt`` [GeV], ``eta``, ``phi`` [rad], ``mass`` [GeV], ``girth`` (pT-weighted mean
    Delta R of the constituents to the jet axis), ``nch`` (charged constituents) and
    ``n_const`` are (J,).
    """

    label: np.ndarray
    event: np.ndarray
    rank: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    girth: np.ndarray
    nch: np.ndarray
    n_const: np.ndarray


def kinematics(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pt, eta, phi, mass) of (N, 4) four-vectors (px, py, pz, E)."""
    pt = np.hypot(p4[:, 0], p4[:, 1])
    eta = np.arcsinh(p4[:, 2] / np.maximum(pt, 1e-12))
    phi = np.arctan2(p4[:, 1], p4[:, 0])
    m2 = p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(1)
    return pt, eta, phi, np.sqrt(np.maximum(m2, 0.0))


def constituent_index(
    p4: np.ndarray, counts: np.ndarray, radius: float, algorithm: str = "antikt"
) -> tuple[np.ndarray, ...]:
    """fastjet clustering (``antikt`` or ``kt``) of (C, 4) four-vectors in events of ``counts``
    (E,): jets per event (E,), constituents per jet (J,), the flat event-local indices (C,)."""
    import awkward as ak
    import fastjet

    algos = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm}
    if algorithm not in algos:
        raise ConfigError(f"jet algorithm must be one of {sorted(algos)}, got {algorithm!r}")
    arr = ak.zip({n: ak.unflatten(np.ascontiguousarray(p4[:, i]), counts)
                  for i, n in enumerate(("px", "py", "pz", "E"))})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(algos[algorithm], radius))
        ci = cs.constituent_index()
    jets_per_event = np.asarray(ak.num(ci, axis=1), dtype=np.int64)
    const_per_jet = np.asarray(ak.flatten(ak.num(ci, axis=2)), dtype=np.int64)
    local = np.asarray(ak.flatten(ci, axis=None), dtype=np.int64)
    return jets_per_event, const_per_jet, local


def cluster(c: Candidates, radius: float) -> Jets:
    """Anti-kT jets (``radius``) of every event of ``c``, every candidate in exactly one jet."""
    counts = np.diff(c.offsets)
    p4 = massless_p4(c.pt, c.eta, c.phi)
    jets_per_event, const_per_jet, local = constituent_index(p4, counts, radius)
    n_jets = int(const_per_jet.size)
    event = np.repeat(np.arange(counts.size), jets_per_event)
    jet_of_const = np.repeat(np.arange(n_jets), const_per_jet)
    flat = local + c.offsets[:-1][event[jet_of_const]]
    label = np.full(c.pt.size, -1, dtype=np.int64)
    label[flat] = jet_of_const
    if flat.size != c.pt.size or (label < 0).any():
        raise DataFileError("jet clustering lost candidates (fastjet returned a partial event)")
    jp4 = np.stack([np.bincount(label, p4[:, i], minlength=n_jets) for i in range(4)], 1)
    pt, eta, phi, mass = kinematics(jp4)
    order = np.lexsort((-pt, event))
    start = np.repeat(np.concatenate([[0], np.cumsum(jets_per_event)[:-1]]), jets_per_event)
    rank = np.empty(n_jets, dtype=np.int64)
    rank[order] = np.arange(n_jets) - start
    cpt = c.pt.astype(np.float64)
    dr = np.hypot(c.eta - eta[label], delta_phi(c.phi.astype(np.float64), phi[label]))
    spt = np.maximum(np.bincount(label, cpt, minlength=n_jets), 1e-12)
    girth = np.bincount(label, cpt * dr, minlength=n_jets) / spt
    nch = np.bincount(label, (c.charge != 0).astype(np.float64), minlength=n_jets)
    return Jets(label, event, rank, pt, eta, phi, mass, girth, nch, const_per_jet)


def members_of(jets: Jets, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of the ``selected`` jets (indices, (S,)), grouped by position in
    ``selected``: ``(index (K,) into the candidates, group (K,) in 0..S-1)``."""
    pos = np.full(jets.pt.size, -1, dtype=np.int64)
    pos[selected] = np.arange(selected.size)
    members = np.flatnonzero(pos[jets.label] >= 0)
    members = members[np.argsort(pos[jets.label[members]], kind="stable")]
    return members, pos[jets.label[members]]


def subjet_distance(c: Candidates, index: np.ndarray, group: np.ndarray, m: int) -> np.ndarray:
    """(K,) distance in (eta, phi) of each candidate ``index`` (K,) to the nearer of its group's
    two exclusive-kT subjet axes (R = 10, so nothing merges with the beam): the tau_2 axes.
    ``group`` (K,) numbers ``m`` groups 0..m-1 in order, each of at least 2 candidates."""
    import awkward as ak
    import fastjet

    p4 = massless_p4(c.pt[index], c.eta[index], c.phi[index])
    arr = ak.zip({n: ak.unflatten(np.ascontiguousarray(p4[:, i]), np.bincount(group, minlength=m))
                  for i, n in enumerate(("px", "py", "pz", "E"))})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(fastjet.kt_algorithm, 10.0))
        sub = cs.exclusive_jets(n_jets=2)
    axes = np.stack([np.asarray(ak.flatten(sub[n]), dtype=np.float64)
                     for n in ("px", "py", "pz", "E")], 1)  # fmt: skip
    _, a_eta, a_phi, _ = kinematics(axes)
    a_eta, a_phi = a_eta.reshape(-1, 2)[group], a_phi.reshape(-1, 2)[group]
    eta, phi = c.eta[index].astype(np.float64), c.phi[index].astype(np.float64)
    dr: np.ndarray = np.hypot(eta[:, None] - a_eta, delta_phi(phi[:, None], a_phi)).min(1)
    return dr


def tau21(c: Candidates, jets: Jets, selected: np.ndarray) -> np.ndarray:
    """N-subjettiness ratio tau_2 / tau_1 of the jets ``selected`` (indices, (S,)); (S,).

    Axes: tau_1 the jet axis, tau_2 the two exclusive-kT subjets of the constituents
    (:func:`subjet_distance`). Jets with fewer than 2 constituents get 0.
    """
    out = np.zeros(selected.size)
    ok = jets.n_const[selected] >= 2
    multi = selected[ok]
    if multi.size == 0:
        return out
    members, group = members_of(jets, multi)
    dr = subjet_distance(c, members, group, multi.size)
    cpt = c.pt[members].astype(np.float64)
    tau2 = np.bincount(group, cpt * dr) / np.maximum(np.bincount(group, cpt), 1e-12)
    tau1 = jets.girth[multi]
    out[ok] = np.where(tau1 > 0, tau2 / np.maximum(tau1, 1e-12), 0.0)
    return out


def per_rank(jets: Jets, values: np.ndarray, k: int, n_events: int) -> np.ndarray:
    """(E,) value of each event's rank-``k`` jet (0 when the event has fewer jets)."""
    out = np.zeros(n_events)
    sel = jets.rank == k
    out[jets.event[sel]] = values[sel]
    return out


def _met_frac(c: Candidates) -> np.ndarray:
    """(E,) |vector sum pT| / scalar sum pT of all stored candidates."""
    n = c.num_events
    event = np.repeat(np.arange(n), np.diff(c.offsets))
    pt, phi = c.pt.astype(np.float64), c.phi.astype(np.float64)
    spt = np.maximum(np.bincount(event, pt, minlength=n), 1e-12)
    px = np.bincount(event, pt * np.cos(phi), minlength=n)
    py = np.bincount(event, pt * np.sin(phi), minlength=n)
    return np.asarray(np.hypot(px, py) / spt)


def transverse_sphericity(event: np.ndarray, pt: np.ndarray, phi: np.ndarray, n: int) -> np.ndarray:
    """(E,) linearised transverse sphericity ``2 l2 / (l1 + l2)`` of the objects (event index,
    pT, phi; (N,) each) of ``n`` events: eigenvalues of ``sum_i pT_i u_i u_i^T / sum_i pT_i`` with
    ``u_i = (cos phi_i, sin phi_i)``; 0 when an event has no objects."""
    spt = np.bincount(event, pt, minlength=n)
    w = pt / np.maximum(spt[event], 1e-12)
    cos, sin = np.cos(phi), np.sin(phi)
    sxx = np.bincount(event, w * cos * cos, minlength=n)
    syy = np.bincount(event, w * sin * sin, minlength=n)
    sxy = np.bincount(event, w * cos * sin, minlength=n)
    tr = sxx + syy  # 1 for an event with objects
    l2 = 0.5 * (tr - np.sqrt(np.maximum((sxx - syy) ** 2 + 4 * sxy**2, 0.0)))
    return np.asarray(2 * np.maximum(l2, 0.0) / np.maximum(tr, 1e-12))


def jet_features(c: Candidates) -> np.ndarray:
    """(E, len(JET_FEATURES)) float64 jet-shape observables of every event (see the module)."""
    n = c.num_events
    cols = {"met_frac": _met_frac(c)}
    fat = cluster(c, FAT_R)
    lead = np.flatnonzero(fat.rank < N_FAT)
    t21 = np.zeros(fat.pt.size)
    t21[lead] = tau21(c, fat, lead)
    m_pt = fat.mass / np.maximum(fat.pt, 1e-12)
    pt1, pt2 = (per_rank(fat, fat.pt, k, n) for k in (0, 1))
    for k in (0, 1):
        cols[f"fj{k + 1}_m_pt"] = per_rank(fat, m_pt, k, n)
        cols[f"fj{k + 1}_tau21"] = per_rank(fat, t21, k, n)
    etas = [per_rank(fat, fat.eta, k, n) for k in (0, 1)]
    cols["fj_deta"] = np.where(pt2 > 0, np.abs(etas[0] - etas[1]), 0.0)
    cols["fj_pt_ratio"] = pt2 / np.maximum(pt1, 1e-12)
    narrow = cluster(c, NARROW_R)
    for k in range(N_NARROW):
        cols[f"j{k + 1}_nch"] = per_rank(narrow, narrow.nch, k, n)
        cols[f"j{k + 1}_girth"] = per_rank(narrow, narrow.girth, k, n)
    share = (
        narrow.pt
        / np.maximum(np.bincount(narrow.event, narrow.pt, minlength=n), 1e-12)[narrow.event]
    )
    hard = share >= SPH_MIN_SHARE
    cols["sph_t"] = transverse_sphericity(narrow.event[hard], narrow.pt[hard], narrow.phi[hard], n)
    tau_like = (share >= TAU_MIN_SHARE) & (narrow.nch >= 1) & (narrow.nch <= TAU_MAX_NCH)
    tau_like &= narrow.girth < TAU_MAX_GIRTH
    cols["n_tau_like"] = np.bincount(narrow.event[tau_like], minlength=n).astype(np.float64)
    return np.stack([cols[f] for f in JET_FEATURES], axis=1)
