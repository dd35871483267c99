"""Event graphs: the 40 highest-pT PF candidates, their features and eta-phi kNN edges.

Raw node features (the exercise's five, in this order): ``pT`` [GeV], ``eta``, ``phi`` [rad],
``m`` [GeV] and the PDG id, both derived from the PF class and charge (charged hadrons are
pions, neutral hadrons K0_L, photons massless, electrons and muons with their masses; the PDG
sign is the particle's: 11 is e-, -11 is e+). A raw PDG number is not a feature a network can
use, so models other than ``gae-seed`` see :class:`Preprocessing` outputs instead: standardised
log pT and eta, sin/cos phi and a one-hot of the eight PDG codes (mass is a function of the
code and is dropped).

Frames: ``lab`` (default) keeps pT [GeV], eta and phi as measured; ``event`` makes them relative
to the event (:func:`event_frame`): pT as a fraction of the 40 nodes' scalar sum, eta and phi
(wrapped to [-pi, pi)) relative to the leading particle. An autoencoder on ``event``-frame inputs
cannot use the event's overall scale (HT), only its shape.

Edges: each particle's k = 3 nearest neighbours in (eta, phi) with phi wrapped
(:func:`particlegraph.graph.etaphi.knn_etaphi`), directed ``neighbour -> particle`` as in the
exercise, or symmetrised (default of the ``gae`` and ``node-ae`` models: an inner-product
decoder is symmetric, so a directed edge's reverse would otherwise count as a non-edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from particlegraph.errors import DataFileError
from particlegraph.graph.etaphi import knn_etaphi
from particlegraph.physics.kinematics import delta_phi
from particlegraph.tasks.anomaly.samples import Candidates

MAX_NODES = 40
RAW_FEATURES = ("pt", "eta", "phi", "mass", "pdg_id")
#: PDG codes of the one-hot (PF class and charge): pi+-, K0_L, photon, e-+, mu-+.
PDG_CODES = (211, -211, 130, 22, 11, -11, 13, -13)
PDG_LABELS = ("h+", "h-", "h0", "gamma", "e-", "e+", "mu-", "mu+")
MASS = {211: 0.13957, 130: 0.497611, 22: 0.0, 11: 0.000511, 13: 0.105658}  # GeV
PRE_FEATURES = ("log_pt", "eta", "sin_phi", "cos_phi", *(f"is_{p}" for p in PDG_LABELS))
FRAMES = ("lab", "event")


def event_frame(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Raw features (M, 5) of graphs (nodes grouped by event, leading particle first, ``offsets``
    (E+1,)) -> the same columns relative to the event: ``pT / sum_event pT`` (dimensionless),
    ``eta - eta_lead``, ``delta_phi(phi, phi_lead)`` in [-pi, pi); mass and PDG id unchanged."""
    counts = np.diff(offsets)
    event = np.repeat(np.arange(counts.size), counts)
    lead = offsets[:-1][counts > 0]
    first = np.zeros(counts.size, dtype=np.int64)
    first[counts > 0] = lead
    out = x.astype(np.float64).copy()
    total = np.bincount(event, out[:, 0], minlength=counts.size)
    out[:, 0] = out[:, 0] / np.maximum(total[event], 1e-12)
    out[:, 1] = out[:, 1] - x[first[event], 1]
    out[:, 2] = delta_phi(x[:, 2].astype(np.float64), x[first[event], 2].astype(np.float64))
    return out.astype(np.float32)


def pdg_ids(cls: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """PDG id per candidate from PF class (1-5) and charge [e]; 0 for class 0."""
    q = np.sign(charge).astype(np.int64)
    out = np.zeros(cls.shape, dtype=np.int64)
    out[cls == 1] = 211 * np.where(q[cls == 1] < 0, -1, 1)
    out[cls == 2] = 130
    out[cls == 3] = 22
    out[cls == 4] = np.where(q[cls == 4] > 0, -11, 11)
    out[cls == 5] = np.where(q[cls == 5] > 0, -13, 13)
    return out


def masses(pdg: np.ndarray) -> np.ndarray:
    """Mass [GeV] per PDG id (those of :data:`MASS`, 0 otherwise)."""
    apdg = np.abs(pdg)
    out = np.zeros(pdg.shape, dtype=np.float64)
    for code, m in MASS.items():
        out[apdg == code] = m
    return out


def select_top(
    offsets: np.ndarray, pt: np.ndarray, k: int = MAX_NODES, *, lowest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` highest-pT candidates of every event, in falling pT per event.

    Args:
        offsets: (E+1,) event boundaries into the flat arrays.
        pt: (C,) transverse momenta [GeV].
        k: candidates kept per event (all of them when an event has fewer).
        lowest: take the ``k`` *lowest*-pT ones instead, in rising pT (what the exercise's
            conversion script did by mistake; for like-for-like reproductions only).

    Returns:
        ``index`` (M,) into the flat arrays, grouped by event, and new ``offsets`` (E+1,).
        Ties in pT keep the original order (stable).
    """
    counts = np.diff(offsets)
    rank = np.arange(pt.size) - np.repeat(offsets[:-1], counts)
    step = np.diff(pt) if lowest else -np.diff(pt)
    if np.all((step >= 0) | (rank[1:] == 0)):  # already in order in every event (stored
        keep = np.flatnonzero(rank < k)  # samples are): the stable sort would not move anything
    else:
        event = np.repeat(np.arange(counts.size), counts)
        key = pt.astype(np.float64) if lowest else -pt.astype(np.float64)
        order = np.lexsort((key, event))  # by event, then falling (rising) pT, stable
        keep = order[rank < k]
    new_counts = np.minimum(counts, k)
    return keep, np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)


def raw_features(c: Candidates, index: np.ndarray) -> np.ndarray:
    """(M, 5) float32 ``(pT, eta, phi, m, pdg_id)`` of the candidates ``index``."""
    pdg = pdg_ids(c.cls[index], c.charge[index])
    return np.stack([c.pt[index], c.eta[index], c.phi[index], masses(pdg), pdg], axis=1).astype(
        np.float32
    )


def build_graphs(
    c: Candidates,
    *,
    k: int = 3,
    symmetric: bool = False,
    max_nodes: int = MAX_NODES,
    label: int = 0,
    lowest: bool = False,
    frame: str = "lab",
) -> list[Data]:
    """One PyG ``Data`` per event: ``x`` (n, 5) raw features, ``edge_index`` (2, E) local.

    Per-graph attributes (shape (1,)): ``y`` label, ``ht``, ``lead_jet_mass``, ``n_cand`` and
    ``event`` (the event's position in ``c``). Events without candidates are kept as graphs with
    zero nodes so row i of every output still belongs to event i. ``lowest``: the exercise's
    40 lowest-pT candidates (see :func:`select_top`). ``frame``: ``lab`` or ``event``
    (:func:`event_frame`; the kNN edges are the same, distances being translation invariant).
    """
    if frame not in FRAMES:
        raise DataFileError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    index, offsets = select_top(c.offsets, c.pt, max_nodes, lowest=lowest)
    x = torch.from_numpy(raw_features(c, index))
    counts = np.diff(offsets)
    batch = torch.from_numpy(np.repeat(np.arange(counts.size), counts))
    ei = knn_etaphi(x[:, 1], x[:, 2], k, batch, symmetric=symmetric)  # sorted by target
    if frame == "event":
        x = torch.from_numpy(event_frame(x.numpy(), offsets))
    edge_off = np.searchsorted(ei[1].numpy(), offsets)
    out = []
    for e in range(counts.size):
        lo, hi = int(offsets[e]), int(offsets[e + 1])
        sub = ei[:, edge_off[e] : edge_off[e + 1]] - lo
        out.append(
            Data(
                x=x[lo:hi],
                edge_index=sub,
                y=torch.tensor([label]),
                ht=torch.tensor([float(c.ht[e])]),
                lead_jet_mass=torch.tensor([float(c.lead_jet_mass[e])]),
                n_cand=torch.tensor([int(c.n_cand[e])]),
                event=torch.tensor([e]),
            )
        )
    return out


@dataclass(frozen=True)
class Preprocessing:
    """Standardisation of log pT and eta (fitted on the training graphs) + fixed encodings.

    Stored with a run (``preprocessing.json``) and inside the model as buffers.
    """

    log_pt_mean: float
    log_pt_std: float
    eta_mean: float
    eta_std: float

    @classmethod
    def fit(cls, x: Tensor) -> Preprocessing:
        """Fit on raw features (N, 5) of the training graphs."""
        if x.shape[0] < 2:
            raise DataFileError("need at least two particles to fit the preprocessing")
        lp = torch.log(x[:, 0].clamp_min(1e-6))
        return cls(float(lp.mean()), float(lp.std().clamp_min(1e-6)),
                   float(x[:, 1].mean()), float(x[:, 1].std().clamp_min(1e-6)))  # fmt: skip


def preprocess(x: Tensor, p: Preprocessing | Tensor) -> Tensor:
    """Raw (N, 5) -> model inputs (N, 12) ``(log pT, eta standardised, sin phi, cos phi, one-hot)``.

    ``p`` may be a :class:`Preprocessing` or a tensor ``(log_pt_mean, log_pt_std, eta_mean,
    eta_std)`` (the form kept as a model buffer). Unknown PDG ids get an all-zero one-hot.
    """
    if isinstance(p, Preprocessing):
        p = torch.tensor([p.log_pt_mean, p.log_pt_std, p.eta_mean, p.eta_std])
    p = p.to(x.dtype)
    lp = (torch.log(x[:, 0].clamp_min(1e-6)) - p[0]) / p[1]
    eta = (x[:, 1] - p[2]) / p[3]
    codes = torch.tensor(PDG_CODES, dtype=x.dtype, device=x.device)
    onehot = (x[:, 4:5].round() == codes[None, :]).to(x.dtype)  # (N, 8)
    return torch.cat(
        [lp[:, None], eta[:, None], torch.sin(x[:, 2:3]), torch.cos(x[:, 2:3]), onehot], 1
    )
