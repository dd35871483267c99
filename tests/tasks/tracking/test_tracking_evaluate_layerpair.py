"""Summaries of the default pipeline's evaluation: mean, std and standard error by hand."""

from __future__ import annotations

import math

import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.edge_model import EdgeClassifier, EdgeModelConfig
from particlegraph.tasks.tracking.evaluate_layerpair import stats
from particlegraph.tasks.tracking.learned import _init_from


def test_stats_by_hand():
    s = stats([1.0, 2.0, 3.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(math.sqrt(2 / 3))
    assert s["sem"] == pytest.approx(1.0 / math.sqrt(3))  # sample std 1, over sqrt(3)
    assert math.isnan(stats([])["mean"]) and math.isnan(stats([5.0])["sem"])


def test_init_from_refuses_a_missing_or_foreign_run(tmp_path):
    model = EdgeClassifier(EdgeModelConfig(hidden=8, iterations=1))
    with pytest.raises(DataFileError, match="not a finished tracking run"):
        _init_from(model, tmp_path)
    from particlegraph.train.checkpoint import save_checkpoint

    other = EdgeClassifier(EdgeModelConfig(hidden=4, iterations=1))
    save_checkpoint(tmp_path / "model.pt", {"model": other.state_dict()})
    with pytest.raises(DataFileError, match="no interaction network of this shape"):
        _init_from(model, tmp_path)
