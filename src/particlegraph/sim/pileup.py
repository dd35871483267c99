"""Pile-up: a pool of minimum-bias events, generated once (or loaded from a cache file) and reused.

Generating PU 200 directly costs about 0.9 s per hard event, so each event instead draws
Poisson(mu) events from a fixed pool and makes each one look new with a random rotation in phi,
a random mirror z -> -z (pp collisions are symmetric) and its own vertex position along the beam,
as Delphes' PileUpMerger does with its pile-up file.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from particlegraph.atomic import atomic_path
from particlegraph.bounds import MAX_PILEUP, MAX_POOL_EVENTS
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.progress import progress as progress_counter
from particlegraph.sim.particles import INVISIBLE_PIDS, Particles, empty_particles
from particlegraph.sim.pythia import COMMON_SETTINGS, make_pythia, next_events, pythia_seed

#: Particles beyond this |eta| never reach the calorimeter (|eta| < 5); dropped to save memory.
POOL_ETA_MAX = 6.0
_POOL_FORMAT = 1
#: Pile-up is every inelastic pp interaction (mu counts inelastic collisions, sigma_inel ~ 80 mb
#: at 14 TeV), so the pool includes the diffractive ones: SoftQCD:inelastic, not only the
#: non-diffractive part that the ``minbias`` process preset generates.
POOL_SETTINGS: tuple[str, ...] = (*COMMON_SETTINGS, "SoftQCD:inelastic = on")


@dataclass(frozen=True)
class MinBiasPool:
    """Minimum-bias events stored flat: ``particles`` (P,) and ``offsets`` (E+1,)."""

    particles: Particles
    offsets: np.ndarray

    @property
    def num_events(self) -> int:
        """Number of pool events."""
        return int(self.offsets.size - 1)

    def save(self, path: Path) -> None:
        """Write the pool as ``.npz`` atomically."""
        buf = io.BytesIO()
        np.savez(buf, offsets=self.offsets, **self.particles._asdict())
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> MinBiasPool:
        """Read a pool written by :meth:`save`."""
        try:
            with np.load(path) as z:
                parts = Particles(*(z[f] for f in Particles._fields))
                return cls(parts, z["offsets"])
        except (OSError, KeyError, ValueError) as err:
            raise DataFileError(f"{path}: not a readable minimum-bias pool ({err})") from err


def build_pool(
    num_events: int,
    seed: int,
    settings: Sequence[str] | None = None,
    progress: bool | None = False,
) -> MinBiasPool:
    """Generate ``num_events`` pile-up events with a seed derived from ``seed``.

    ``settings`` are the full Pythia settings (default :data:`POOL_SETTINGS`; note that
    initialising the diffractive processes takes Pythia tens of seconds, once per pool).
    """
    if not 1 <= num_events <= MAX_POOL_EVENTS:
        raise ConfigError(
            f"the pile-up pool must hold between 1 and {MAX_POOL_EVENTS:,} events, got {num_events:,}"
        )
    ss = np.random.SeedSequence([seed, 2])  # stream 2: the pile-up pool
    pythia = make_pythia(POOL_SETTINGS if settings is None else settings, pythia_seed(ss))
    chunks: list[Particles] = []
    counts: list[int] = []
    # a tqdm bar on a terminal, plain lines with an ETA in a pipe (None: shown, False: silent)
    with progress_counter(
        total=num_events, unit="ev", desc="minbias pool", enabled=progress
    ) as bar:
        done = 0
        while done < num_events:
            n = min(100, num_events - done)
            for ev in next_events(pythia, n):
                with np.errstate(divide="ignore", invalid="ignore"):
                    keep = ~np.isin(np.abs(ev.pid), INVISIBLE_PIDS) & (
                        np.abs(ev.eta) < POOL_ETA_MAX
                    )
                ev = ev.select(keep)
                chunks.append(ev)
                counts.append(ev.size)
            done += n
            bar.update(n)
    flat = Particles(*(np.concatenate(c) for c in zip(*chunks, strict=True)))
    return MinBiasPool(flat, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def pool_cache_path(
    cache_dir: Path, num_events: int, seed: int, settings: Sequence[str] | None = None
) -> Path:
    """Cache file name, unique for the pool size, seed and generator settings."""
    settings = POOL_SETTINGS if settings is None else settings
    key = json.dumps([_POOL_FORMAT, num_events, seed, list(settings)])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return Path(cache_dir) / f".minbias_pool_{num_events}_{digest}.npz"


def load_or_build_pool(
    num_events: int,
    seed: int,
    cache_dir: Path | None = None,
    settings: Sequence[str] | None = None,
    progress: bool | None = False,
) -> MinBiasPool:
    """The pool for (num_events, seed), read from ``cache_dir`` when cached there, else built and cached."""
    if cache_dir is None:
        return build_pool(num_events, seed, settings, progress)
    path = pool_cache_path(cache_dir, num_events, seed, settings)
    if path.exists():
        return MinBiasPool.load(path)
    pool = build_pool(num_events, seed, settings, progress)
    pool.save(path)
    return pool


def overlay(
    pool: MinBiasPool, mu: float, rng: np.random.Generator, vertex_sigma_z: float
) -> tuple[Particles, int]:
    """Draw Poisson(``mu``) pool events, transform each, and return them flat with their count.

    Each drawn event is rotated by a uniform angle in phi, mirrored in z with probability 1/2 and
    shifted along z by a Gaussian of width ``vertex_sigma_z`` [mm]. Vectorised over particles.
    ``mu`` outside [0, :data:`~particlegraph.bounds.MAX_PILEUP`] is a :class:`ConfigError`.
    """
    if not 0.0 <= mu <= MAX_PILEUP:  # also NaN; a huge mu fills the memory
        raise ConfigError(f"pile-up mu must be between 0 and {MAX_PILEUP:g}, got {mu}")
    n = int(rng.poisson(mu)) if mu > 0 else 0
    if n == 0:
        return empty_particles(), 0
    which = rng.integers(0, pool.num_events, size=n)
    angle = rng.uniform(-np.pi, np.pi, size=n)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    dz = rng.normal(0.0, vertex_sigma_z, size=n)
    starts, stops = pool.offsets[which], pool.offsets[which + 1]
    sizes = stops - starts
    # gather index: for each drawn event, the range start..stop of the flat pool
    event_of = np.repeat(np.arange(n), sizes)
    within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    idx = starts[event_of] + within
    p = pool.particles
    c, s = np.cos(angle)[event_of], np.sin(angle)[event_of]
    m = mirror[event_of]
    out = Particles(
        p.pid[idx],
        p.charge[idx],
        c * p.px[idx] - s * p.py[idx],
        s * p.px[idx] + c * p.py[idx],
        m * p.pz[idx],
        p.e[idx],
        c * p.vx[idx] - s * p.vy[idx],
        s * p.vx[idx] + c * p.vy[idx],
        m * p.vz[idx] + dz[event_of],
    )
    return out, n
