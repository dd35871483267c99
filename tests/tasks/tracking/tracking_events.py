"""Tiny seeded TrackML-like events for the tracking tests: charged pions from the beam line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from particlegraph.sim.particles import make_particles
from particlegraph.sim.silicon import SensorType, SiliconConfig
from particlegraph.tasks.tracking.simulate import build_event
from particlegraph.tasks.tracking.trackml import write_event

#: A sensor with no smearing (the hit is where the particle crossed).
EXACT = SensorType(0.0, 0.0, 0.15, 0.05, 0.05, 16.8, 72.0)


def exact_silicon(noise: float = 0.0) -> SiliconConfig:
    """The default layout without material, inefficiency, smearing, overlaps or conversions."""
    return SiliconConfig(
        x_over_x0=0.0, efficiency=1.0, noise_fraction=noise, pixel=EXACT, short=EXACT,
        long=EXACT, barrel_overlap=(0.0, 0.0, 0.0), disk_overlap=(0.0, 0.0, 0.0),
        conversions=False,
    )  # fmt: skip


def write_events(folder: Path, n_events: int, n_particles: int) -> None:
    """``n_events`` events (ids 1000, 1001, ...) of ``n_particles`` pions, pT 0.5-5 GeV, |eta| < 2,
    vertex z ~ N(0, 20 mm), simulated with the default detector and written as TrackML CSV."""
    rng = np.random.default_rng(0)
    for e in range(n_events):
        pt = rng.uniform(0.5, 5.0, n_particles)
        eta = rng.uniform(-2.0, 2.0, n_particles)
        phi = rng.uniform(-np.pi, np.pi, n_particles)
        p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], 1)
        vtx = np.stack(
            [np.zeros(n_particles), np.zeros(n_particles), rng.normal(0, 20, n_particles)], 1
        )
        parts = make_particles(
            np.full(n_particles, 211), rng.choice([-1.0, 1.0], n_particles), p4, vtx
        )
        write_event(folder, build_event(parts, SiliconConfig(), rng, 1000 + e))
