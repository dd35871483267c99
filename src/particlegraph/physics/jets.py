"""Jets from particle lists: anti-kT clustering with fastjet, gen-reco matching, pT response.

Definitions (also in docs/evaluation.md):

* Particles are given per event as (M, 3) arrays ``(pT [GeV], eta, phi [rad])`` (a task turns
  its own rows into these, e.g. MLPF's ygen rows with class != 0), treated as massless
  four-vectors ``(pT cos phi, pT sin phi, pT sinh eta, pT cosh eta)``. Using the massless energy
  keeps clustering well defined even when a regressed E is below |p|; jet pT does not depend on
  the E column.
* Jets: anti-kT, R = 0.4 (Cacciari, Salam, Soyez, JHEP 04 (2008) 063) through the ``fastjet``
  Python package, awkward interface, many events per call (about 3x faster than building
  ``PseudoJet`` lists; measured in this module's development on 50 events x 3,000 particles:
  0.35 s vs 1.1 s).
* Gen jets are clustered from ygen particles and kept above ``GEN_JET_MIN_PT`` = 20 GeV; reco
  jets from ycand or MLPF particles above ``RECO_JET_MIN_PT`` = 5 GeV, lower than the gen cut so
  the reco threshold does not bias the response of gen jets near 20 GeV.
* Matching: all gen-reco pairs with Delta R < ``MATCH_DR`` = 0.2 are sorted by Delta R and taken
  greedily, each jet used at most once. 0.2 rather than 0.1 because a tighter cone selects the
  well reconstructed jets and so flatters the resolution: on 10 generated ttbar PU 50 events the
  baseline matched 60 % of gen jets at 0.1 (IQR/median 0.14), 86 % at 0.2 (0.19) and 99 % at 0.3
  (0.23). The matching efficiency is always reported next to the resolution.
* Jet pT response = median of ``pT_reco / pT_gen`` over matched pairs; resolution =
  ``IQR / median`` of the same ratio; matching efficiency = matched gen jets / gen jets.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from particlegraph.errors import MissingDependencyError
from particlegraph.physics.kinematics import delta_r, massless_p4, pt_eta_phi

log = logging.getLogger(__name__)

JET_RADIUS = 0.4
GEN_JET_MIN_PT = 20.0  # GeV
RECO_JET_MIN_PT = 5.0  # GeV
MATCH_DR = 0.2
#: Gen jet pT bins [GeV] of the binned jet response and resolution.
JET_PT_EDGES = (20.0, 30.0, 50.0, 80.0, 120.0, 200.0, 350.0, 600.0, 1000.0)


_banner_done = False


@contextlib.contextmanager
def _quiet_banner() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null around the first clustering of the process.

    FastJet's C++ library prints a 13-line banner to stdout on its first ClusterSequence, in
    the middle of a command's results; later calls print nothing, so only the first is wrapped.
    """
    global _banner_done
    if _banner_done:
        yield
        return
    _banner_done = True
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real fd 1 (e.g. captured by a test runner)
        yield
        return
    libc = ctypes.CDLL(None)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)  # C stdio buffers the banner when stdout is a pipe
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _particles(ev: np.ndarray) -> np.ndarray:
    arr = np.asarray(ev, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"particles must have shape (M, 3) = (pt, eta, phi), got {arr.shape}")
    return arr


def cluster_jets(
    events: Sequence[np.ndarray], radius: float = JET_RADIUS, min_pt: float = RECO_JET_MIN_PT
) -> list[np.ndarray]:
    """Anti-kT jets of several events in one fastjet call.

    Args:
        events: per event an (M_i, 3) array ``(pT [GeV], eta, phi [rad])`` of massless particles.
        radius: jet radius R.
        min_pt: keep jets with pT > min_pt [GeV].

    Returns:
        Per event a (J_i, 3) float64 array ``(pt [GeV], eta, phi [rad])`` sorted by falling pT.
    """
    if radius <= 0:
        raise ValueError(f"jet radius must be positive, got {radius}")
    if len(events) == 0:
        return []
    try:
        import awkward as ak
        import fastjet
    except ImportError as err:  # pragma: no cover - fastjet is a core dependency
        raise MissingDependencyError(
            "fastjet is needed for jet metrics; install it with: pip install fastjet"
        ) from err

    with np.errstate(invalid="ignore", over="ignore"):
        p4 = [massless_p4(*_particles(ev).T) for ev in events]
    # fastjet crashes (segfault) on NaN/inf four-vectors: drop them, and zero-energy ones, here.
    good = [np.isfinite(p).all(axis=1) & (p[:, 3] > 0) for p in p4]
    dropped = sum(int((~g).sum()) for g in good)
    if dropped:
        log.warning("cluster_jets: dropped %d particle(s) with non-finite or zero pT", dropped)
        p4 = [p[g] for p, g in zip(p4, good, strict=True)]
    counts = np.array([len(p) for p in p4], dtype=np.int64)
    flat = np.concatenate(p4, axis=0) if counts.sum() else np.zeros((0, 4))
    fields = {
        name: ak.unflatten(np.ascontiguousarray(flat[:, i]), counts)
        for i, name in enumerate(("px", "py", "pz", "E"))
    }
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    with _quiet_banner():
        jets = fastjet.ClusterSequence(ak.zip(fields), jetdef).inclusive_jets(min_pt=min_pt)
    jcounts = ak.to_numpy(ak.num(jets))
    out: list[np.ndarray] = []
    flat_jets = ak.flatten(jets)
    px = ak.to_numpy(flat_jets["px"]).astype(np.float64)
    py = ak.to_numpy(flat_jets["py"]).astype(np.float64)
    pz = ak.to_numpy(flat_jets["pz"]).astype(np.float64)
    pt, eta, ph = pt_eta_phi(px, py, pz)
    start = 0
    for n in jcounts:
        sl = slice(start, start + int(n))
        jet = np.stack([pt[sl], eta[sl], ph[sl]], axis=1)
        out.append(jet[np.argsort(-jet[:, 0], kind="stable")])
        start += int(n)
    return out


def match_jets(
    gen: np.ndarray, reco: np.ndarray, max_dr: float = MATCH_DR
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of gen to reco jets by smallest Delta R below ``max_dr``.

    Args:
        gen: (G, 3) ``(pt, eta, phi)``.
        reco: (R, 3) ``(pt, eta, phi)``.
        max_dr: largest Delta R of a match.

    Returns:
        ``(gen_idx, reco_idx)``, each (K,) int64, the matched pairs sorted by gen index.
    """
    if len(gen) == 0 or len(reco) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    dr = delta_r(gen[:, None, 1], gen[:, None, 2], reco[None, :, 1], reco[None, :, 2])  # (G, R)
    gi, ri = np.nonzero(dr < max_dr)
    order = np.argsort(dr[gi, ri], kind="stable")
    used_g: set[int] = set()
    used_r: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for g, r in zip(gi[order].tolist(), ri[order].tolist(), strict=True):
        if g in used_g or r in used_r:
            continue
        used_g.add(g)
        used_r.add(r)
        pairs.append((g, r))
    pairs.sort()
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]
