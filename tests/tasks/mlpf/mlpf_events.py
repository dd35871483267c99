"""Tiny synthetic MLPF events and datasets for the tests (a helper module, not a test module)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, MLPFEvent
from particlegraph.tasks.mlpf.store import write_events


def make_events(n_events: int, seed: int) -> list[MLPFEvent]:
    """Tiny synthetic events: tracks -> charged hadrons, towers -> photons/neutral hadrons/none."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_events):
        n = int(rng.integers(12, 24))
        is_track = rng.random(n) < 0.5
        pt = rng.exponential(3.0, n) + 0.5
        eta = rng.uniform(-2.5, 2.5, n)
        phi = rng.uniform(-math.pi, math.pi, n)
        energy = pt * np.cosh(eta)
        em_frac = rng.random(n)
        x = np.zeros((n, 12), np.float32)
        x[:, 0] = np.where(is_track, ELEM_TRACK, ELEM_TOWER)
        x[:, 1], x[:, 2], x[:, 3], x[:, 4], x[:, 5] = pt, eta, np.sin(phi), np.cos(phi), energy
        charge = rng.choice([-1.0, 1.0], n)
        x[:, 6] = np.where(is_track, eta, energy * em_frac)
        x[:, 7] = np.where(is_track, np.sin(phi), energy * (1 - em_frac))
        x[:, 8] = np.where(is_track, np.cos(phi), 0.0)
        x[:, 9] = np.where(is_track, charge, 0.0)
        cls = np.where(is_track, 1, np.where(em_frac > 0.5, 3, 2))
        cls = np.where(~is_track & (rng.random(n) < 0.15), 0, cls)
        scale = 1.0 + 0.1 * rng.standard_normal(n)
        y = np.stack(
            [cls, np.where(is_track, charge, 0.0), pt * scale, eta, np.sin(phi), np.cos(phi),
             energy * scale],
            axis=1,
        ).astype(np.float32)  # fmt: skip
        y[cls == 0] = 0.0
        events.append(MLPFEvent(x, y, y.copy()))
    return events


def write_dataset(directory: Path, n_files: int, events_per_file: int, seed: int = 0) -> Path:
    """``n_files`` Parquet shards of synthetic events in ``directory``."""
    for i in range(n_files):
        events = make_events(events_per_file, seed * 1000 + i)
        write_events(directory / f"events_{i:03d}.parquet", events, {"synthetic": True})
    return directory


def random_events(seed: int, sizes: tuple[int, ...]) -> list[MLPFEvent]:
    """Events of standard-normal numbers with ``sizes`` elements each: storage round trips,
    not physics (the tests that use them switch the physics checks off)."""
    rng = np.random.default_rng(seed)
    return [
        MLPFEvent(
            rng.normal(size=(n, 12)).astype(np.float32),
            rng.normal(size=(n, 7)).astype(np.float32),
            rng.normal(size=(n, 7)).astype(np.float32),
        )
        for n in sizes
    ]
