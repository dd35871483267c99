"""Classical track finders: the baselines a learned tracking pipeline is compared with.

Methods (each a pure function of one event's hits; ``track_id`` (H,) aligned with the hits):

- ``raw_dbscan``: DBSCAN on (x, y, z) — the exercise's point of comparison;
- ``helix_dbscan``: the TrackML DBSCAN benchmark (Amrouche et al. 2019, arXiv:1904.06778, Sec. 5)
  with the curvature scan of its public "helix unrolling" kernels, extended by a scan over vertex
  z: per event, vertex candidates are the peaks of the z intercepts of pixel-hit doublets
  (:func:`vertex_candidates`); for every (curvature, vertex) hypothesis the hits are unrolled
  onto that helix family and clustered, and each hit keeps the largest cluster it joined;
- ``track_follower``: a road search (:mod:`particlegraph.tasks.tracking.follower`): pixel doublets
  with the beam-line constraint, extended layer by layer along the helix through the last three
  hits, a hit taken when it lies within a window of the prediction; ambiguities resolved by
  longest-first hit assignment.

Interface for a benchmark (the learned pipeline's evaluation calls these):

``TUNERS[name](val_events) -> run`` chooses the method's settings on validation events by the
mean TrackML score and returns ``run(event) -> track_id``. An event is anything with ``xyz``
((H, 3) mm, tensor or array), ``particle_id`` and ``weight`` (for tuning), and for the
layer-aware methods ``layer`` ((H,) ``100 * volume_id + layer_id``) — a
:class:`~particlegraph.tasks.tracking.dataset.HitEvent` with its layer key works as is.
``find_tracks(name, xyz, layer, params)`` runs one method with explicit settings;
:func:`default_base` gives the settings fixed by event size (the pT threshold of the follower's
seeds, the DBSCAN hypotheses), :data:`GRIDS` the ones tuned. ``bench/tracking_baselines.py``
measures them (docs/tracking.md, "Classical baselines").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.graph.layerpair import phi_window_pairs
from particlegraph.tasks.tracking.score import trackml_score

#: Pixel-barrel volume id and the layers used for the vertex finder (TrackML numbering).
PIXEL_BARREL = 8
#: Largest cluster a single particle can make (loopers and overlaps included).
MAX_TRACK_HITS = 25


@dataclass(frozen=True)
class ClusterConfig:
    """DBSCAN settings (chosen on validation events by the TrackML score and stored with the run)."""

    eps: float = 0.2  # neighbourhood radius in the clustered space
    min_samples: int = 2  # points (itself included) for a core point

    def __post_init__(self) -> None:
        if not self.eps > 0 or self.min_samples < 1:
            raise ConfigError(
                f"dbscan eps must be > 0 and min_samples >= 1, got {self.eps}, {self.min_samples}"
            )


def dbscan_labels(points: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    """Track id (N,) per point: DBSCAN clusters 0..C-1, each outlier its own id C, C+1, ...

    With ``min_samples == 1`` every point is a core point and DBSCAN's clusters are the connected
    components of the eps-neighbour graph: computed so (k-d tree pairs + components), the same
    partition as scikit-learn's in a fraction of the time.
    """
    from sklearn.cluster import DBSCAN

    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if cfg.min_samples == 1:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        n = points.shape[0]
        pairs = cKDTree(points).query_pairs(cfg.eps, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        components: np.ndarray = connected_components(graph, directed=False)[1].astype(np.int64)
        return components
    labels: np.ndarray = DBSCAN(
        eps=cfg.eps, min_samples=cfg.min_samples, algorithm="kd_tree"
    ).fit_predict(points)
    labels = labels.astype(np.int64)
    out = labels < 0
    labels[out] = labels.max(initial=-1) + 1 + np.arange(int(out.sum()))
    return labels


def raw_features(xyz: np.ndarray) -> np.ndarray:
    """(x, y, z) [m]: the exercise's baseline clusters the raw positions."""
    return xyz / 1000.0


def unrolled_features(
    xyz: np.ndarray, curvature: float = 0.0, z0: float = 0.0, z_scale: float = 0.5
) -> np.ndarray:
    """Helix-unrolled features for one (curvature, vertex z) hypothesis, (N, 3).

    A track from (0, 0, z0) with curvature k [1/m] has phi_hit = phi0 - asin(k r / 2) and
    z - z0 = cot(theta) s, s = 2 asin(k r / 2) / k its transverse path; the hits of one such track
    share [cos phi0, sin phi0, z_scale * (z - z0) / s]. With k = z0 = 0 and z_scale = 0.5 these
    are the TrackML benchmark's features.
    """
    x, y, z = (xyz[:, i].astype(np.float64) / 1000.0 for i in range(3))
    r = np.hypot(x, y)
    half = np.arcsin(np.clip(curvature * r / 2.0, -1.0, 1.0))
    phi0 = np.arctan2(y, x) + half
    s = np.where(abs(curvature) > 1e-9, 2.0 * half / (curvature if curvature else 1.0), r)
    t = (z - z0 / 1000.0) / np.maximum(s, 1e-6)
    return np.stack([np.cos(phi0), np.sin(phi0), z_scale * t], axis=1)


def unrolled_dbscan(
    xyz: np.ndarray,
    cluster: ClusterConfig,
    curvatures: Sequence[float] | np.ndarray,
    z0s: Sequence[float] | np.ndarray = (0.0,),
    *,
    max_size: int = 20,
    z_scale: float = 0.5,
) -> np.ndarray:
    """DBSCAN per (curvature, vertex z) hypothesis, merged: each hit keeps the largest cluster
    (of at most ``max_size`` hits, more than one) it joined — the merge of the public TrackML
    "helix unrolling" kernels. Returns track ids (N,) 0..T-1."""
    n = xyz.shape[0]
    best_size = np.zeros(n, dtype=np.int64)
    track = np.full(n, -1, dtype=np.int64)
    next_id = 0
    for z0 in z0s:
        for k in curvatures:
            feats = unrolled_features(xyz, float(k), float(z0), z_scale)
            labels = dbscan_labels(feats, cluster)
            _, inv, size = np.unique(labels, return_inverse=True, return_counts=True)
            hs = size[inv]
            take = (hs > best_size) & (hs <= max_size) & (hs > 1)
            track[take] = labels[take] + next_id
            best_size[take] = hs[take]
            next_id += int(labels.max(initial=0)) + 1
    single = track < 0
    track[single] = next_id + np.arange(int(single.sum()))
    _, track = np.unique(track, return_inverse=True)
    return track.astype(np.int64)


def vertex_candidates(
    xyz: np.ndarray,
    layer: np.ndarray,
    *,
    max_vertices: int = 1,
    bin_mm: float = 4.0,
    z_max: float = 250.0,
    dphi: float = 0.01,
) -> np.ndarray:
    """z [mm] of up to ``max_vertices`` vertex candidates, densest first.

    Doublets of hits on the two innermost pixel-barrel layers within ``dphi`` in phi are
    extrapolated in r-z to the beam line; the z intercepts are histogrammed in ``bin_mm`` bins
    (smoothed over 3 bins); at each local maximum, separated by at least 3 bins, the median of
    the intercepts within 1.5 bins is returned. Returns [0.] when no doublet is found.
    """
    inner = np.flatnonzero(layer == 100 * PIXEL_BARREL + 2)
    outer = np.flatnonzero(layer == 100 * PIXEL_BARREL + 4)
    if inner.size == 0 or outer.size == 0:
        return np.zeros(1)
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    i, j = phi_window_pairs(phi[inner], phi[outer], -dphi, dphi)
    a, b = inner[i], outer[j]
    z0 = xyz[a, 2] - r[a] * (xyz[b, 2] - xyz[a, 2]) / np.maximum(r[b] - r[a], 1e-6)
    edges = np.arange(-z_max, z_max + bin_mm, bin_mm)
    hist, _ = np.histogram(z0, bins=edges)
    smooth = np.convolve(hist, np.ones(3), mode="same")
    centres = 0.5 * (edges[1:] + edges[:-1])
    out: list[float] = []
    taken = np.zeros(smooth.size, dtype=bool)
    for k in np.argsort(-smooth, kind="stable"):
        if len(out) >= max_vertices or smooth[k] <= 0:
            break
        if taken[max(0, k - 3) : k + 4].any():
            continue
        taken[k] = True
        near = z0[np.abs(z0 - centres[k]) <= 1.5 * bin_mm]
        out.append(float(np.median(near)) if near.size else float(centres[k]))
    return np.array(out) if out else np.zeros(1)


def helix_dbscan(
    xyz: np.ndarray, layer: np.ndarray | None, params: Mapping[str, Any]
) -> np.ndarray:
    """Helix-unrolled DBSCAN with a curvature grid and a vertex-z scan (see the module doc).

    ``params``: ``eps``; ``n_curvatures`` (grid over |k| <= ``k_max`` [1/m]); ``n_vertices``
    (vertex candidates from :func:`vertex_candidates`, needs ``layer``; 0: the grid
    ``z0_grid`` [mm] instead); ``z_scale``; ``max_size``.
    """
    k_max = float(params.get("k_max", 3.0))  # 3 /m: pT >= 0.2 GeV at 2 T
    curv = np.linspace(-k_max, k_max, int(params.get("n_curvatures", 81)))
    n_v = int(params.get("n_vertices", 1))
    if n_v > 0 and layer is not None:
        z0s = vertex_candidates(xyz, layer, max_vertices=n_v)
    else:
        z0s = np.asarray(params.get("z0_grid", (0.0,)), dtype=np.float64)
    cluster = ClusterConfig(eps=float(params["eps"]), min_samples=1)
    return unrolled_dbscan(
        xyz, cluster, curv, z0s,
        max_size=int(params.get("max_size", MAX_TRACK_HITS)),
        z_scale=float(params.get("z_scale", 0.5)),
    )  # fmt: skip


def raw_dbscan(xyz: np.ndarray, layer: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    """DBSCAN on (x, y, z) [m] with ``eps`` and ``min_samples``."""
    cfg = ClusterConfig(eps=float(params["eps"]), min_samples=int(params.get("min_samples", 1)))
    return dbscan_labels(raw_features(xyz), cfg)


def _follow(xyz: np.ndarray, layer: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    from particlegraph.tasks.tracking.follower import FollowerConfig, follow_tracks

    if layer is None:
        raise ConfigError("track_follower needs the hits' layer ids (100 * volume_id + layer_id)")
    return follow_tracks(xyz, layer, FollowerConfig(**dict(params)))


Method = Callable[[np.ndarray, "np.ndarray | None", Mapping[str, Any]], np.ndarray]
FINDERS: dict[str, Method] = {
    "raw_dbscan": raw_dbscan,
    "helix_dbscan": helix_dbscan,
    "track_follower": _follow,
}
#: Settings tried on validation events (the grid brackets the optimum found in development).
GRIDS: dict[str, list[dict[str, Any]]] = {
    "raw_dbscan": [{"eps": e} for e in (0.005, 0.01, 0.02, 0.05)],
    "helix_dbscan": [{"eps": e} for e in (0.006, 0.009, 0.012, 0.018, 0.027)],
    "track_follower": [{"window_scale": w} for w in (0.5, 0.75, 1.0, 1.5, 2.0)],
}


def find_tracks(
    method: str, xyz: np.ndarray, layer: np.ndarray | None, params: Mapping[str, Any]
) -> np.ndarray:
    """Track id (H,) of every hit by ``method`` with ``params`` (see :data:`GRIDS`)."""
    if method not in FINDERS:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {', '.join(FINDERS)}")
    return FINDERS[method](np.asarray(xyz, dtype=np.float64), layer, params)


def _arrays(ev: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz (H, 3) float64, layer key (H,) or None) of a HitEvent-like object."""
    xyz = np.asarray(ev.xyz, dtype=np.float64)
    layer = getattr(ev, "layer", None)
    if layer is not None:
        layer = np.asarray(layer, dtype=np.int64)
        if layer.shape[0] != xyz.shape[0]:
            layer = None
    return xyz, layer


def tune(
    method: str, val: Sequence[Any], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best settings of ``method`` on validation events ``val`` by the mean TrackML score.

    Returns the chosen settings (``base`` updated with the best grid point) and the table of
    every grid point with its mean score.
    """
    table, best, best_score = [], dict(base or {}), -1.0
    arrays = [_arrays(ev) for ev in val]
    for point in GRIDS[method]:
        params = {**(base or {}), **point}
        scores = [
            trackml_score(np.asarray(ev.particle_id), np.asarray(ev.weight), find_tracks(method, x, la, params))
            for ev, (x, la) in zip(val, arrays, strict=True)
        ]  # fmt: skip
        s = float(np.mean(scores))
        table.append({**point, "score": s})
        if s > best_score:
            best, best_score = params, s
    return best, table


def default_base(method: str, hits_per_event: float) -> dict[str, Any]:
    """Fixed settings by event size, so that a pile-up event takes seconds, not minutes.

    Track follower: seeds from pT 0.1 GeV below 60k hits per event (pile-up up to ~80; at
    pile-up 50 0.1 / 0.2 / 0.3 GeV gave 0.90 / 0.85 / 0.77 on validation events at 12 / 6 / 4 s
    per event), 0.3 GeV above (pile-up 200). Helix DBSCAN: 81 curvatures and one vertex below 15k
    hits; the 25 densest vertex candidates with 41 curvatures below 60k hits (at pile-up 50,
    5 / 10 / 25 vertices gave 0.26 / 0.44 / 0.51 on validation events at 3 / 11 / 28 s per
    event), 21 curvatures above.
    """
    if method == "track_follower":
        return {"pt_min": 0.1 if hits_per_event < 60e3 else 0.3}
    if method == "helix_dbscan":
        if hits_per_event < 15e3:
            return {"n_curvatures": 81, "n_vertices": 1}
        return {"n_curvatures": 41 if hits_per_event < 60e3 else 21, "n_vertices": 25}
    return {}


def tuner(
    method: str, base: Mapping[str, Any] | None = None
) -> Callable[[Sequence[Any]], Callable[[Any], np.ndarray]]:
    """``tuner(method)(val_events)`` -> ``run(event) -> track_id`` with settings tuned on val
    (``base``: fixed settings; default :func:`default_base` for the validation events' size)."""

    def tune_and_run(val: Sequence[Any]) -> Callable[[Any], np.ndarray]:
        hits = float(np.mean([_arrays(ev)[0].shape[0] for ev in val])) if val else 0.0
        params, _ = tune(method, val, default_base(method, hits) if base is None else base)

        def run(ev: Any) -> np.ndarray:
            xyz, layer = _arrays(ev)
            return find_tracks(method, xyz, layer, params)

        return run

    return tune_and_run


#: name -> tune(validation events) -> run(event) -> track ids (H,).
TUNERS: dict[str, Callable[[Sequence[Any]], Callable[[Any], np.ndarray]]] = {
    name: tuner(name) for name in FINDERS
}
