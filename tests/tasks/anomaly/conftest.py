"""Tiny seeded PF-candidate samples for the anomaly tests (written with the task's own writer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from particlegraph.tasks.anomaly.samples import write_candidates


def make_rows(n_events: int, seed: int, pt_scale: float = 2.0, n_max: int = 60) -> list[dict]:
    """Per-event candidate rows: 3..n_max candidates, exponential pT, sorted by falling pT."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_events):
        n = int(rng.integers(3, n_max))
        pt = np.sort(rng.exponential(pt_scale, n) + 0.5)[::-1].astype(np.float32)
        cls = rng.integers(1, 6, n).astype(np.int8)
        charge = np.where(np.isin(cls, (1, 4, 5)), rng.choice([-1, 1], n), 0).astype(np.int8)
        eta = rng.normal(0, 1.5, n).astype(np.float32)
        rows.append({
            "pt": pt, "eta": eta, "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
            "cls": cls, "charge": charge, "energy": (pt * np.cosh(eta)).astype(np.float32),
            "n_cand": np.int32(n + 100), "ht": float(pt.sum()), "lead_jet_pt": float(pt[0]),
            "lead_jet_mass": float(pt[:3].sum() / 3), "n_jets": 1,
        })  # fmt: skip
    return rows


@pytest.fixture
def sample_dir(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, n_events, seed, pt_scale)`` -> folder with two Parquet files of that sample."""

    def make(name: str = "bkg", n_events: int = 40, seed: int = 0, pt_scale: float = 2.0) -> Path:
        rows = make_rows(n_events, seed, pt_scale)
        half = n_events // 2
        folder = tmp_path / name
        meta = {"sample": name, "process": "synthetic", "pileup": 0}
        write_candidates(folder / f"{name}_00000.parquet", rows[:half], meta)
        write_candidates(folder / f"{name}_00001.parquet", rows[half:], meta)
        return folder

    return make


@pytest.fixture
def missing_links() -> Callable[[Path], list[Path]]:
    """``missing_links(page)``: the broken local links of an HTML page (empty when sound)."""
    from particlegraph.report.run_index import missing_targets

    return missing_targets
