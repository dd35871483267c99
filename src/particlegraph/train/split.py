"""The seeded train/validation split of a task's examples (rows, graphs)."""

from __future__ import annotations

import numpy as np

from particlegraph.errors import DataFileError


def train_val_split(
    n: int, val_fraction: float, seed: int, *, what: str = "examples"
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``n`` example indices into (train, validation) index arrays.

    The validation part holds ``round(val_fraction * n)`` examples, at least one; a split that
    would leave no training example raises :class:`~particlegraph.errors.DataFileError`
    ("only {n} {what}: too few to hold out a validation set").
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    if n - n_val < 1:
        raise DataFileError(f"only {n} {what}: too few to hold out a validation set")
    return perm[n_val:], perm[:n_val]
