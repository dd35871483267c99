"""The simulated tracker against the TrackML challenge's geometry file (detectors.csv).

The file is shared data outside the repository (``PARTICLEGRAPH_TRACKML_DETECTORS`` or
/work/shared/data/trackml/detectors.csv.gz); the test is skipped where it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from particlegraph.sim.silicon import VOLUMES, SiliconConfig

#: The shared folder beside the checkout (as CI lays it out), else the environment's choice.
_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "data" / "trackml" / "detectors.csv.gz"
DETECTORS = Path(os.environ.get("PARTICLEGRAPH_TRACKML_DETECTORS", _BESIDE))


@pytest.fixture(scope="module")
def det():
    if not DETECTORS.is_file():
        pytest.skip(f"{DETECTORS} not present (the challenge's detectors.csv)")
    import pyarrow.csv as pcsv

    t = pcsv.read_csv(DETECTORS)
    d = {c: t.column(c).to_numpy() for c in t.column_names}
    d["r"] = np.hypot(d["cx"], d["cy"])
    return d


def _layer(d, vol, lay):
    return (d["volume_id"] == vol) & (d["layer_id"] == lay)


def test_barrels_match_the_challenge(det):
    cfg = SiliconConfig()
    for kind, name in enumerate(("pixel", "short", "long")):
        vol = VOLUMES[name][1]
        overlaps = []
        for i, radius in enumerate(getattr(cfg, f"{name}_radii")):
            m = _layer(det, vol, 2 * (i + 1))
            assert m.any()
            assert det["r"][m].mean() == pytest.approx(radius, abs=0.5)
            half = np.abs(det["cz"][m]).max() + det["module_hv"][m].mean()
            assert half == pytest.approx(getattr(cfg, f"{name}_half_length"), abs=2.0)
            # doubly covered share: module areas / layer area - 1
            area = (2 * det["module_maxhu"][m] * 2 * det["module_hv"][m]).sum()
            overlaps.append(area / (2 * np.pi * det["r"][m].mean() * 2 * half) - 1)
        assert np.mean(overlaps) == pytest.approx(cfg.barrel_overlap[kind], abs=0.02)
        sensor = getattr(cfg, name)
        assert 2 * det["module_maxhu"][m].mean() == pytest.approx(sensor.module_rphi, rel=0.01)
        assert 2 * det["module_hv"][m].mean() == pytest.approx(sensor.module_long, rel=0.01)


def test_disks_match_the_challenge(det):
    cfg = SiliconConfig()
    for kind, name in enumerate(("pixel", "short", "long")):
        vol = VOLUMES[name][2]  # the +z end cap, layers 2, 4, ... from the inside out
        rmin, rmax = getattr(cfg, f"{name}_disk_r")
        for i, z in enumerate(getattr(cfg, f"{name}_disks")):
            m = _layer(det, vol, 2 * (i + 1))
            assert det["cz"][m].mean() == pytest.approx(z, abs=2.0)
            lo = (det["r"][m] - det["module_hv"][m]).min()
            hi = (det["r"][m] + det["module_hv"][m]).max()
            assert lo == pytest.approx(rmin, abs=30.0) and hi == pytest.approx(rmax, abs=10.0)
            area = (
                (det["module_minhu"][m] + det["module_maxhu"][m]) * 2 * det["module_hv"][m]
            ).sum()
            cover = area / (np.pi * (hi**2 - lo**2)) - 1
            assert cover == pytest.approx(cfg.disk_overlap[kind], abs=0.02)
