"""The TrackML score and the usual track-level efficiencies, fake and duplicate rates.

Score (Amrouche et al. 2019, arXiv:1904.06778, Sec. 4; the challenge's ``trackml-library``):
each hit has a weight = order weight x pT weight, normalised so the event sums to 1; noise hits and
hits of particles with fewer than 4 hits weigh 0. A reconstructed track is *good* when its
majority particle (the particle with most hits in it; ties go to the smaller particle id, as in
the library, and noise counts as a particle) holds more than half of the track's hits and the
track holds more than half of that particle's hits. The score is the summed weight of the
majority particle's hits in good tracks divided by the event's summed weight: 1 for a perfect
reconstruction, 0 for a random one, on that scale for a subset of an event too. Weights read from
a challenge truth file are used as they are (there, secondaries produced away from the beam line
weigh 0); only simulated events get weights from :func:`hit_weights`.

Track-level quantities (Exa.TrkX / ATLAS conventions): a track is *matched* to its majority
particle when that particle holds > 50 % of the track's hits; a particle is *reconstructed*
(double majority) when some track is matched to it and holds > 50 % of its hits; *perfect* when
a track holds exactly its hits. Fake rate = share of candidate tracks (>= ``min_track_hits``
hits) matched to no particle; duplicate rate = share of matched tracks that are not the first
track matched to their particle.
"""

from __future__ import annotations

import numpy as np

from particlegraph.errors import DataFileError

#: Order-weight profile over a particle's hits ranked by |z - z_vertex| (TrackML).
ORDER_PROFILE = np.array([10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0])
#: Hits ranked at or beyond this weigh 0; the profile is stretched over at most this many hits.
MAX_RANKED = 20


def order_weights(n: int) -> np.ndarray:
    """Order weights (n,) of a particle with n hits, summing to 1; zeros when n < 4.

    The 9-point profile is placed at ranks linspace(0, m - 1, 9), m = min(n, 20), interpolated
    linearly at ranks 0..m-1 and normalised; ranks >= 20 weigh 0.
    """
    out = np.zeros(n)
    if n < 4:
        return out
    m = min(n, MAX_RANKED)
    w = np.interp(np.arange(m), np.linspace(0.0, m - 1.0, ORDER_PROFILE.size), ORDER_PROFILE)
    out[:m] = w / w.sum()
    return out


def pt_weight(pt: np.ndarray) -> np.ndarray:
    """pT weight: 0 below 0.05 GeV, 0.2 up to 0.5 GeV, linear to 1 at 3 GeV, 1 above."""
    pt = np.asarray(pt, dtype=np.float64)
    w = np.where(pt < 0.5, 0.2, np.where(pt > 3.0, 1.0, 0.2 + 0.8 * (pt - 0.5) / 2.5))
    return np.where(pt < 0.05, 0.0, w)


def hit_weights(
    particle_id: np.ndarray, z: np.ndarray, vertex_z: np.ndarray, particle_pt: np.ndarray
) -> np.ndarray:
    """TrackML weight of every hit, normalised to sum 1 over the event (all 0 if nothing counts).

    Args:
        particle_id: (H,) particle of each hit, 0 for noise.
        z: (H,) hit z [mm] (the true one when known).
        vertex_z: (H,) production-vertex z [mm] of each hit's particle (ignored for noise).
        particle_pt: (H,) pT [GeV] of each hit's particle.
    """
    h = particle_id.shape[0]
    w = np.zeros(h)
    signal = np.flatnonzero(particle_id != 0)
    if signal.size == 0:
        return w
    dist = np.abs(z[signal] - vertex_z[signal])
    order = np.lexsort((dist, particle_id[signal]))  # by particle, then |z - z_vertex|
    idx = signal[order]
    pid = particle_id[idx]
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    counts = np.diff(np.r_[starts, pid.size])
    for start, n in zip(starts.tolist(), counts.tolist(), strict=True):
        if n >= 4:
            w[idx[start : start + n]] = order_weights(n)
    w *= pt_weight(particle_pt)
    total = w.sum()
    return w / total if total > 0 else w


def _majority(track_id: np.ndarray, particle_id: np.ndarray) -> dict[str, np.ndarray]:
    """Per track: id, hits, majority particle and its hits in the track (ties: smaller id)."""
    tracks, t_inv = np.unique(track_id, return_inverse=True)
    parts, p_inv = np.unique(particle_id, return_inverse=True)
    pair = t_inv.astype(np.int64) * parts.size + p_inv
    keys, count = np.unique(pair, return_counts=True)
    kt, kp = keys // parts.size, keys % parts.size
    # within a track: most hits first, then the smaller particle id
    order = np.lexsort((kp, -count, kt))
    first = order[np.r_[True, kt[order][1:] != kt[order][:-1]]]
    return {
        "track": tracks,
        "nhits": np.bincount(t_inv, minlength=tracks.size),
        "major_particle": parts[kp[first]],
        "major_nhits": count[first],
    }


def check_weights(weight: np.ndarray, where: str = "weights") -> np.ndarray:
    """``weight`` as float64 (H,); DataFileError when one is negative, NaN or infinite."""
    w = np.asarray(weight, dtype=np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DataFileError(
            f"{where}: {int(bad.sum())} hit weight(s) are negative or not finite "
            f"(first at row {i}: {w[i]!r}); TrackML weights are >= 0"
        )
    return w


def trackml_score(particle_id: np.ndarray, weight: np.ndarray, track_id: np.ndarray) -> float:
    """TrackML score of one event; all arrays (H,) aligned by hit.

    The counted weight is divided by the event's total weight, so a subset of an event or a file
    whose weights do not sum to 1 scores on the same 0..1 scale (0 when all weights are 0).

    Raises:
        DataFileError: a weight is negative or not finite.
    """
    w = check_weights(weight)
    total = float(w.sum())
    if particle_id.size == 0 or total <= 0.0:
        return 0.0
    t = _majority(track_id, particle_id)
    pids, p_count = np.unique(particle_id, return_counts=True)
    particle_nhits = p_count[np.searchsorted(pids, t["major_particle"])]
    good = (2 * t["major_nhits"] > t["nhits"]) & (2 * t["major_nhits"] > particle_nhits)
    # a hit counts when its track is good and it belongs to the track's majority particle
    good_major = np.where(good, t["major_particle"], -1)
    t_inv = np.searchsorted(t["track"], track_id)
    counted = good_major[t_inv] == particle_id
    return float(w[counted].sum()) / total


def match_tracks(particle_id: np.ndarray, track_id: np.ndarray) -> dict[str, np.ndarray]:
    """Per reconstructed track (T,): ``track``, ``nhits``, ``major_particle``, ``major_nhits``,
    ``particle_nhits`` (all hits of the majority particle), and the flags ``matched`` (majority
    particle is not noise and holds > 50 % of the track), ``double`` (also > 50 % of the
    particle's hits) and ``perfect`` (exactly the particle's hits)."""
    t = _majority(track_id, particle_id)
    pids, p_count = np.unique(particle_id, return_counts=True)
    major = t["major_particle"]
    t["particle_nhits"] = p_count[np.searchsorted(pids, major)]
    t["matched"] = (2 * t["major_nhits"] > t["nhits"]) & (major != 0)
    t["double"] = t["matched"] & (2 * t["major_nhits"] > t["particle_nhits"])
    t["perfect"] = (
        t["matched"] & (t["major_nhits"] == t["nhits"]) & (t["major_nhits"] == t["particle_nhits"])
    )
    return t


def track_metrics(
    particle_id: np.ndarray,
    track_id: np.ndarray,
    particle_pt: dict[int, float],
    *,
    pt_min: float = 1.0,
    min_particle_hits: int = 3,
    min_track_hits: int = 3,
) -> dict[str, float]:
    """Double-majority efficiency, perfect-match efficiency, fake and duplicate rates.

    Args:
        particle_id: (H,) true particle per hit (0 noise). track_id: (H,) reconstructed track.
        particle_pt: pT [GeV] per particle id.
        pt_min: target particles have pT > pt_min and >= ``min_particle_hits`` hits; the
            duplicate rate counts tracks matched to such particles.
        min_track_hits: candidate tracks (fake and duplicate rates) have at least this many hits.

    Returns:
        ``efficiency``, ``perfect_efficiency``, ``fake_rate`` (over all candidates: the
        reconstructed pT of a fake is unknown), ``duplicate_rate``, and the counts
        ``n_particles``, ``n_tracks`` (NaN rates when a denominator is 0).
    """
    t = match_tracks(particle_id, track_id)
    pids, p_count = np.unique(particle_id, return_counts=True)
    pt_of = np.array([particle_pt.get(p, 0.0) for p in pids.tolist()], dtype=np.float64)
    targets = pids[(pids != 0) & (p_count >= min_particle_hits) & (pt_of > pt_min)]
    major = t["major_particle"]
    is_target = np.isin(major, targets)
    found = np.unique(major[t["double"] & is_target])
    found_perfect = np.unique(major[t["perfect"] & is_target])
    cand = t["nhits"] >= min_track_hits
    matched_target = cand & t["matched"] & is_target
    n_cand = int(cand.sum())
    n_matched = int(matched_target.sum())
    distinct = np.unique(major[matched_target]).size
    nan = float("nan")
    n_t = targets.size
    return {
        "efficiency": found.size / n_t if n_t else nan,
        "perfect_efficiency": found_perfect.size / n_t if n_t else nan,
        "fake_rate": float((cand & ~t["matched"]).sum()) / n_cand if n_cand else nan,
        "duplicate_rate": (n_matched - distinct) / n_matched if n_matched else nan,
        "n_particles": float(n_t),
        "n_tracks": float(n_cand),
    }
