"""Streaming relevance study: agreement with rmaps, exact merge, exact resume, bootstrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lrp_reference import random_mlpf_input
from lrp_toy import toy_gravnet

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.explain import rmaps
from particlegraph.explain.aggregate import FIXED, RelevanceStudy, StudySpec
from particlegraph.explain.lrp import explain_outputs

OUTPUTS = ("class:c", "class:d", "pt")
FEATURES = tuple(f"f{i}" for i in range(12))


@pytest.fixture(scope="module")
def events() -> list[tuple]:
    """Six small events: (multi-output relevance, true class, predicted class, group)."""
    model = toy_gravnet(seed=0)
    out = []
    for i in range(6):
        x = random_mlpf_input(20 + 3 * i, seed=10 + i).double()
        rel = explain_outputs(model, x, OUTPUTS)
        g = torch.Generator().manual_seed(i)
        true = torch.randint(0, 6, (len(x),), generator=g)
        pred = torch.where(torch.rand(len(x), generator=g) < 0.7, true, (true + 1) % 6)
        out.append((rel, true, pred, (x[:, 0] == 2).long()))
    return out


def _spec(**kw) -> StudySpec:
    return StudySpec(OUTPUTS, 6, FEATURES, ("tower", "track"), num_neighbours=3, **kw)


def _run(events: list[tuple], indices: list[int], study: RelevanceStudy | None = None):
    study = study or RelevanceStudy(_spec())
    for i in indices:
        study.add_event(i, *events[i])
    return study


def test_maps_and_histograms_agree_with_rmaps(events) -> None:
    study = _run(events, list(range(6)))
    for o in range(len(OUTPUTS)):
        maps = rmaps.ClassMapAccumulator(6, 12, num_neighbours=3)
        hist = rmaps.FeatureHistogram(6, 12)
        for rel, true, pred, _ in events:
            maps.add(rel.output(o), true, pred)
            hist.add(rel.output(o), true)
        ref = maps.result()
        assert np.array_equal(study.arrays["count"][o], ref["count"])
        assert np.allclose(study.mean("maps")[o], ref["mean"], atol=1e-9)
        assert np.array_equal(study.arrays["hist"][o].sum(axis=1), hist.counts)
    # typed |shares| of an element sum to 1, as do its rank shares; signed shares match the maps
    cnt = np.maximum(study.arrays["count"], 1)
    seen = study.arrays["count"] > 0
    assert np.allclose(study.arrays["abs_share"].sum(-1)[seen] / FIXED / cnt[seen], 1.0)
    assert np.allclose(study.arrays["rank_share"].sum(-1)[seen] / FIXED / cnt[seen], 1.0)


def test_merge_is_exact_and_refuses_overlap(events) -> None:
    whole = _run(events, list(range(6)))
    a = _run(events, [0, 2, 4])
    b = _run(events, [1, 3, 5])
    merged = b.merge(a)
    for key, arr in whole.arrays.items():
        assert np.array_equal(merged.arrays[key], arr), key
    assert merged.events == 6 and merged.holds(5) and not merged.holds(6)
    with pytest.raises(ConfigError, match="overlap"):
        merged.merge(_run(events, [3]))
    with pytest.raises(ConfigError, match="different settings"):
        a.merge(RelevanceStudy(_spec(bins=10)))
    with pytest.raises(ConfigError, match="already"):
        a.add_event(2, *events[2])


def test_resume_from_saved_state_is_exact(events, tmp_path: Path) -> None:
    whole = _run(events, list(range(6)))
    part = _run(events, [0, 1, 2])
    part.save(tmp_path / "state.npz")
    resumed = _run(events, [3, 4, 5], RelevanceStudy.load(tmp_path / "state.npz"))
    for key, arr in whole.arrays.items():
        assert np.array_equal(resumed.arrays[key], arr), key
    assert resumed.spans == [(0, 6, 1)]
    (tmp_path / "bad.npz").write_bytes(b"not a state")
    with pytest.raises(DataFileError, match="delete it"):
        RelevanceStudy.load(tmp_path / "bad.npz")


def test_bootstrap_spread_and_flipping(events) -> None:
    study = _run(events, list(range(6)))
    std = study.boot_std("abs_share")
    assert std.shape == study.mean("abs_share").shape
    assert np.all(std >= 0) and np.any(std > 0)
    # the replicas are reweighted copies of the events: their counts scatter around the count
    boot = study.arrays["boot_count"]
    assert boot.shape[0] == 32 and not np.all(boot == study.arrays["count"])
    assert abs(boot.mean() / study.arrays["count"].mean() - 1) < 0.5
    study.add_flipping(1, "feature", np.linspace(0, 1, 11), np.zeros(11))
    study.add_flipping(1, "feature", np.linspace(0, 3, 11), np.ones(11))
    curves = study.flipping()
    assert np.allclose(curves[1, 1, 0], np.linspace(0, 2, 11))
    assert np.allclose(curves[1, 1, 1], 0.5)
    assert np.isnan(curves[0]).all()
    with pytest.raises(ConfigError, match="11 points"):
        study.add_flipping(0, "element", np.zeros(5), np.zeros(5))


def test_bad_input_is_refused(events) -> None:
    rel, true, pred, group = events[0]
    study = RelevanceStudy(_spec())
    with pytest.raises(ConfigError, match="true classes"):
        study.add_event(0, rel, true + 6, pred, group)
    with pytest.raises(ConfigError, match="one entry per element"):
        study.add_event(0, rel, true[:-1], pred, group)
    with pytest.raises(ConfigError):
        StudySpec((), 6, FEATURES)
