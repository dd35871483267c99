"""Delphes ROOT output (``Delphes`` tree) -> MLPF events, read with uproot.

Reads the branches written by DelphesPythia8 / DelphesHepMC with the standard CMS card:
``Track``, ``Tower``, ``Particle`` (required) and ``EFlowTrack``, ``EFlowPhoton``,
``EFlowNeutralHadron`` (optional). Branch names are found at any depth (``Track/Track.PT``
or a flat ``Track.PT``).

Rows of ``X``: **tracks first, then towers** (the order of the public Delphes MLPF ntuples),
each in the order of its branch. Features follow :mod:`particlegraph.sim.elements`; a track's
``p`` is ``Track.P`` when present, else ``PT cosh(Eta)``; the muon / electron flags come from
``Track.PID`` (Delphes copies the generator PID onto the track), else from the referenced
``Particle``.

``ygen`` (what the reader can recover):

- track: the generator particle it was made from, through the ``Track.Particle`` reference
  (a ``TRef`` whose unique ID is matched to ``Particle.fUniqueID``; without that branch the
  Delphes convention UID = index + 1 is used). Without readable references the nearest charged
  final-state particle within ``ΔR < 0.01`` is used (Delphes keeps the particle direction on
  the track and smears only its momentum).
- tower: the sum of the final-state particles that reached it and have no track (neutrinos and
  muons excluded), with the class of the largest energy contribution among neutral hadron,
  charged hadron, photon and electron; a charged-hadron tower beyond the tracker
  (``|eta| > 2.5``) becomes a neutral hadron, and neutral-hadron towers below
  ``neutral_min_energy`` (0 GeV by default; the public dataset used 9 GeV) get class 0.
  Particles come from ``Tower.Particles`` (``TRefArray``) when readable; otherwise each
  particle is assigned to the nearest tower in (eta, phi) of its momentum within
  ``ΔR < tower_dr`` — exact for neutral particles, approximate for charged ones, whose
  bending in the field is ignored. A particle listed by several towers counts in the first.
- the charge is the physical charge (``Particle.Charge``); lepton charges are not flipped.

``ycand`` (Delphes particle flow): each ``EFlowTrack`` goes to the track with the same
direction (nearest within ``ΔR < 0.01``; it is a copy of the track), class electron / muon /
charged hadron from its PID, ``E = sqrt(p² + m²)`` with the class mass. Each ``EFlowPhoton``
(class photon) and ``EFlowNeutralHadron`` (class neutral hadron) goes to the nearest tower
within ``tower_dr``; when a tower receives several candidates the most energetic one is kept.
Without the EFlow branches ``ycand`` is all zeros.

Why ~480 lines: one reader of one format, branch by branch; its helpers are private to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from particlegraph.errors import DataFileError, brief
from particlegraph.graph.etaphi import nearest_etaphi as nearest
from particlegraph.physics.kinematics import pt_eta_phi
from particlegraph.sim.elements import (
    ELEM_TOWER,
    ELEM_TRACK,
    MLPFEvent,
    ParticleClass,
    target_rows,
)
from particlegraph.tasks.mlpf.schema import checked

PathLike = str | os.PathLike[str]
_DAMAGED = "the file is truncated or damaged (copy it again or re-run Delphes)"

REQUIRED = {
    "Track": ("PT", "Eta", "Phi", "EtaOuter", "PhiOuter", "Charge"),
    "Tower": ("ET", "Eta", "Phi", "E", "Eem", "Ehad"),
    "Particle": ("PID", "Status", "Charge", "PT", "Eta", "Phi", "E"),
}
OPTIONAL = {"Track": ("P", "PID"), "Particle": ("fUniqueID",)}
REFERENCES = {"Track": "Particle", "Tower": "Particles"}
EFLOW = {
    "EFlowTrack": ("PT", "Eta", "Phi", "Charge", "PID"),
    "EFlowPhoton": ("ET", "Eta", "Phi", "E"),
    "EFlowNeutralHadron": ("ET", "Eta", "Phi", "E"),
}

#: Masses [GeV] used for the energy of track candidates: pion, electron, muon.
MASS_PION, MASS_ELECTRON, MASS_MUON = 0.13957, 0.000511, 0.10566
TRACKER_ETA = 2.5
NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class RootReadOptions:
    """Matching settings of the Delphes ROOT reader."""

    tree: str = "Delphes"  # name of the TTree
    track_dr: float = 0.01  # ΔR to match tracks to particles / EFlowTracks when no reference
    tower_dr: float = 0.15  # ΔR to match particles / EFlow neutrals to towers (~1.5 HCAL cells)
    neutral_min_energy: float = 0.0  # [GeV] neutral-hadron towers below this get class 0
    step_size: int = 100  # events read per chunk


# --- small pure helpers ----------------------------------------------------------------------


def particle_class(pid: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """Target class per particle from the PDG id and charge (int64, values of ParticleClass)."""
    apid = np.abs(np.asarray(pid, dtype=np.int64))
    cls = np.where(
        np.asarray(charge) != 0, ParticleClass.CHARGED_HADRON, ParticleClass.NEUTRAL_HADRON
    )
    cls = np.where(apid == 22, ParticleClass.PHOTON, cls)
    cls = np.where(apid == 11, ParticleClass.ELECTRON, cls)
    cls = np.where(apid == 13, ParticleClass.MUON, cls)
    return cls.astype(np.int64)


def _uid_lookup(uids: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted UIDs and the particle index of each, for ``np.searchsorted`` lookups."""
    if uids is None:  # Delphes numbers the stored particles 1..n in each event
        return np.arange(1, n + 1, dtype=np.int64), np.arange(n, dtype=np.int64)
    uids = np.asarray(uids, dtype=np.int64)
    order = np.argsort(uids, kind="stable")
    return uids[order], order


def _resolve(refs: np.ndarray, lookup: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Reference UIDs -> particle indices (-1 when the UID is 0 or not stored)."""
    sorted_uids, index = lookup
    refs = np.asarray(refs, dtype=np.int64)
    out = np.full(len(refs), -1, dtype=np.int64)
    if len(sorted_uids) == 0:
        return out
    pos = np.clip(np.searchsorted(sorted_uids, refs), 0, len(sorted_uids) - 1)
    hit = (sorted_uids[pos] == refs) & (refs > 0)
    out[hit] = index[pos[hit]]
    return out


def _keep_most_energetic(elem: np.ndarray, energy: np.ndarray, n_elem: int) -> np.ndarray:
    """Per element, the candidate with the largest energy (-1: none). elem (C,) -> (n_elem,)."""
    best = np.full(n_elem, -1, dtype=np.int64)
    cand = np.flatnonzero(elem >= 0)
    if len(cand) == 0:
        return best
    cand = cand[np.lexsort((energy[cand], elem[cand]))]  # by element, then increasing energy
    last = np.r_[elem[cand][1:] != elem[cand][:-1], True]  # last (most energetic) of each element
    best[elem[cand[last]]] = cand[last]
    return best


# --- one event -------------------------------------------------------------------------------


def build_event(ev: Mapping[str, Any], options: RootReadOptions | None = None) -> MLPFEvent:
    """Turn one event's branch values into an :class:`MLPFEvent`.

    Args:
        ev: per-event numpy arrays keyed by Delphes leaf name (``"Track.PT"``, ...). The
            references are optional: ``"Track.Particle"`` (T,) UIDs, ``"Tower.Particles"`` a
            pair ``(counts (W,), uids (sum(counts),))`` of the towers' particle UIDs, and
            ``"Particle.fUniqueID"`` (P,).
        options: matching settings.

    Returns:
        ``X`` (T + W, 12), ``ygen``/``ycand`` (T + W, 7): tracks first, then towers.
    """
    opt = options or RootReadOptions()
    f = {k: np.asarray(v) for k, v in ev.items() if k != "Tower.Particles"}
    n_twr = len(f["Tower.ET"])
    gen = _GenParticles.from_branches(f)
    t_eta, t_phi = f["Track.Eta"].astype(np.float64), f["Track.Phi"].astype(np.float64)
    t_gen = _track_particles(f, gen, t_eta, t_phi, opt)
    x_trk = _track_features(f, gen, t_gen)
    w_eta, w_phi = f["Tower.Eta"].astype(np.float64), f["Tower.Phi"].astype(np.float64)
    x_twr = _tower_features(f, w_eta, w_phi)

    # ygen of tracks: the referenced particle
    ok = t_gen >= 0
    g = np.maximum(t_gen, 0)
    ygen_trk = target_rows(
        np.where(ok, gen.cls[g], ParticleClass.NONE), gen.charge[g], gen.pt[g], gen.eta[g],
        gen.phi[g], gen.e[g],
    )  # fmt: skip

    # ygen of towers: the visible, track-less particles that reached each tower
    pidx, tower_of = _tower_particles(ev, gen, t_gen[ok], w_eta, w_phi, opt)
    ygen_twr = _tower_targets(
        n_twr, tower_of, gen.cls[pidx], gen.charge[pidx], gen.pt[pidx], gen.eta[pidx],
        gen.phi[pidx], gen.e[pidx], opt.neutral_min_energy,
    )  # fmt: skip

    ycand_trk, ycand_twr = _candidates(f, t_eta, t_phi, w_eta, w_phi, opt)
    return MLPFEvent(
        np.concatenate([x_trk, x_twr]),
        np.concatenate([ygen_trk, ygen_twr]),
        np.concatenate([ycand_trk, ycand_twr]),
    )


class _GenParticles(NamedTuple):
    """The generator particles of one event (P,) each, with their UID lookup."""

    pid: np.ndarray
    charge: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray
    cls: np.ndarray  # particle class (ParticleClass)
    stable: np.ndarray  # status 1
    lookup: tuple[np.ndarray, np.ndarray]  # sorted UIDs, their indices (see _uid_lookup)

    @classmethod
    def from_branches(cls, f: Mapping[str, np.ndarray]) -> _GenParticles:
        pid = f["Particle.PID"].astype(np.int64)
        charge = f["Particle.Charge"].astype(np.float64)
        pt, eta, phi, e = (f[f"Particle.{k}"].astype(np.float64) for k in ("PT", "Eta", "Phi", "E"))
        return cls(pid, charge, pt, eta, phi, e, particle_class(pid, charge),
                   f["Particle.Status"] == 1, _uid_lookup(f.get("Particle.fUniqueID"), len(pid)))  # fmt: skip


def _track_particles(
    f: Mapping[str, np.ndarray], gen: _GenParticles, t_eta: np.ndarray, t_phi: np.ndarray,
    opt: RootReadOptions,
) -> np.ndarray:  # fmt: skip
    """(T,) index of each track's particle (-1: none): the reference, else the nearest charged."""
    if "Track.Particle" in f:
        return _resolve(f["Track.Particle"], gen.lookup)
    charged = np.flatnonzero(gen.stable & (gen.charge != 0))
    t_gen = nearest(t_eta, t_phi, gen.eta[charged], gen.phi[charged], opt.track_dr)
    return np.where(t_gen >= 0, charged[np.maximum(t_gen, 0)], -1) if len(charged) else t_gen


def _track_features(
    f: Mapping[str, np.ndarray], gen: _GenParticles, t_gen: np.ndarray
) -> np.ndarray:
    """(T, 12) track rows of ``X``."""
    t_pt, t_eta, t_phi = (f[f"Track.{k}"].astype(np.float64) for k in ("PT", "Eta", "Phi"))
    t_p = f["Track.P"].astype(np.float64) if "Track.P" in f else t_pt * np.cosh(t_eta)
    if "Track.PID" in f:
        t_apid = np.abs(f["Track.PID"].astype(np.int64))
    else:
        t_apid = np.where(t_gen >= 0, np.abs(gen.pid[np.maximum(t_gen, 0)]), 0)
    phi_out = f["Track.PhiOuter"].astype(np.float64)
    return np.stack(
        [
            np.full(len(t_pt), ELEM_TRACK), t_pt, t_eta, np.sin(t_phi), np.cos(t_phi), t_p,
            f["Track.EtaOuter"], np.sin(phi_out), np.cos(phi_out), f["Track.Charge"],
            t_apid == 13, t_apid == 11,
        ],
        axis=1,
    ).astype(np.float32)  # fmt: skip


def _tower_features(
    f: Mapping[str, np.ndarray], w_eta: np.ndarray, w_phi: np.ndarray
) -> np.ndarray:
    """(W, 12) tower rows of ``X``."""
    x_twr = np.zeros((len(w_eta), 12), dtype=np.float32)
    x_twr[:, 0] = ELEM_TOWER
    x_twr[:, 1], x_twr[:, 2] = f["Tower.ET"], w_eta
    x_twr[:, 3], x_twr[:, 4] = np.sin(w_phi), np.cos(w_phi)
    x_twr[:, 5], x_twr[:, 6], x_twr[:, 7] = f["Tower.E"], f["Tower.Eem"], f["Tower.Ehad"]
    return x_twr


def _tower_particles(
    ev: Mapping[str, Any], gen: _GenParticles, tracked: np.ndarray, w_eta: np.ndarray,
    w_phi: np.ndarray, opt: RootReadOptions,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(particle index, tower index) of the visible, track-less particles that reached a tower.

    From the towers' particle references when the file has them (one tower per particle),
    else the nearest tower within ``opt.tower_dr``.
    """
    has_track = np.zeros(len(gen.pid), dtype=bool)
    has_track[tracked] = True
    visible = gen.stable & ~has_track & ~np.isin(np.abs(gen.pid), (*NEUTRINOS, 13))
    if ev.get("Tower.Particles") is not None:
        counts, uids = ev["Tower.Particles"]
        pidx = _resolve(uids, gen.lookup)
        tower_of = np.repeat(np.arange(len(w_eta)), np.asarray(counts, dtype=np.int64))
        keep = pidx >= 0
        pidx, tower_of = pidx[keep], tower_of[keep]
        pidx, first = np.unique(pidx, return_index=True)  # one tower per particle
        tower_of = tower_of[first]
        sel = visible[pidx]
        return pidx[sel], tower_of[sel]
    pidx = np.flatnonzero(visible & (np.abs(gen.eta) < 5.0))
    tower_of = nearest(gen.eta[pidx], gen.phi[pidx], w_eta, w_phi, opt.tower_dr)
    return pidx[tower_of >= 0], tower_of[tower_of >= 0]


def _tower_targets(
    n_twr: int,
    tower_of: np.ndarray,
    cls: np.ndarray,
    charge: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
    neutral_min_energy: float,
) -> np.ndarray:
    """Sum the particles of each tower (4-vectors) and pick the class of the largest energy.

    Shapes: particles (M,) with their tower index ``tower_of`` -> (n_twr, 7) float32.
    """
    classes = (
        ParticleClass.NEUTRAL_HADRON, ParticleClass.CHARGED_HADRON,
        ParticleClass.PHOTON, ParticleClass.ELECTRON,
    )  # fmt: skip
    e_by_class = np.zeros((n_twr, len(classes)))
    for j, c in enumerate(classes):
        m = cls == c
        e_by_class[:, j] = np.bincount(tower_of[m], weights=energy[m], minlength=n_twr)
    n_part = np.bincount(tower_of, minlength=n_twr)

    def tower_sum(w: np.ndarray) -> np.ndarray:  # float64 even when no particle reached a tower
        return np.bincount(tower_of, weights=w, minlength=n_twr).astype(np.float64)

    px, py = tower_sum(pt * np.cos(phi)), tower_sum(pt * np.sin(phi))
    pz, e, q = tower_sum(pt * np.sinh(eta)), tower_sum(energy), tower_sum(charge)
    s_pt, s_eta, s_phi = pt_eta_phi(px, py, pz)
    out_cls = np.asarray(classes, dtype=np.int64)[np.argmax(e_by_class, axis=1)]
    out_cls = np.where(
        (out_cls == ParticleClass.CHARGED_HADRON) & (np.abs(s_eta) > TRACKER_ETA),
        ParticleClass.NEUTRAL_HADRON,
        out_cls,
    )
    out_cls = np.where(
        (out_cls == ParticleClass.NEUTRAL_HADRON) & (e < neutral_min_energy),
        ParticleClass.NONE,
        out_cls,
    )
    out_cls = np.where(n_part > 0, out_cls, ParticleClass.NONE)
    charged = np.isin(out_cls, (ParticleClass.CHARGED_HADRON, ParticleClass.ELECTRON))
    out_q = np.where(charged, np.clip(np.round(q), -1, 1), 0.0)
    return target_rows(out_cls, out_q, s_pt, s_eta, s_phi, e)


def _candidates(
    f: Mapping[str, np.ndarray],
    t_eta: np.ndarray,
    t_phi: np.ndarray,
    w_eta: np.ndarray,
    w_phi: np.ndarray,
    opt: RootReadOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """ycand rows of tracks (T, 7) and towers (W, 7) from the EFlow branches (zeros if absent)."""
    ycand_trk = np.zeros((len(t_eta), 7), dtype=np.float32)
    ycand_twr = np.zeros((len(w_eta), 7), dtype=np.float32)
    if "EFlowTrack.PT" in f:
        c_pt, c_eta, c_phi = (f[f"EFlowTrack.{k}"].astype(np.float64) for k in ("PT", "Eta", "Phi"))
        c_charge = f["EFlowTrack.Charge"].astype(np.float64)
        apid = np.abs(f["EFlowTrack.PID"].astype(np.int64))
        cls = np.full(len(c_pt), ParticleClass.CHARGED_HADRON, dtype=np.int64)
        cls[apid == 11] = ParticleClass.ELECTRON
        cls[apid == 13] = ParticleClass.MUON
        mass = np.select([apid == 11, apid == 13], [MASS_ELECTRON, MASS_MUON], MASS_PION)
        p = c_pt * np.cosh(c_eta)
        energy = np.sqrt(p**2 + mass**2)
        best = _keep_most_energetic(
            nearest(c_eta, c_phi, t_eta, t_phi, opt.track_dr), energy, len(t_eta)
        )
        has = best >= 0
        b = best[has]
        ycand_trk[has] = target_rows(cls[b], c_charge[b], c_pt[b], c_eta[b], c_phi[b], energy[b])
    parts = []
    for name, cls_id in (
        ("EFlowPhoton", ParticleClass.PHOTON),
        ("EFlowNeutralHadron", ParticleClass.NEUTRAL_HADRON),
    ):
        if f"{name}.ET" in f:
            parts.append(
                (np.full(len(f[f"{name}.ET"]), cls_id, dtype=np.int64),
                 *(f[f"{name}.{k}"].astype(np.float64) for k in ("ET", "Eta", "Phi", "E")))
            )  # fmt: skip
    if parts:
        cls, c_et, c_eta, c_phi, c_e = (np.concatenate(col) for col in zip(*parts, strict=True))
        best = _keep_most_energetic(
            nearest(c_eta, c_phi, w_eta, w_phi, opt.tower_dr), c_e, len(w_eta)
        )
        has = best >= 0
        b = best[has]
        ycand_twr[has] = target_rows(cls[b], np.zeros(len(b)), c_et[b], c_eta[b], c_phi[b], c_e[b])
    return ycand_trk, ycand_twr


# --- the file --------------------------------------------------------------------------------


def _open_tree(path: Path, tree_name: str) -> Any:
    import uproot

    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        file = uproot.open(path)
        names = sorted({k.split(";")[0] for k in file.keys(recursive=False)})
    except Exception as err:  # uproot raises many types on a damaged file
        raise DataFileError(f"{path}: not a readable ROOT file ({brief(err)})") from err
    if tree_name not in names:
        found = ", ".join(names) or "nothing"
        raise DataFileError(f"{path}: no TTree {tree_name!r} (found: {found}; see --tree)")
    try:
        tree = file[tree_name]
        tree.num_entries  # noqa: B018 - touch the header: fails on a truncated file
    except Exception as err:
        raise DataFileError(f"{path}: {_DAMAGED} (TTree {tree_name!r}: {brief(err)})") from err
    if not hasattr(tree, "num_entries") or not hasattr(tree, "keys"):
        raise DataFileError(f"{path}: {tree_name!r} is a {type(tree).__name__}, not a TTree")
    return tree


def branch_names(tree: Any) -> dict[str, str]:
    """Leaf name (``Track.PT``) -> full branch path (``Track/Track.PT``) for every branch."""
    try:
        keys = tree.keys(recursive=True)
    except Exception as err:  # a damaged branch list
        raise DataFileError(f"{tree.file.file_path}: {_DAMAGED} ({brief(err)})") from err
    return {name.rsplit("/", 1)[-1]: name for name in keys}


def check_branches(path: PathLike, tree_name: str = "Delphes") -> dict[str, str]:
    """Open ``path`` and check the required branches; return the leaf -> path map to read.

    Raises :class:`DataFileError` naming the file and the missing branches.
    """
    path = Path(path)
    names = branch_names(_open_tree(path, tree_name))
    needed = [f"{c}.{k}" for c, keys in REQUIRED.items() for k in keys]
    missing = [n for n in needed if n not in names]
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise DataFileError(
            f"{path}: not a Delphes tree with Track/Tower/Particle branches (missing {shown})"
        )
    wanted = needed + [f"{c}.{k}" for c, keys in OPTIONAL.items() for k in keys]
    wanted += [f"{c}.{r}" for c, r in REFERENCES.items()]
    for coll, keys in EFLOW.items():
        if all(f"{coll}.{k}" in names for k in keys):
            wanted += [f"{coll}.{k}" for k in keys]
    return {n: names[n] for n in wanted if n in names}


def _reference_ids(array: Any, depth: int) -> Any | None:
    """UIDs from a TRef (``ref`` field) / TRefArray (``refs``) awkward array, or plain integers."""
    import awkward as ak

    fields = ak.fields(array)
    if "ref" in fields:
        array = array["ref"]
    elif "refs" in fields:
        array = array["refs"]
    elif fields:
        return None
    if array.ndim != depth + 1:
        return None
    return array


def iter_root(path: PathLike, options: RootReadOptions | None = None) -> Iterator[MLPFEvent]:
    """Stream MLPF events from one Delphes ROOT file, ``options.step_size`` events at a time."""
    opt = options or RootReadOptions()
    path = Path(path)
    to_read = check_branches(path, opt.tree)
    tree = _open_tree(path, opt.tree)
    n = tree.num_entries
    for start in range(0, n, opt.step_size):
        stop = min(n, start + opt.step_size)
        chunk: dict[str, tuple[np.ndarray, ...]] = {}
        for leaf, full in to_read.items():
            try:
                arr = tree[full].array(entry_start=start, entry_stop=stop, library="ak")
            except Exception as err:
                if leaf in (f"{c}.{r}" for c, r in REFERENCES.items()):
                    continue  # unreadable references: fall back to geometric matching
                raise DataFileError(
                    f"{path}: cannot read branch {full}: {_DAMAGED} ({brief(err)})"
                ) from err
            depth = 2 if leaf == "Tower.Particles" else 1
            if leaf in ("Track.Particle", "Tower.Particles"):
                arr = _reference_ids(arr, depth)
                if arr is None:
                    continue
            chunk[leaf] = _flatten(arr, depth)
        for i in range(stop - start):
            ev: dict[str, Any] = {}
            for leaf, parts in chunk.items():
                if len(parts) == 2:
                    offsets, flat = parts
                    ev[leaf] = flat[offsets[i] : offsets[i + 1]]
                else:
                    offsets, counts2, offsets2, flat = parts
                    c = counts2[offsets[i] : offsets[i + 1]]
                    ev[leaf] = (c, flat[offsets2[offsets[i]] : offsets2[offsets[i + 1]]])
            try:
                event = build_event(ev, opt)
            except (ValueError, IndexError, TypeError, KeyError) as err:
                raise DataFileError(
                    f"{path} (event {start + i}): inconsistent Delphes branches ({brief(err)})"
                ) from err
            yield checked(event, f"{path} (event {start + i})")


def _flatten(arr: Any, depth: int) -> tuple[np.ndarray, ...]:
    """Jagged awkward array -> numpy offsets and flat values (per-event slicing without awkward).

    depth 1: (offsets (E+1,), flat); depth 2: (offsets (E+1,), inner counts, inner offsets, flat).
    """
    import awkward as ak

    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if depth == 1:
        return offsets, ak.to_numpy(ak.flatten(arr, axis=1))
    counts2 = ak.to_numpy(ak.flatten(ak.num(arr, axis=2), axis=1)).astype(np.int64)
    offsets2 = np.concatenate([[0], np.cumsum(counts2)])
    return offsets, counts2, offsets2, ak.to_numpy(ak.flatten(arr, axis=None))


def read_root(path: PathLike, options: RootReadOptions | None = None) -> list[MLPFEvent]:
    """All MLPF events of one Delphes ROOT file (see :func:`iter_root`)."""
    return list(iter_root(path, options))


def required_branches() -> Sequence[str]:
    """Leaf names a Delphes file must have to be read."""
    return [f"{c}.{k}" for c, keys in REQUIRED.items() for k in keys]
