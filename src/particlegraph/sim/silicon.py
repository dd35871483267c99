"""A TrackML-like silicon tracker: barrel cylinders + end-cap disks, 2 T, helices, material, noise.

The geometry follows the detector of the TrackML challenge (Amrouche et al., "The Tracking
Machine Learning challenge: accuracy phase", arXiv:1904.06778, Sec. 2 and Fig. 1; the challenge's
``detectors.csv``), itself the ACTS "generic detector": a pixel detector (volumes 7, 8, 9), short
strips (12, 13, 14) and long strips (16, 17, 18), each a barrel (the middle volume id) between two
end caps (-z, +z); layer ids are 2, 4, 6, ... from the inside out, as in the TrackML files. The
barrel radii are the challenge's; the barrel half-lengths, disk |z| positions and disk radii are
rounded values of the same description (not re-read from ``detectors.csv`` here).

Every charged particle is followed from its production vertex along a helix in the uniform field
``bz`` (convention of :mod:`particlegraph.sim.helix`: phi(s) = phi0 - k s, k = 0.2998 q B / pT,
s the transverse path). At each crossed surface it leaves a hit with probability ``efficiency``;
where it crosses the overlap of two modules (the outer ``overlap / 2`` of a module's phi width at
each edge; overlap fractions from ``detectors.csv``) it leaves a second hit on the neighbouring
module, ``overlap_shift`` further out in r (barrel) or |z| (disk). It is then deflected by
multiple scattering (Highland formula) and slowed by the mean energy loss (Bethe, plus
bremsstrahlung for electrons; :mod:`particlegraph.sim.material`) for ``x_over_x0`` radiation
lengths per module times 1 / cos(incidence), twice that in an overlap. A particle is followed
until no surface is reachable, it stops, or it has turned by ``max_turn`` (half a revolution:
loopers are cut where they turn back inwards). The measured position is the true one smeared on
the surface (r-phi and z on a barrel, r-phi and r on a disk) with the resolutions of the sensor
type: pitch / sqrt(12) of the TrackML modules (pixels 50 x 50 um, short strips 80 um x 1.2 mm,
long strips 120 um x 10.4 mm). Noise hits, uniform over the sensitive area, make
``noise_fraction`` of all hits (15 %, the challenge's share). Photon conversions are made before
the propagation (:mod:`particlegraph.sim.conversions`, called by the tracking task).

Where each default comes from is written beside it in :class:`SiliconConfig` and in
docs/tracking.md; tests/sim/test_sim_trackml_geometry.py checks the geometry and the overlap
fractions against the challenge's ``detectors.csv``.

Units: positions mm, momenta GeV, field T.

Why ~590 lines: the geometry, the propagation through it and the hit response share one
config and one random stream (a split would thread both through every call); the material
physics lives in :mod:`particlegraph.sim.material`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.sim.helix import C_LIGHT
from particlegraph.sim.material import M_ELECTRON, highland, lose_energy, scatter
from particlegraph.sim.particles import Particles

__all__ = ["SiliconConfig", "SiliconHits", "highland", "scatter", "simulate_hits", "surfaces"]

#: Sensor types and their (volume ids -z, barrel, +z).
VOLUMES = {"pixel": (7, 8, 9), "short": (12, 13, 14), "long": (16, 17, 18)}
#: Smallest transverse step [mm] between two crossings (keeps a particle off the surface it is on).
_MIN_STEP = 1e-3


@dataclass(frozen=True)
class SensorType:
    """Resolution and material of one sensor type (pixel, short strip, long strip)."""

    sigma_rphi: float  # hit resolution along r-phi [mm]
    sigma_long: float  # along z (barrel) or r (disk) [mm]
    thickness: float  # sensor thickness [mm], for the cluster size
    pitch_rphi: float  # channel pitch along r-phi [mm]
    pitch_long: float  # channel pitch along z / r [mm]
    module_rphi: float  # module width along r-phi [mm], for the module numbering
    module_long: float  # module length along z / r [mm]


def _pixel() -> SensorType:
    # TrackML pixels 50 x 50 um, 150 um thick: sigma = 50 um / sqrt(12) = 14.4 um
    return SensorType(0.0144, 0.0144, 0.15, 0.05, 0.05, 16.8, 72.0)


def _short() -> SensorType:
    # TrackML short strips 80 um x 1.2 mm, 250 um thick
    return SensorType(0.0231, 0.346, 0.25, 0.08, 1.2, 48.0, 108.0)


def _long() -> SensorType:
    # TrackML long strips 120 um x 10.4 mm, 350 um thick
    return SensorType(0.0346, 3.0, 0.35, 0.12, 10.4, 48.0, 108.0)


@dataclass(frozen=True)
class SiliconConfig:
    """The tracker; every default is the TrackML detector's (rounded) unless stated otherwise."""

    bz: float = 2.0  # solenoid field [T] (TrackML: 2 T)
    pixel_radii: tuple[float, ...] = (32.0, 72.0, 116.0, 172.0)  # barrel radii [mm]
    short_radii: tuple[float, ...] = (260.0, 360.0, 500.0, 660.0)
    long_radii: tuple[float, ...] = (820.0, 1020.0)
    pixel_half_length: float = 491.0  # barrel half-lengths [mm]
    short_half_length: float = 1083.0
    long_half_length: float = 1083.0
    pixel_disks: tuple[float, ...] = (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0)  # |z|
    short_disks: tuple[float, ...] = (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0)
    long_disks: tuple[float, ...] = (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0)
    pixel_disk_r: tuple[float, float] = (30.0, 176.0)  # inner, outer radius of the disks [mm]
    short_disk_r: tuple[float, float] = (240.0, 700.0)
    long_disk_r: tuple[float, float] = (720.0, 1030.0)
    pixel: SensorType = field(default_factory=_pixel)
    short: SensorType = field(default_factory=_short)
    long: SensorType = field(default_factory=_long)
    # material per module at normal incidence [X0], matched to the challenge's scattering: p x
    # deflection between consecutive pixel layers 1.46 MeV in its truth vs 2.3-2.6 MeV with the
    # old 0.02 and no overlaps (issue 18); 0.006 with the overlaps below lowers it by 1.69x
    # (bench/tracking_realism_check.py's estimator on a |eta| < 1 pion gun: 2.52 -> 1.49 MeV)
    x_over_x0: float = 0.006
    energy_loss: bool = True  # mean Bethe ionisation (+ bremsstrahlung for e+-) per crossing
    conversions: bool = True  # photons convert to e+ e- in the layers (sim.conversions)
    # module overlaps per sensor kind (pixel, short, long): the share of a layer's area that two
    # modules cover (sum of module areas / layer area - 1, from the challenge's detectors.csv:
    # barrels 0.37/0.21/0.23/0.24, 0.23/0.24/0.25/0.24, 0.16/0.19 by layer; disks 0.38/0.11/0.31)
    barrel_overlap: tuple[float, float, float] = (0.26, 0.24, 0.17)
    disk_overlap: tuple[float, float, float] = (0.38, 0.11, 0.31)
    # offset of the neighbouring module [mm]: radial in a barrel (module centres at r +- 0.25 /
    # 1.5 / 1.5 mm in detectors.csv), along z in a disk (+-2.5 / +-4.5 / +-5.5 mm)
    barrel_overlap_shift: tuple[float, float, float] = (0.5, 3.0, 3.0)
    disk_overlap_shift: tuple[float, float, float] = (4.5, 4.5, 5.5)
    efficiency: float = 0.99  # probability that a crossing leaves a hit (silicon: > 99 %)
    noise_fraction: float = 0.15  # share of noise hits among all hits (challenge: ~15 %, issue 18)
    pt_min: float = 0.05  # charged particles below this pT [GeV] are not simulated
    max_turn: float = math.pi  # stop a particle after this turning angle [rad] (loopers)
    max_crossings: int = 40  # hard cap on crossings per particle
    vertex_sigma_z: float = 55.0  # beam-spot z spread [mm] (TrackML luminous region, ~5.5 cm)

    def __post_init__(self) -> None:
        if self.bz <= 0:
            raise ConfigError(f"silicon.bz must be a positive field in T, got {self.bz}")
        if not 0.0 < self.efficiency <= 1.0:
            raise ConfigError(f"silicon.efficiency must be in (0, 1], got {self.efficiency}")
        if not 0.0 <= self.noise_fraction < 1.0:
            raise ConfigError(
                f"silicon.noise_fraction must be in [0, 1), got {self.noise_fraction}"
            )
        if self.x_over_x0 < 0 or self.pt_min < 0 or self.vertex_sigma_z < 0:
            raise ConfigError("silicon.x_over_x0, pt_min and vertex_sigma_z must be >= 0")
        for name in ("barrel_overlap", "disk_overlap"):
            if len(getattr(self, name)) != 3 or not all(0 <= f < 1 for f in getattr(self, name)):
                raise ConfigError(f"silicon.{name} must be 3 fractions in [0, 1)")
        for name in ("barrel_overlap_shift", "disk_overlap_shift"):
            if len(getattr(self, name)) != 3 or not all(d > 0 for d in getattr(self, name)):
                raise ConfigError(f"silicon.{name} must be 3 positive offsets [mm]")
        for name in ("pixel_radii", "short_radii", "long_radii"):
            radii = getattr(self, name)
            if any(r <= 0 for r in radii) or list(radii) != sorted(radii):
                raise ConfigError(f"silicon.{name} must be positive and increasing, got {radii}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON)."""
        return asdict(self)


class Surfaces(NamedTuple):
    """All sensitive surfaces flattened; fields have shape (S,).

    ``barrel`` True for cylinders (``radius``, ``half_length``), False for disks (``z``,
    ``r_min``, ``r_max``); ``kind`` 0 pixel, 1 short, 2 long; TrackML ``volume_id``, ``layer_id``.
    """

    barrel: np.ndarray
    radius: np.ndarray
    half_length: np.ndarray
    z: np.ndarray
    r_min: np.ndarray
    r_max: np.ndarray
    kind: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray


def surfaces(cfg: SiliconConfig) -> Surfaces:
    """The sensitive surfaces of ``cfg``: barrels in order of radius, then the disks."""
    rows: list[tuple[bool, float, float, float, float, float, int, int, int]] = []
    for kind, name in enumerate(("pixel", "short", "long")):
        vneg, vbar, vpos = VOLUMES[name]
        half = getattr(cfg, f"{name}_half_length")
        for i, r in enumerate(getattr(cfg, f"{name}_radii")):
            rows.append((True, r, half, 0.0, 0.0, 0.0, kind, vbar, 2 * (i + 1)))
        rmin, rmax = getattr(cfg, f"{name}_disk_r")
        disks = getattr(cfg, f"{name}_disks")
        for i, z in enumerate(disks):
            # TrackML numbers -z disks from the outside in, +z disks from the inside out
            rows.append((False, 0.0, 0.0, -z, rmin, rmax, kind, vneg, 2 * (len(disks) - i)))
            rows.append((False, 0.0, 0.0, z, rmin, rmax, kind, vpos, 2 * (i + 1)))
    cols = list(zip(*rows, strict=True))
    return Surfaces(
        np.array(cols[0], dtype=bool),
        *(np.array(c, dtype=np.float64) for c in cols[1:6]),
        *(np.array(c, dtype=np.int64) for c in cols[6:]),
    )


class SiliconHits(NamedTuple):
    """Hits of one event; every field has shape (H,).

    ``x, y, z`` measured position [mm]; ``volume_id, layer_id, module_id`` TrackML ids;
    ``particle`` index into the simulated particles (-1 for noise); ``tx, ty, tz`` true position
    [mm] and ``tpx, tpy, tpz`` true momentum [GeV] at the crossing (0 for noise);
    ``cell_count`` channels in the cluster and ``charge_value`` its deposited charge (arbitrary
    units, 1 = a normal-incidence crossing). Signal hits come first, grouped by particle in
    the order the particle crossed the surfaces.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray
    module_id: np.ndarray
    particle: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    tz: np.ndarray
    tpx: np.ndarray
    tpy: np.ndarray
    tpz: np.ndarray
    cell_count: np.ndarray
    charge_value: np.ndarray

    @property
    def size(self) -> int:
        """Number of hits."""
        return int(self.x.shape[0])


def _cylinder_crossings(
    x: np.ndarray, y: np.ndarray, phi: np.ndarray, k: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Both transverse paths s >= 0 [mm] at which helices reach each radius; inf where never.

    Shapes: x, y, phi, k (P,), radius (C,) -> two (P, C) arrays. With the circle centre c and
    u = phi - k s, |P(s)|^2 = |c|^2 + 1/k^2 + (2/k) |c| cos(u + a), (sin a, cos a) = c / |c|
    (the derivation of :func:`particlegraph.sim.helix._helix_to_radius`, both roots kept).
    """
    cx = (x + np.sin(phi) / k)[:, None]
    cy = (y - np.cos(phi) / k)[:, None]
    d = np.hypot(cx, cy)
    kk = k[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = kk * (radius[None, :] ** 2 - d**2 - 1.0 / kk**2) / (2.0 * d)
    ok = (np.abs(c) <= 1.0) & (d > 0)
    alpha = np.arctan2(cx, cy)
    acos = np.arccos(np.clip(c, -1.0, 1.0))
    out = []
    for sign in (1.0, -1.0):
        u = sign * acos - alpha
        turn = np.mod(np.sign(kk) * (phi[:, None] - u), 2 * np.pi)
        out.append(np.where(ok, turn / np.abs(kk), np.inf))
    return out[0], out[1]


def _advance(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, phi: np.ndarray, k: np.ndarray,
    cot: np.ndarray, s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Position and direction after a transverse path ``s`` [mm] along the helix; shapes (P,)."""
    u = phi - k * s
    return (
        x + (np.sin(phi) - np.sin(u)) / k,
        y + (np.cos(u) - np.cos(phi)) / k,
        z + s * cot,
        u,
    )


@dataclass
class _Tracks:
    """Mutable state of the particles being followed; every array (P_sim,)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    phi: np.ndarray  # transverse direction
    cot: np.ndarray  # pz / pT
    pt: np.ndarray
    q: np.ndarray
    mass: np.ndarray
    electron: np.ndarray
    turned: np.ndarray

    @property
    def p(self) -> np.ndarray:
        return self.pt * np.sqrt(1.0 + self.cot**2)


def _next_crossing(
    tr: _Tracks, a: np.ndarray, surf: Surfaces, cfg: SiliconConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the particles ``a``: those that reach another surface, its curvature, path, surface."""
    bar = np.flatnonzero(surf.barrel)
    dsk = np.flatnonzero(~surf.barrel)
    k = C_LIGHT * tr.q[a] * cfg.bz / tr.pt[a] * 1e-3  # signed curvature [1/mm]
    x, y, z, phi, cot = tr.x[a], tr.y[a], tr.z[a], tr.phi[a], tr.cot[a]
    s1, s2 = _cylinder_crossings(x, y, phi, k, surf.radius[bar])
    s_b = np.where(s1 > _MIN_STEP, s1, np.inf)
    s_b = np.minimum(s_b, np.where(s2 > _MIN_STEP, s2, np.inf))
    zb = z[:, None] + np.where(np.isfinite(s_b), s_b, 0.0) * cot[:, None]
    s_b = np.where(np.abs(zb) <= surf.half_length[bar][None, :], s_b, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_d = (surf.z[dsk][None, :] - z[:, None]) / cot[:, None]  # (P, D)
    s_d = np.where(np.isfinite(s_d) & (s_d > _MIN_STEP), s_d, np.inf)
    xd, yd, _, _ = _advance(
        x[:, None], y[:, None], z[:, None], phi[:, None], k[:, None], cot[:, None],
        np.where(np.isfinite(s_d), s_d, 0.0),
    )  # fmt: skip
    rd = np.hypot(xd, yd)
    s_d = np.where((rd >= surf.r_min[dsk]) & (rd <= surf.r_max[dsk]), s_d, np.inf)
    s_all = np.concatenate([s_b, s_d], axis=1)  # (P, S) in the order bar + dsk
    which = np.argmin(s_all, axis=1)
    s = s_all[np.arange(a.size), which]
    ok = np.isfinite(s) & (
        tr.turned[a] + np.abs(k) * np.where(np.isfinite(s), s, 0) <= cfg.max_turn
    )
    return a[ok], k[ok], s[ok], np.concatenate([bar, dsk])[which[ok]]


def _move(
    tr: _Tracks, a: np.ndarray, k: np.ndarray, s: np.ndarray, sid: np.ndarray,
    surf: Surfaces, target: np.ndarray,
) -> None:  # fmt: skip
    """Advance ``a`` by ``s`` and put them exactly on radius (barrel) or z (disk) ``target``.

    The helix formula loses ~1e-5 mm to cancellation for TeV tracks, hence the snap.
    """
    x, y, z, phi = _advance(tr.x[a], tr.y[a], tr.z[a], tr.phi[a], k, tr.cot[a], s)
    on_bar = surf.barrel[sid]
    scale = np.where(on_bar, target / np.maximum(np.hypot(x, y), 1e-12), 1.0)
    tr.x[a], tr.y[a] = x * scale, y * scale
    tr.z[a] = np.where(on_bar, z, target)
    tr.phi[a] = phi
    tr.turned[a] += np.abs(k) * s


def _record(
    tr: _Tracks, a: np.ndarray, sid: np.ndarray, iphi: np.ndarray, surf: Surfaces,
    efficiency: float, rng: np.random.Generator,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:  # fmt: skip
    """One crossing of each particle ``a`` on the module with phi index ``iphi`` (wrapped later):
    the record of those that leave a hit, and 1 / cos(incidence) (capped at 10) of all."""
    pt, phi, cot = tr.pt[a], tr.phi[a], tr.cot[a]
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * cot
    pmag = pt * np.sqrt(1.0 + cot**2)
    x, y, z = tr.x[a], tr.y[a], tr.z[a]
    r = np.hypot(x, y)
    cos_inc = np.where(surf.barrel[sid], (px * x + py * y) / np.maximum(r, 1e-12) / pmag, pz / pmag)
    inv_cos = np.minimum(1.0 / np.maximum(np.abs(cos_inc), 1e-6), 10.0)
    hit = rng.random(a.size) < efficiency
    rec = (a, sid, x, y, z, px, py, pz, inv_cos, iphi)
    return tuple(v[hit] for v in rec), inv_cos


def _module_phi(
    tr: _Tracks, a: np.ndarray, sid: np.ndarray, surf: Surfaces, cfg: SiliconConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Module phi index of each crossing, and the overlap side: -1 / +1 where the crossing lies
    in the overlap with the previous / next module in phi (the outer ``overlap / 2`` of the
    module at each phi edge), 0 elsewhere."""
    kind = surf.kind[sid]
    frac = np.where(
        surf.barrel[sid],
        np.asarray(cfg.barrel_overlap)[kind],
        np.asarray(cfg.disk_overlap)[kind],
    )
    width = np.array([s.module_rphi for s in (cfg.pixel, cfg.short, cfg.long)])[kind]
    r = np.where(surf.barrel[sid], surf.radius[sid], np.hypot(tr.x[a], tr.y[a]))
    n_phi = np.maximum(1, np.round(2 * np.pi * r / width)).astype(np.int64)
    pos = (np.arctan2(tr.y[a], tr.x[a]) + np.pi) / (2 * np.pi) * n_phi
    iphi = np.mod(np.floor(pos).astype(np.int64), n_phi)
    u = pos - np.floor(pos)
    side = np.where(u < 0.5 * frac, -1, np.where(u > 1.0 - 0.5 * frac, 1, 0)).astype(np.int64)
    return iphi, side


def _init_tracks(p: Particles) -> _Tracks:
    pt = p.pt
    pmag = np.sqrt(pt**2 + p.pz**2)
    mass = np.sqrt(np.clip(p.e**2 - pmag**2, 0.0, None))
    electron = np.abs(p.pid) == 11
    mass = np.where(electron, M_ELECTRON, mass)
    return _Tracks(
        p.vx.copy(), p.vy.copy(), p.vz.copy(), np.arctan2(p.py, p.px), p.pz / pt, pt.copy(),
        p.charge.astype(np.float64), mass, electron, np.zeros_like(pt),
    )  # fmt: skip


def simulate_hits(
    particles: Particles, cfg: SiliconConfig, rng: np.random.Generator
) -> tuple[SiliconHits, np.ndarray]:
    """Propagate the charged particles of an event through the tracker and add noise.

    At each crossing: a hit (probability ``efficiency``); in a module overlap a second hit on
    the neighbouring module, ``overlap_shift`` further along the track; then a scattering kick
    and the mean energy loss for the material crossed (``x_over_x0`` per module, times
    1 / cos(incidence)); a particle that stops is dropped.

    Args:
        particles: every stable particle of the event (neutral ones are skipped).
        cfg: the tracker.
        rng: random numbers for efficiency, scattering, smearing and noise.

    Returns:
        ``(hits, simulated)``: the hits (signal in order of crossing per particle, then noise)
        and the indices (P_sim,) into ``particles`` of the simulated charged particles;
        ``hits.particle`` indexes this subset.
    """
    surf = surfaces(cfg)
    sim = np.flatnonzero((particles.charge != 0) & (particles.pt > max(cfg.pt_min, 1e-9)))
    tr = _init_tracks(particles.select(sim))
    shift_bar, shift_dsk = np.asarray(cfg.barrel_overlap_shift), np.asarray(cfg.disk_overlap_shift)
    active = np.arange(sim.size)
    recs: list[tuple[np.ndarray, ...]] = []
    for _ in range(cfg.max_crossings):
        if active.size == 0:
            break
        a, k, s, sid = _next_crossing(tr, active, surf, cfg)
        bar = surf.barrel[sid]
        _move(tr, a, k, s, sid, surf, np.where(bar, surf.radius[sid], surf.z[sid]))
        iphi, side = _module_phi(tr, a, sid, surf, cfg)
        rec, inv_cos = _record(tr, a, sid, iphi, surf, cfg.efficiency, rng)
        recs.append(rec)
        # the neighbouring module: a little further out in r (barrel) or |z| (disk)
        o = np.flatnonzero(side != 0)
        if o.size:
            ao, ko, so = a[o], k[o], sid[o]
            r0 = np.hypot(tr.x[ao], tr.y[ao])
            radial = (np.cos(tr.phi[ao]) * tr.x[ao] + np.sin(tr.phi[ao]) * tr.y[ao]) / r0
            step = np.where(bar[o], shift_bar[surf.kind[so]], shift_dsk[surf.kind[so]])
            s_o = np.where(
                bar[o],
                step / np.maximum(np.abs(radial), 0.1),
                step / np.maximum(np.abs(tr.cot[ao]), 1e-3),
            )
            target = np.where(
                bar[o], r0 + np.sign(radial) * step, tr.z[ao] + np.sign(tr.cot[ao]) * step
            )
            _move(tr, ao, ko, s_o, so, surf, target)
            rec_o, _ = _record(tr, ao, so, iphi[o] + side[o], surf, cfg.efficiency, rng)
            recs.append(rec_o)
        # material: one module, two in an overlap; scattering, then the mean energy loss
        t = cfg.x_over_x0 * inv_cos * (1.0 + (side != 0))
        pmag = tr.p[a]
        beta = pmag / np.sqrt(pmag**2 + tr.mass[a] ** 2)
        theta0 = highland(pmag, np.maximum(beta, 1e-3), t)
        tr.phi[a], tr.cot[a], tr.pt[a] = scatter(tr.phi[a], tr.cot[a], pmag, theta0, rng)
        if cfg.energy_loss:
            p_new = lose_energy(pmag, tr.mass[a], tr.electron[a], t)
            tr.pt[a] = tr.pt[a] * p_new / pmag
            a = a[tr.pt[a] > 1e-3]  # stopped (or nearly so)
        active = a
    return _finish(recs, surf, cfg, rng), sim


def _finish(
    recs: list[tuple[np.ndarray, ...]], surf: Surfaces, cfg: SiliconConfig,
    rng: np.random.Generator,
) -> SiliconHits:  # fmt: skip
    """Smear the crossings, add noise hits and number the modules and clusters.

    The random numbers are drawn in a fixed order (smearing, noise, clusters) so that a seed
    gives the same event whatever the split of this function.
    """
    sensors = (cfg.pixel, cfg.short, cfg.long)
    sig = _sorted_crossings(recs)
    part, sid, tx, ty, tz, tpx, tpy, tpz, inv_cos, iphi_sig = sig
    kind = surf.kind[sid]
    n = part.size
    r_m, phi_m, z_m = _smear(tx, ty, tz, sid, surf, sensors, rng)
    nsid, nr, nphi, nz = _noise_hits(n, surf, cfg.noise_fraction, rng)
    n_noise = nsid.size
    all_sid = np.concatenate([sid, nsid])
    r_all = np.concatenate([r_m, nr])
    phi_all = np.concatenate([phi_m, nphi])
    z_all = np.concatenate([z_m, nz])
    module_id = _module_ids(all_sid, r_all, phi_all, z_all, iphi_sig, surf, sensors)
    # cluster: channels crossed along r-phi and along the other direction, charge ~ path length
    thick = np.array([s.thickness for s in sensors])[kind]
    pitch = np.array([s.pitch_rphi for s in sensors])[kind]
    tan_inc = np.sqrt(np.maximum(inv_cos**2 - 1.0, 0.0))
    cells = 1 + np.floor(thick * tan_inc / pitch + rng.random(n)).astype(np.int64)
    cells = np.minimum(cells, 20)
    charge = inv_cos * rng.gamma(8.0, 1.0 / 8.0, size=n)  # ~ Landau-like spread of 35 %
    ncell = np.ones(n_noise, dtype=np.int64)
    ncharge = rng.gamma(2.0, 0.25, size=n_noise)
    zeros = np.zeros(n_noise)
    return SiliconHits(
        r_all * np.cos(phi_all),
        r_all * np.sin(phi_all),
        z_all,
        surf.volume_id[all_sid],
        surf.layer_id[all_sid],
        module_id,
        np.concatenate([part, np.full(n_noise, -1, dtype=np.int64)]),
        np.concatenate([tx, nr * np.cos(nphi)]),
        np.concatenate([ty, nr * np.sin(nphi)]),
        np.concatenate([tz, nz]),
        np.concatenate([tpx, zeros]),
        np.concatenate([tpy, zeros]),
        np.concatenate([tpz, zeros]),
        np.concatenate([cells, ncell]),
        np.concatenate([charge, ncharge]),
    )


def _sorted_crossings(recs: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """The recorded crossings, concatenated and sorted by particle (stable: crossing order kept).

    Returns ``(part, sid, tx, ty, tz, tpx, tpy, tpz, inv_cos, iphi)``, each of shape (n,).
    """
    if recs:
        cols = tuple(np.concatenate(c) for c in zip(*recs, strict=True))
    else:
        i0, f0 = np.zeros(0, dtype=np.int64), np.zeros(0)
        cols = (i0, i0, f0, f0, f0, f0, f0, f0, f0, i0)
    order = np.argsort(cols[0], kind="stable")
    return tuple(v[order] for v in cols)


def _smear(
    tx: np.ndarray, ty: np.ndarray, tz: np.ndarray, sid: np.ndarray, surf: Surfaces,
    sensors: tuple[SensorType, ...], rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Measured ``(r [mm], phi [rad], z [mm])`` of true crossings, each (n,).

    r-phi and z are smeared on a barrel, r-phi and r on a disk, kept inside the surface.
    """
    kind = surf.kind[sid]
    is_bar = surf.barrel[sid]
    sig_rphi = np.array([s.sigma_rphi for s in sensors])
    sig_long = np.array([s.sigma_long for s in sensors])
    r_true = np.hypot(tx, ty)
    phi_true = np.arctan2(ty, tx)
    n = tx.size
    d_rphi = rng.normal(size=n) * sig_rphi[kind]
    d_long = rng.normal(size=n) * sig_long[kind]
    phi_m = phi_true + d_rphi / np.maximum(r_true, 1e-9)
    r_m = np.where(is_bar, r_true, np.clip(r_true + d_long, surf.r_min[sid], surf.r_max[sid]))
    z_m = np.where(is_bar, np.clip(tz + d_long, -surf.half_length[sid], surf.half_length[sid]), tz)
    return r_m, phi_m, z_m


def _noise_hits(
    n_signal: int, surf: Surfaces, noise_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise hits uniform over the sensitive area, ``noise_fraction`` of all hits.

    Returns ``(surface index, r [mm], phi [rad], z [mm])``, each (n_noise,).
    """
    n_noise = round(noise_fraction / (1.0 - noise_fraction) * n_signal)
    area = np.where(
        surf.barrel,
        2 * np.pi * surf.radius * 2 * surf.half_length,
        np.pi * (surf.r_max**2 - surf.r_min**2),
    )
    nsid = rng.choice(area.size, size=n_noise, p=area / area.sum())
    nphi = rng.uniform(-np.pi, np.pi, n_noise)
    nr = np.where(
        surf.barrel[nsid],
        surf.radius[nsid],
        np.sqrt(rng.uniform(surf.r_min[nsid] ** 2, surf.r_max[nsid] ** 2)),
    )
    nz = np.where(
        surf.barrel[nsid],
        rng.uniform(-1.0, 1.0, n_noise) * surf.half_length[nsid],
        surf.z[nsid],
    )
    return nsid, nr, nphi, nz


def _module_ids(
    all_sid: np.ndarray, r_all: np.ndarray, phi_all: np.ndarray, z_all: np.ndarray,
    iphi_sig: np.ndarray, surf: Surfaces, sensors: tuple[SensorType, ...],
) -> np.ndarray:  # fmt: skip
    """TrackML-like module ids (H,) of the hits: signal hits first (their ``iphi_sig`` kept).

    ``1 + (phi index) + 1000 * (index along z on a barrel, along r on a disk)``.
    """
    k_all = surf.kind[all_sid]
    mod_rphi = np.array([s.module_rphi for s in sensors])[k_all]
    mod_long = np.array([s.module_long for s in sensors])[k_all]
    long_coord = np.where(surf.barrel[all_sid], z_all + surf.half_length[all_sid], r_all)
    # modules per ring from the layer's nominal radius (barrel) or the hit's radius (disk)
    r_mod = np.where(surf.barrel[all_sid], surf.radius[all_sid], r_all)
    n_phi = np.maximum(1, np.round(2 * np.pi * r_mod / mod_rphi)).astype(np.int64)
    iphi = np.floor((phi_all + np.pi) / (2 * np.pi) * n_phi).astype(np.int64)
    # signal: the module the particle crossed (an overlap hit: the neighbour in phi)
    iphi[: iphi_sig.size] = iphi_sig
    iphi = np.mod(iphi, n_phi)
    module_id: np.ndarray = 1 + iphi + 1000 * np.floor(long_coord / mod_long).astype(np.int64)
    return module_id
