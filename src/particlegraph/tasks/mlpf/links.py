"""Track-calorimeter link features: the classical particle-flow link step as network inputs.

A rule-based particle flow links every track to the calorimeter cell it enters and compares the
cell's energy with the linked tracks' momenta; what is left over is neutral. The GNN can in
principle learn that comparison from its neighbours, but with a small model and a few thousand
events it did not: on 200 unseen ttbar PU 50 events the issue-11 model called 42 % of the towers
whose generator target is a neutral hadron above 10 GeV "no particle" (the rule-based PF: 6 %),
because a tower does not know which tracks point at it (docs/benchmarks.md, "MLPF link features").

:func:`link_features` computes the link from the columns of ``X`` alone, so it works for generated,
Delphes pkl and Delphes ROOT events alike:

- every track except a muon (``is_gen_muon``) is linked to the nearest tower in (eta, phi) of its
  calorimeter entry point (``eta_outer``, ``phi_outer``) that measured energy in the right
  sub-detector (ECAL for ``is_gen_electron`` tracks, HCAL otherwise), if that tower is closer than
  :data:`LINK_MAX_DR` (an HCAL tower is 0.087 x 0.087; Delphes links a track to the tower it hits);
- per tower, ``P`` = the summed momentum of the tracks linked to it, ``n`` their number, ``E`` its
  energy; a track gets the values of its tower (zeros when it is not linked).

Output (N, 4) float: ``log1p(P)``, ``log1p(E)``, ``sign(E - P) log1p(|E - P|)``, ``log1p(n)``,
the energies in GeV before the log. The features are constants of the input (no gradient flows
through the nearest-tower choice); LRP attributes their relevance to the element's own energy
column (``p|E``), see :class:`~particlegraph.tasks.mlpf.model.InputEncoding`.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from particlegraph.graph.knn import event_ptr
from particlegraph.sim import elements as schema

#: Number of link features per element.
NUM_LINK_FEATURES = 4
#: Largest (eta, phi) distance between a track's calorimeter entry point and its linked tower.
LINK_MAX_DR = 0.15


def _one_event(x: Tensor) -> Tensor:
    """Link features (N, 4) of one event ``x`` (N, 12) float.

    Written without Python-side sizes or loops (boolean masks, ``nonzero``, a dense track x tower
    distance matrix and matrix products), so ONNX export traces it for any N; memory is
    O(tracks x towers), about 50 MB for a 6,400-element event.
    """
    n = x.shape[0]
    is_tower = x[:, 0] == schema.ELEM_TOWER
    is_track = x[:, 0] == schema.ELEM_TRACK
    tracks = torch.nonzero(is_track & (x[:, 10] < 0.5)).squeeze(1)  # muons are not linked
    towers = torch.nonzero(is_tower).squeeze(1)
    t_eta, t_sin, t_cos = x[towers, 2], x[towers, 3], x[towers, 4]
    k_eta, k_sin, k_cos = x[tracks, 6], x[tracks, 7], x[tracks, 8]
    # delta phi in (-pi, pi] from the angle-difference formulas (wraps at pi, exports to ONNX)
    dphi = torch.atan2(
        k_sin[:, None] * t_cos[None, :] - k_cos[:, None] * t_sin[None, :],
        k_cos[:, None] * t_cos[None, :] + k_sin[:, None] * t_sin[None, :],
    )
    d2 = (k_eta[:, None] - t_eta[None, :]) ** 2 + dphi**2  # (K, W)
    electron = x[tracks, 11] > 0.5
    em, had = (x[towers, 6] > 0)[None, :], (x[towers, 7] > 0)[None, :]
    allowed = (electron[:, None] & em) | (~electron[:, None] & had)  # (onnxruntime: no bool Where)
    allowed = allowed & (d2 < LINK_MAX_DR**2)
    d2 = torch.where(allowed, d2, torch.full_like(d2, float("inf")))
    # one extra "no tower" column keeps min() defined when an event has no tower
    d2 = torch.cat([d2, torch.full_like(k_eta[:, None], float("inf"))], dim=1)
    best, nearest = d2.min(dim=1)
    w = towers.shape[0]
    slots = torch.arange(w + 1, device=x.device)
    link = (nearest[:, None] == slots[None, :]) & torch.isfinite(best)[:, None]  # (K, W + 1)
    link = link[:, :w].to(x.dtype)
    p_track = x[tracks, 5]
    p_tower = (link * p_track[:, None]).sum(dim=0)  # (W,) summed momentum of the linked tracks
    n_tower = link.sum(dim=0)
    e_tower = x[towers, 5]
    # a track reads its tower's values (zeros when not linked)
    tower_vals = torch.stack([p_tower, e_tower, n_tower], dim=-1)  # (W, 3)
    track_vals = link @ tower_vals  # (K, 3)
    vals = torch.zeros(n, 3, dtype=x.dtype, device=x.device)
    vals[towers] = tower_vals
    vals[tracks] = track_vals
    p_el, e_el, n_el = vals.unbind(-1)
    resid = e_el - p_el
    return torch.stack(
        [
            torch.log1p(p_el),
            torch.log1p(e_el.clamp_min(0.0)),
            torch.sign(resid) * torch.log1p(resid.abs()),
            torch.log1p(n_el),
        ],
        dim=-1,
    )


@torch.no_grad()
def link_features(x: Tensor, batch: Tensor | None = None) -> Tensor:
    """Link features (N, 4) of the elements ``x`` (N, 12) of one or more events.

    Args:
        x: element features in the ``X`` layout (:mod:`particlegraph.sim.elements`).
        batch: (N,) event index of each element, sorted (PyG batches are); None = one event.

    Raises:
        ValueError: ``batch`` is not sorted.
    """
    xf = x if x.dtype == torch.float64 else x.float()  # float32 at least, float64 kept
    if batch is None:
        return _one_event(xf).to(x.dtype)
    parts = [_one_event(xf[a:b]) for a, b in itertools.pairwise(event_ptr(batch, x.shape[0]))]
    out = torch.cat(parts) if parts else xf.new_zeros(0, NUM_LINK_FEATURES)
    return out.to(x.dtype)
