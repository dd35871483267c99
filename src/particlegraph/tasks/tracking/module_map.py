"""Layer-pair map ("module map" at layer granularity) learned from simulated truth, and the graph.

A TrackML layer is the pair (volume_id, layer_id) of the hits file, keyed here as
``100 * volume + layer``; real events (and the challenge's ``detectors.csv``) use the same ids,
so a map learned on simulation applies to the real geometry's keys. Learning: the true
consecutive hits of every particle (ordered by distance from its vertex, see
:func:`~particlegraph.tasks.tracking.dataset.true_pairs`), optionally only those of particles
above ``pt_min``, give the connected layer pairs (a, b), same-layer overlap pairs (a, a)
included. Per pair the windows are quantiles ``[q, 1 - q]`` of the true pairs, widened by
``margin`` x their width on each side, in:

- ``dphi`` = phi_b - phi_a [rad] (wrapped; made symmetric, as both charges occur),
- ``z0`` = z_a - r_a (z_b - z_a) / (r_b - r_a) [mm], the pair's line extrapolated to r = 0
  (only where |r_b - r_a| > 1 mm for most true pairs; else unbounded),
- ``dr`` = r_b - r_a [mm] and ``dz`` = z_b - z_a [mm].

Building (:func:`build_graph`): per pair, the azimuth windows are searched on phi-sorted hits
(:func:`particlegraph.graph.layerpair.phi_window_pairs`), then the other windows cut; edges point
from a to b (inner to outer along the particle). Same-layer pairs point away from the origin.
This follows the module-map graph of the ATLAS GNN4ITk pipeline (Caillou et al., ATL-PHYS-PROC-
2022-008) at layer rather than module granularity.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_text
from particlegraph.errors import DataFileError
from particlegraph.graph.layerpair import PhiBins, wrap_phi

#: Window variables, in the order of :attr:`LayerPairMap.windows`' second axis.
WINDOW_VARS = ("dphi", "z0", "dr", "dz")
_MIN_DR = 1.0  # mm: below this |dr| a pair's z0 is not defined


def layer_key(volume_id: np.ndarray, layer_id: np.ndarray) -> np.ndarray:
    """Layer key ``100 * volume + layer`` (int64) of TrackML volume and layer ids."""
    return np.asarray(volume_id, dtype=np.int64) * 100 + np.asarray(layer_id, dtype=np.int64)


@dataclass
class Hits:
    """Cylindrical coordinates and layer key of an event's hits, each (N,)."""

    r: np.ndarray  # [mm]
    phi: np.ndarray  # [rad]
    z: np.ndarray  # [mm]
    layer: np.ndarray  # int64 layer key

    @classmethod
    def from_xyz(cls, xyz: np.ndarray, layer: np.ndarray) -> Hits:
        x, y, z = (np.asarray(xyz[:, i], dtype=np.float64) for i in range(3))
        return cls(np.hypot(x, y), np.arctan2(y, x), z, np.asarray(layer, dtype=np.int64))


@dataclass
class LayerPairMap:
    """Connected layer pairs and their windows.

    ``pairs`` (P, 2) int64 layer keys (a, b); ``windows`` (P, 4, 2) float64 [lo, hi] of
    :data:`WINDOW_VARS`; ``counts`` (P,) true pairs seen while learning; ``settings`` how it was
    learned.
    """

    pairs: np.ndarray
    windows: np.ndarray
    counts: np.ndarray
    settings: dict[str, Any]

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for p, w, c in zip(
            self.pairs.tolist(), self.windows.tolist(), self.counts.tolist(), strict=True
        ):
            rows.append({"a": p[0], "b": p[1], "count": c,
                         **{v: [_json_num(x) for x in w[k]] for k, v in enumerate(WINDOW_VARS)}})  # fmt: skip
        return {
            "format": "particlegraph-layer-pair-map-1",
            "settings": self.settings,
            "pairs": rows,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerPairMap:
        if d.get("format") != "particlegraph-layer-pair-map-1":
            raise DataFileError("not a layer-pair map (format key missing or unknown)")
        rows = d["pairs"]
        pairs = np.array([[r["a"], r["b"]] for r in rows], dtype=np.int64).reshape(-1, 2)
        win = np.array([[[float(x) for x in r[v]] for v in WINDOW_VARS] for r in rows])
        return cls(pairs, win.reshape(-1, 4, 2), np.array([r["count"] for r in rows], dtype=np.int64),
                   dict(d.get("settings", {})))  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the map as JSON, atomically."""
        write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> LayerPairMap:
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"{path}: no layer-pair map there")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataFileError(f"{path}: unreadable layer-pair map ({err})") from None


def _json_num(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def pair_variables(h: Hits, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """:data:`WINDOW_VARS` of the directed pairs i -> j, shape (P, 4); z0 NaN where |dr| <= 1 mm."""
    dr = h.r[j] - h.r[i]
    dz = h.z[j] - h.z[i]
    ok = np.abs(dr) > _MIN_DR
    z0 = np.where(ok, h.z[i] - h.r[i] * dz / np.where(ok, dr, 1.0), np.nan)
    return np.stack([wrap_phi(h.phi[j] - h.phi[i]), z0, dr, dz], axis=1)


def orient_same_layer(h: Hits, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-layer pairs pointed away from the origin (other pairs unchanged)."""
    rho = np.hypot(h.r, h.z)
    swap = (h.layer[i] == h.layer[j]) & (rho[j] < rho[i])
    return np.where(swap, j, i), np.where(swap, i, j)


def learn_map(
    samples: list[tuple[Hits, np.ndarray, np.ndarray]],
    *,
    quantile: float = 0.001,
    margin: float = 0.1,
    min_count: int = 3,
    pt_min: float = 0.0,
    z0_half_width_min: float = 0.0,
    z_shift: float = 0.0,
) -> LayerPairMap:
    """Learn the map from ``(hits, true_edges (2, T), edge_pt (T,) [GeV])`` per event.

    Pairs seen fewer than ``min_count`` times are dropped; ``pt_min`` keeps only true edges of
    particles above it when learning the windows (and the pairs). ``z_shift`` > 0 [mm] learns
    from every event three times, moved along the beam by -z_shift, 0 and +z_shift, so that the
    windows (z0, and dz of pairs whose acceptance depends on the vertex) also hold a vertex in
    the tails of the luminous region that a few single-vertex events do not sample.
    """
    if not 0.0 <= quantile < 0.5 or margin < 0 or min_count < 1 or z_shift < 0:
        raise DataFileError(
            "module map: need 0 <= quantile < 0.5, margin >= 0, min_count >= 1, z_shift >= 0"
        )
    keys, vals = [], []
    shifts = (0.0, -z_shift, z_shift) if z_shift > 0 else (0.0,)
    for h0, edges, pt in samples:
        sel = pt > pt_min
        for dz in shifts:
            h = Hits(h0.r, h0.phi, h0.z + dz, h0.layer) if dz else h0
            i, j = orient_same_layer(h, edges[0][sel], edges[1][sel])
            keys.append(np.stack([h.layer[i], h.layer[j]], axis=1))
            vals.append(pair_variables(h, i, j))
    k = np.concatenate(keys) if keys else np.zeros((0, 2), np.int64)
    v = np.concatenate(vals) if vals else np.zeros((0, 4))
    uniq, inv, counts = np.unique(k, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    keep = np.flatnonzero(counts >= min_count * len(shifts))  # each true pair seen once per shift
    windows = np.zeros((keep.size, 4, 2))
    order = np.argsort(inv, kind="stable")
    bounds = np.r_[0, np.cumsum(counts)]
    for out, p in enumerate(keep.tolist()):
        rows = v[order[bounds[p] : bounds[p + 1]]]
        windows[out] = _windows(rows, quantile, margin)
        if np.all(np.isfinite(windows[out, 1])):
            windows[out, 1, 0] = min(windows[out, 1, 0], -z0_half_width_min)
            windows[out, 1, 1] = max(windows[out, 1, 1], z0_half_width_min)
    settings = {"quantile": quantile, "margin": margin, "min_count": min_count, "pt_min": pt_min,
                "z0_half_width_min": z0_half_width_min, "z_shift": z_shift,
                "events": len(samples), "true_edges": int(k.shape[0]) // len(shifts)}  # fmt: skip
    return LayerPairMap(uniq[keep], windows, counts[keep] // len(shifts), settings)


def _windows(rows: np.ndarray, q: float, margin: float) -> np.ndarray:
    """[lo, hi] (4, 2) of one pair's true-edge variables ``rows`` (T, 4)."""
    w = np.empty((4, 2))
    for c in range(4):
        col = rows[:, c]
        fin = col[np.isfinite(col)]
        if c == 1 and fin.size < 0.9 * col.size:  # z0 undefined for many: no z0 window
            w[c] = (-np.inf, np.inf)
            continue
        lo, hi = np.quantile(fin, [q, 1.0 - q])
        pad = margin * (hi - lo) + (1e-4 if c == 0 else 0.5)
        w[c] = (lo - pad, hi + pad)
    half = max(abs(w[0, 0]), abs(w[0, 1]))  # both charges: symmetric in dphi
    w[0] = (-half, half)
    return w


def build_graph(m: LayerPairMap, h: Hits, bins: int = 16) -> np.ndarray:
    """Edges (2, E) int64 of the event's hits ``h`` allowed by the map (a -> b).

    Per pair the hits of b are searched in phi within z bins (a barrel-like layer b) or r bins
    (a disk-like one) that the dz, dr and z0 windows allow for each hit of a
    (:class:`~particlegraph.graph.layerpair.PhiBins`, one per outer layer), then every window
    is cut exactly.
    """
    order = np.argsort(h.layer, kind="stable")
    keys, starts, counts = np.unique(h.layer[order], return_index=True, return_counts=True)
    where = {int(k): order[s : s + c] for k, s, c in zip(keys, starts, counts, strict=True)}
    barrel = {k: bool(np.ptp(h.z[v]) > np.ptp(h.r[v])) for k, v in where.items()}
    out_i, out_j = [], []
    searched: dict[int, PhiBins] = {}  # per outer layer, built once for all its pairs
    for (a, b), w in zip(m.pairs.tolist(), m.windows, strict=True):
        ia, ib = where.get(a), where.get(b)
        if ia is None or ib is None:
            continue
        if b not in searched:
            searched[b] = PhiBins(h.phi[ib], h.z[ib] if barrel[b] else h.r[ib], bins)
        u_lo, u_hi = _second_window(h, ia, w, barrel[b])
        li, lj = searched[b].pairs(h.phi[ia], u_lo, u_hi, float(w[0, 0]), float(w[0, 1]))
        i, j = ia[li], ib[lj]
        if a == b:
            keep = np.hypot(h.r[j], h.z[j]) > np.hypot(h.r[i], h.z[i])
            i, j = i[keep], j[keep]
        i, j = _cut(h, i, j, w)
        out_i.append(i)
        out_j.append(j)
    if not out_i:
        return np.zeros((2, 0), dtype=np.int64)
    return np.stack([np.concatenate(out_i), np.concatenate(out_j)]).astype(np.int64)


def _second_window(
    h: Hits, ia: np.ndarray, w: np.ndarray, barrel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per hit of a, the interval of z_b (barrel-like b) or r_b (disk-like b) the windows allow."""
    ra, za = h.r[ia], h.z[ia]
    if not barrel:
        return ra + w[2, 0], ra + w[2, 1]
    lo, hi = za + w[3, 0], za + w[3, 1]
    if np.all(np.isfinite(w[1])):
        s_lo = (za - w[1, 1]) / np.maximum(ra, 1e-6)
        s_hi = (za - w[1, 0]) / np.maximum(ra, 1e-6)
        corners = np.stack([w[2, 0] * s_lo, w[2, 0] * s_hi, w[2, 1] * s_lo, w[2, 1] * s_hi])
        lo = np.maximum(lo, za + corners.min(0))
        hi = np.minimum(hi, za + corners.max(0))
    return lo, hi


def _cut(h: Hits, i: np.ndarray, j: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs inside the dr, dz and z0 windows (the phi window is already met)."""
    ri, zi = h.r[i], h.z[i]
    dr = h.r[j] - ri
    dz = h.z[j] - zi
    keep = (dr >= w[2, 0]) & (dr <= w[2, 1]) & (dz >= w[3, 0]) & (dz <= w[3, 1])
    i, j, dr, dz = i[keep], j[keep], dr[keep], dz[keep]
    if np.all(np.isfinite(w[1])):
        ok = np.abs(dr) > _MIN_DR
        z0 = zi[keep] - ri[keep] * dz / np.where(ok, dr, 1.0)
        keep = ~ok | ((z0 >= w[1, 0]) & (z0 <= w[1, 1]))
        i, j = i[keep], j[keep]
    return i, j


def detector_layers(path: str | Path) -> dict[int, dict[str, float]]:
    """Layers of a TrackML ``detectors.csv`` (or ``.csv.gz``): key -> mean r, mean |z| [mm], modules.

    Lets a user check a map's keys against the real geometry (:func:`unknown_layers`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such detectors file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        header = f.readline().strip().split(",")
        try:
            cols = [header.index(c) for c in ("volume_id", "layer_id", "cx", "cy", "cz")]
        except ValueError:
            raise DataFileError(f"{path}: not a TrackML detectors file (columns missing)") from None
        data = np.loadtxt(f, delimiter=",", usecols=cols, ndmin=2)
    key = layer_key(data[:, 0].astype(np.int64), data[:, 1].astype(np.int64))
    r = np.hypot(data[:, 2], data[:, 3])
    out = {}
    for k in np.unique(key).tolist():
        s = key == k
        out[int(k)] = {"r": float(r[s].mean()), "abs_z": float(np.abs(data[s, 4]).mean()),
                       "modules": int(s.sum())}  # fmt: skip
    return out


def unknown_layers(m: LayerPairMap, layers: dict[int, dict[str, float]]) -> list[int]:
    """Layer keys of the map that the geometry ``layers`` does not have."""
    return sorted(set(m.pairs.reshape(-1).tolist()) - set(layers))
