"""Track-quality cleanup after the building: release off-helix hits, dissolve weak candidates.

At pile-up 200 most fake tracks of the default pipeline are merges: on the mu = 200 run's two
validation events, a fake (a candidate of >= 3 hits whose majority particle holds no more than
half of it) has a median of 6 hits from 4 particles (majority share 0.4), mostly soft ones
(majority pT median 0.3 GeV); its hits lie off one helix (RMS distance from its transverse
circle fit: median 3.3 mm against 0.16 mm for matched tracks) and its classified edges score
lower (median of a track's mean edge score 0.73 against 0.95). A fake track adds nothing to
the TrackML score, so dissolving one lowers the fake rate at no cost; releasing a wrong hit can
even turn a merge into a good track, while dissolving a real track costs its weight. The cuts, all off by default (``0``) and
chosen on validation events (``bench/tracking_cleanup.py``):

- ``outlier_mm``: hits farther than this [mm] from their track's transverse circle (fitted to
  its hits and the beam line) are released, in rounds at 4, 2 and 1 times it
  (:func:`strip_outliers`): one particle's hits lie on one helix, a merge's do not;
- ``max_fit_rms``: a candidate whose hits lie farther than this RMS [mm] from its circle is
  dissolved (the usual track-quality cut on the fit);
- ``min_hits``: a candidate with fewer hits is dissolved;
- ``min_edge_score``: a candidate whose classified graph edges joining two of its own hits
  (every score, not only those above the building threshold) average below this is dissolved.
  A candidate without such an edge (one the track follower found in ``splitfollow``) is judged
  by the other cuts alone.

Released and dissolved hits become tracks of one hit each (what the building does with a hit
on no track), so they leave the candidates of the fake and duplicate rates (>= 3 hits).
"""

from __future__ import annotations

import numpy as np

#: Rounds of :func:`strip_outliers` (cuts at 4, 2, 1 x ``outlier_mm``), chosen on the mu = 200
#: run's validation events at threshold 0.7: one round at 20 mm (score 0.7354, fake rate
#: 0.048) or two at (20, 10) mm (0.7343, 0.045) did less than three at (40, 20, 10) mm (0.7361,
#: 0.046) (docs/tracking.md, "Fourth session").
OUTLIER_ROUNDS = 3


def release(track: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Track ids (N,) int64 with the hits where ``free`` (N,) bool is set made one-hit tracks,
    numbered after the largest id of ``track``."""
    out = np.asarray(track, dtype=np.int64).copy()
    start = int(out.max()) + 1 if out.size else 0
    out[free] = start + np.arange(int(np.count_nonzero(free)))
    return out


def track_quality(track: np.ndarray, edges: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """Per track (T,), in the order of ``np.unique(track)``: ``track`` id, ``nhits``,
    ``n_edges`` (graph edges between two of its hits), ``mean_score`` and ``min_score`` of
    those edges (NaN without one) and ``unlinked_share`` (share of its hits on none of them).

    Args:
        track: (N,) track id per hit. edges: (2, E) graph edges. score: (E,) their scores.
    """
    ids, inv = np.unique(track, return_inverse=True)
    inv = inv.reshape(-1)
    t = ids.size
    nhits = np.bincount(inv, minlength=t)
    inside = inv[edges[0]] == inv[edges[1]] if edges.size else np.zeros(0, dtype=bool)
    owner = inv[edges[0][inside]] if edges.size else np.zeros(0, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)[inside]
    n_edges = np.bincount(owner, minlength=t)
    total = np.bincount(owner, weights=s, minlength=t)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_edges > 0, total / np.maximum(n_edges, 1), np.nan)
    low = np.full(t, np.inf)
    if owner.size:  # per-track minimum of its edges' scores (sorted groups, exact)
        order = np.argsort(owner, kind="stable")
        so = owner[order]
        first = np.flatnonzero(np.r_[True, so[1:] != so[:-1]])
        low[so[first]] = np.minimum.reduceat(s[order], first)
    linked = np.zeros(track.size, dtype=bool)
    if edges.size:
        linked[edges[0][inside]] = True
        linked[edges[1][inside]] = True
    unlinked = np.bincount(inv, weights=(~linked).astype(np.float64), minlength=t)
    return {
        "track": ids,
        "nhits": nhits,
        "n_edges": n_edges,
        "mean_score": mean,
        "min_score": np.where(n_edges > 0, low, np.nan),
        "unlinked_share": unlinked / np.maximum(nhits, 1),
    }


def circle_residuals(track: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transverse fit of every track: per hit (N,) the distance [mm] from its track's circle,
    and per track (T,), in the order of ``np.unique(track)``, the RMS of those distances [mm].

    The circle of each track is the algebraic (Kasa) least-squares fit of
    ``x^2 + y^2 + D x + E y + F = 0`` to its hits and the beam line (0, 0) as one more point
    (a primary particle's helix passes the beam line): one 3 x 3 linear system per track, all
    solved at once. The RMS divides by the track's hits (the beam-line point excluded); a
    track whose system is singular (hits on one point) gets residuals 0. ``xyz`` (N, 3) [mm].
    """
    ids, inv = np.unique(track, return_inverse=True)
    inv = inv.reshape(-1)
    t = ids.size
    x, y = np.asarray(xyz[:, 0], dtype=np.float64), np.asarray(xyz[:, 1], dtype=np.float64)

    def tsum(v: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=v, minlength=t)

    nh = np.bincount(inv, minlength=t).astype(np.float64)
    sx, sy, sxx, syy, sxy = tsum(x), tsum(y), tsum(x * x), tsum(y * y), tsum(x * y)
    rr = x * x + y * y
    a = np.stack([np.stack([sxx, sxy, sx], -1), np.stack([sxy, syy, sy], -1),
                  np.stack([sx, sy, nh + 1.0], -1)], 1)  # fmt: skip
    b = -np.stack([tsum(x * rr), tsum(y * rr), tsum(rr)], -1)
    ok = np.abs(np.linalg.det(a)) > 1e-9 * np.maximum(sxx * syy, 1.0)
    sol = np.zeros((t, 3))
    if ok.any():
        sol[ok] = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
    cx, cy = -sol[:, 0] / 2.0, -sol[:, 1] / 2.0
    radius = np.sqrt(np.maximum(cx**2 + cy**2 - sol[:, 2], 0.0))
    res = np.abs(np.hypot(x - cx[inv], y - cy[inv]) - radius[inv])
    res = np.where(ok[inv], res, 0.0)
    rms = np.sqrt(tsum(res**2) / np.maximum(nh, 1.0))
    return res, rms


def strip_outliers(track: np.ndarray, xyz: np.ndarray, outlier_mm: float) -> np.ndarray:
    """Track ids (N,) with every hit farther than ``outlier_mm`` [mm] from its track's circle
    (:func:`circle_residuals`) made a one-hit track (new ids after the others).

    In :data:`OUTLIER_ROUNDS` rounds with the cut at 4, 2 and 1 times ``outlier_mm``, the
    circles refitted each round: a merge of several particles pulls the first fit away from all
    of them, so a tight first cut would strip the good hits with the wrong ones.
    """
    out = np.asarray(track, dtype=np.int64)
    for k in range(OUTLIER_ROUNDS - 1, -1, -1):
        res, _ = circle_residuals(out, xyz)
        out = release(out, res > outlier_mm * 2.0**k)
    return out


def clean_tracks(
    track: np.ndarray,
    edges: np.ndarray,
    score: np.ndarray,
    *,
    min_hits: int = 0,
    min_edge_score: float = 0.0,
    outlier_mm: float = 0.0,
    max_fit_rms: float = 0.0,
    xyz: np.ndarray | None = None,
) -> np.ndarray:
    """Track ids (N,) after the cleanup; ``track`` itself when every cut is off (0).

    First (``outlier_mm`` > 0) :func:`strip_outliers` releases the hits far from their track's
    circle; then the candidates below ``min_hits`` hits or ``min_edge_score`` mean edge score,
    or whose circle fit has an RMS above ``max_fit_rms`` [mm], are dissolved. Released and
    dissolved hits become one-hit tracks (new ids after the others). ``xyz`` (N, 3) [mm] is
    needed by ``outlier_mm`` and ``max_fit_rms``; other shapes as in :func:`track_quality`.

    Raises:
        ValueError: ``outlier_mm`` or ``max_fit_rms`` > 0 without ``xyz``.
    """
    if min_hits <= 0 and min_edge_score <= 0.0 and max_fit_rms <= 0.0 and outlier_mm <= 0.0:
        return track
    if (outlier_mm > 0.0 or max_fit_rms > 0.0) and xyz is None:
        raise ValueError("outlier_mm and max_fit_rms need the hit positions xyz")
    if outlier_mm > 0.0:
        assert xyz is not None
        track = strip_outliers(track, xyz, outlier_mm)
    q = track_quality(track, edges, score)
    weak = q["nhits"] < min_hits
    weak |= (q["n_edges"] > 0) & (np.nan_to_num(q["mean_score"]) < min_edge_score)
    if max_fit_rms > 0.0:
        assert xyz is not None
        weak |= circle_residuals(track, xyz)[1] > max_fit_rms
    _, inv = np.unique(track, return_inverse=True)
    return release(track, weak[inv.reshape(-1)])
