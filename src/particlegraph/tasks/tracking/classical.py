"""The classical baselines as the learned pipeline's evaluation sees them: tune, then run.

Each entry of :data:`METHODS` takes validation events, chooses its settings there by the mean
TrackML score, and returns the function that reconstructs one event. The algorithms themselves
live in the tracking task's baseline code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from particlegraph.tasks.tracking.dataset import HitEvent
from particlegraph.tasks.tracking.pipeline import ClusterConfig, unrolled_dbscan
from particlegraph.tasks.tracking.score import trackml_score

Runner = Callable[[HitEvent], np.ndarray]
#: Curvature hypotheses [1/m] of the unrolled DBSCAN: |k| = 0.3 B / pT, down to pT ~ 0.3 GeV at 2 T.
CURVATURES = np.linspace(-2.0, 2.0, 21)
UNROLLED_EPS = (0.002, 0.004, 0.008, 0.015, 0.03)


def _score(ev: HitEvent, track_id: np.ndarray) -> float:
    return trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), track_id)


def tune_unrolled(val: list[HitEvent]) -> Runner:
    """Helix-unrolled DBSCAN (curvature scan), eps chosen on ``val``."""
    best, best_s = UNROLLED_EPS[0], -1.0
    for eps in UNROLLED_EPS:
        c = ClusterConfig(eps=eps, min_samples=1)
        s = float(np.mean([_score(e, unrolled_dbscan(e.xyz.numpy(), c, CURVATURES)) for e in val]))
        if s > best_s:
            best, best_s = eps, s
    cfg = ClusterConfig(eps=best, min_samples=1)
    return lambda ev: unrolled_dbscan(ev.xyz.numpy(), cfg, CURVATURES)


METHODS: dict[str, Callable[[list[HitEvent]], Runner]] = {"unrolled_dbscan": tune_unrolled}
