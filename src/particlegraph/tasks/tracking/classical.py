"""The classical baselines as the learned pipeline's evaluation sees them: tune, then run.

Each entry of :data:`METHODS` takes validation events, chooses its settings there by the mean
TrackML score, and returns the function that reconstructs one event; the algorithms live in
:mod:`particlegraph.tasks.tracking.baselines` (raw DBSCAN, helix-unrolled DBSCAN with a
vertex-z scan, a road-search track follower).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from particlegraph.tasks.tracking.baselines import TUNERS
from particlegraph.tasks.tracking.dataset import HitEvent

Runner = Callable[[HitEvent], np.ndarray]

#: name -> tune(validation events) -> run(event) -> track ids.
METHODS: dict[str, Callable[[list[HitEvent]], Runner]] = dict(TUNERS)
