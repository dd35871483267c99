"""Tiny seeded TrackML-like events for the tracking tests: charged pions from the beam line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from particlegraph.sim.particles import make_particles
from particlegraph.sim.silicon import SiliconConfig
from particlegraph.tasks.tracking.simulate import build_event
from particlegraph.tasks.tracking.trackml import write_event


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
