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
s the transverse path). At each crossed surface it leaves a hit with probability ``efficiency``
and is deflected by multiple scattering (Highland formula, PDG Review "Passage of particles
through matter", Eq. 34.15) for a layer of ``x_over_x0`` radiation lengths at normal incidence;
energy loss is neglected. A particle is followed until no surface is reachable or it has turned by
``max_turn`` (half a revolution: loopers are cut where they turn back inwards). The measured
position is the true one smeared on the surface (r-phi and z on a barrel, r-phi and r on a disk)
with the resolutions of the sensor type: pitch / sqrt(12) of the TrackML modules (pixels
50 x 50 um, short strips 80 um x 1.2 mm, long strips 120 um x 10.4 mm). Noise hits, uniform over
the sensitive area, make ``noise_fraction`` of all hits.

Units: positions mm, momenta GeV, field T.

Why ~450 lines: the geometry, the propagation through it and the hit response share one
config and one random stream (a split would thread both through every call).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.sim.helix import C_LIGHT
from particlegraph.sim.particles import Particles

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
    x_over_x0: float = 0.02  # material per layer at normal incidence [X0] (about 2 % in TrackML)
    efficiency: float = 0.99  # probability that a crossing leaves a hit (silicon: > 99 %)
    noise_fraction: float = 0.10  # share of noise hits among all hits (about 10 %, issue text)
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


def highland(p: np.ndarray, beta: np.ndarray, x_over_x0: np.ndarray) -> np.ndarray:
    """Width [rad] of the plane-projected scattering angle (Highland, PDG Eq. 34.15), unit charge.

    theta0 = 13.6 MeV / (beta c p) sqrt(x/X0) (1 + 0.038 ln(x / (X0 beta^2))); 0 for x = 0.
    """
    t = np.maximum(x_over_x0, 1e-12)
    theta = 0.0136 / (beta * p) * np.sqrt(t) * (1.0 + 0.038 * np.log(t / beta**2))
    return np.where(x_over_x0 > 0, np.maximum(theta, 0.0), 0.0)


def scatter(
    phi: np.ndarray, cot: np.ndarray, p: np.ndarray, theta0: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deflect directions by two Gaussian angles of width ``theta0`` in the plane normal to them.

    Args: direction azimuth ``phi``, ``cot`` = pz / pT, momentum ``p`` [GeV], ``theta0`` [rad],
    all (P,). Returns the new (phi, cot, pT); |p| is unchanged (no energy loss).
    """
    t1, t2 = rng.normal(size=(2, phi.size)) * theta0
    lam = np.arctan(cot)  # dip angle
    cp, sp, cl, sl = np.cos(phi), np.sin(phi), np.cos(lam), np.sin(lam)
    # unit direction + t1 * (azimuthal unit vector) + t2 * (polar unit vector)
    vx = cl * cp - t1 * sp - t2 * sl * cp
    vy = cl * sp + t1 * cp - t2 * sl * sp
    vz = sl + t2 * cl
    vt = np.hypot(vx, vy)
    return np.arctan2(vy, vx), vz / vt, p * vt / np.sqrt(vt**2 + vz**2)


def simulate_hits(
    particles: Particles, cfg: SiliconConfig, rng: np.random.Generator
) -> tuple[SiliconHits, np.ndarray]:
    """Propagate the charged particles of an event through the tracker and add noise.

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
    pt_all = particles.pt
    sim = np.flatnonzero((particles.charge != 0) & (pt_all > max(cfg.pt_min, 1e-9)))
    p = particles.select(sim)
    pt = p.pt
    q = p.charge
    pmag = np.sqrt(pt**2 + p.pz**2)
    beta = np.clip(pmag / np.maximum(p.e, pmag), 1e-3, 1.0)
    x, y, z = p.vx.copy(), p.vy.copy(), p.vz.copy()
    phi = np.arctan2(p.py, p.px)
    cot = p.pz / pt  # dz / ds
    ptc = pt.copy()
    turned = np.zeros_like(pt)
    active = np.arange(sim.size)
    bar = np.flatnonzero(surf.barrel)
    dsk = np.flatnonzero(~surf.barrel)
    sensors = (cfg.pixel, cfg.short, cfg.long)
    sig_rphi = np.array([s.sigma_rphi for s in sensors])
    sig_long = np.array([s.sigma_long for s in sensors])
    recs: list[tuple[np.ndarray, ...]] = []
    for _ in range(cfg.max_crossings):
        if active.size == 0:
            break
        a = active
        k = C_LIGHT * q[a] * cfg.bz / ptc[a] * 1e-3  # signed curvature [1/mm]
        s1, s2 = _cylinder_crossings(x[a], y[a], phi[a], k, surf.radius[bar])
        s_b = np.where(s1 > _MIN_STEP, s1, np.inf)
        s_b = np.minimum(s_b, np.where(s2 > _MIN_STEP, s2, np.inf))
        zb = z[a, None] + np.where(np.isfinite(s_b), s_b, 0.0) * cot[a, None]
        s_b = np.where(np.abs(zb) <= surf.half_length[bar][None, :], s_b, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_d = (surf.z[dsk][None, :] - z[a, None]) / cot[a, None]  # (P, D)
        s_d = np.where(np.isfinite(s_d) & (s_d > _MIN_STEP), s_d, np.inf)
        xd, yd, _, _ = _advance(
            x[a, None], y[a, None], z[a, None], phi[a, None], k[:, None], cot[a, None],
            np.where(np.isfinite(s_d), s_d, 0.0),
        )  # fmt: skip
        rd = np.hypot(xd, yd)
        s_d = np.where((rd >= surf.r_min[dsk]) & (rd <= surf.r_max[dsk]), s_d, np.inf)
        s_all = np.concatenate([s_b, s_d], axis=1)  # (P, S) in the order bar + dsk
        which = np.argmin(s_all, axis=1)
        s = s_all[np.arange(a.size), which]
        ok = np.isfinite(s) & (
            turned[a] + np.abs(k) * np.where(np.isfinite(s), s, 0) <= cfg.max_turn
        )
        a, k, s, which = a[ok], k[ok], s[ok], which[ok]
        sid = np.concatenate([bar, dsk])[which]
        x[a], y[a], z[a], phi[a] = _advance(x[a], y[a], z[a], phi[a], k, cot[a], s)
        # put barrel crossings exactly on their cylinder (the helix formula loses ~1e-5 mm
        # to cancellation for TeV tracks)
        on_bar = surf.barrel[sid]
        scale = np.where(on_bar, surf.radius[sid] / np.maximum(np.hypot(x[a], y[a]), 1e-12), 1.0)
        x[a], y[a] = x[a] * scale, y[a] * scale
        z[a] = np.where(on_bar, z[a], surf.z[sid])
        turned[a] += np.abs(k) * s
        # momentum direction at the crossing and the incidence on the surface
        px, py, pz = ptc[a] * np.cos(phi[a]), ptc[a] * np.sin(phi[a]), ptc[a] * cot[a]
        r = np.hypot(x[a], y[a])
        is_bar = surf.barrel[sid]
        cos_inc = np.where(
            is_bar, (px * x[a] + py * y[a]) / np.maximum(r, 1e-12) / pmag[a], pz / pmag[a]
        )
        inv_cos = np.minimum(1.0 / np.maximum(np.abs(cos_inc), 1e-6), 10.0)
        hit = rng.random(a.size) < cfg.efficiency
        recs.append(
            (
                a[hit],
                sid[hit],
                x[a][hit],
                y[a][hit],
                z[a][hit],
                px[hit],
                py[hit],
                pz[hit],
                inv_cos[hit],
            )
        )
        theta0 = highland(pmag[a], beta[a], cfg.x_over_x0 * inv_cos)
        phi[a], cot[a], ptc[a] = scatter(phi[a], cot[a], pmag[a], theta0, rng)
        active = a
    return _finish(recs, surf, cfg, sig_rphi, sig_long, rng), sim


def _finish(
    recs: list[tuple[np.ndarray, ...]], surf: Surfaces, cfg: SiliconConfig,
    sig_rphi: np.ndarray, sig_long: np.ndarray, rng: np.random.Generator,
) -> SiliconHits:  # fmt: skip
    """Smear the crossings, add noise hits and number the modules and clusters."""
    if recs:
        part, sid, tx, ty, tz, tpx, tpy, tpz, inv_cos = (
            np.concatenate(c) for c in zip(*recs, strict=True)
        )
    else:
        part = sid = np.zeros(0, dtype=np.int64)
        tx = ty = tz = tpx = tpy = tpz = inv_cos = np.zeros(0)
    # sort by particle, keeping the crossing order (stable)
    order = np.argsort(part, kind="stable")
    part, sid, tx, ty, tz, tpx, tpy, tpz, inv_cos = (
        v[order] for v in (part, sid, tx, ty, tz, tpx, tpy, tpz, inv_cos)
    )
    kind = surf.kind[sid]
    is_bar = surf.barrel[sid]
    r_true = np.hypot(tx, ty)
    phi_true = np.arctan2(ty, tx)
    n = part.size
    d_rphi = rng.normal(size=n) * sig_rphi[kind]
    d_long = rng.normal(size=n) * sig_long[kind]
    phi_m = phi_true + d_rphi / np.maximum(r_true, 1e-9)
    r_m = np.where(is_bar, r_true, np.clip(r_true + d_long, surf.r_min[sid], surf.r_max[sid]))
    z_m = np.where(is_bar, np.clip(tz + d_long, -surf.half_length[sid], surf.half_length[sid]), tz)
    # noise: uniform over the sensitive area, noise_fraction of all hits
    n_noise = round(cfg.noise_fraction / (1.0 - cfg.noise_fraction) * n)
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
    all_sid = np.concatenate([sid, nsid])
    r_all = np.concatenate([r_m, nr])
    phi_all = np.concatenate([phi_m, nphi])
    z_all = np.concatenate([z_m, nz])
    sensors = (cfg.pixel, cfg.short, cfg.long)
    k_all = surf.kind[all_sid]
    mod_rphi = np.array([s.module_rphi for s in sensors])[k_all]
    mod_long = np.array([s.module_long for s in sensors])[k_all]
    long_coord = np.where(surf.barrel[all_sid], z_all + surf.half_length[all_sid], r_all)
    n_phi = np.maximum(1, np.round(2 * np.pi * r_all / mod_rphi)).astype(np.int64)
    iphi = np.floor((phi_all + np.pi) / (2 * np.pi) * n_phi).astype(np.int64)
    module_id = 1 + iphi + 1000 * np.floor(long_coord / mod_long).astype(np.int64)
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
