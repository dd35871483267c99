"""train_val_split: sizes at the rounding boundary, a partition of the indices, seeded, too few."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.train.split import train_val_split


def test_split_is_a_seeded_partition_with_the_rounded_validation_size() -> None:
    tr, va = train_val_split(10, 0.25, seed=3)  # round(2.5) = 2 (banker's rounding)
    assert len(va) == 2 and len(tr) == 8
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
    again = train_val_split(10, 0.25, seed=3)
    assert np.array_equal(tr, again[0]) and np.array_equal(va, again[1])
    assert len(train_val_split(10, 0.0, seed=0)[1]) == 1  # at least one validation example


def test_split_refuses_what_leaves_no_training_example() -> None:
    assert len(train_val_split(2, 0.5, seed=0)[0]) == 1
    with pytest.raises(DataFileError, match=r"only 1 graphs: too few to hold out a validation set"):
        train_val_split(1, 0.5, seed=0, what="graphs")
