"""Headline MLPF numbers with bootstrap errors: nominal values, paired zero, verdicts in JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_mlpf_metrics_compare import synthetic_event

from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.uncertainty import summarize_uncertainties


def _events(identical: bool) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(4)
    events = []
    for _ in range(12):
        X, ygen = synthetic_event(rng)
        ycand = ygen.copy()
        ycand[:, 2] *= rng.uniform(0.7, 1.3, len(ycand)).astype(np.float32)
        ypred = ycand.copy() if identical else ygen.copy()
        if not identical:
            ypred[:, 2] *= rng.uniform(0.95, 1.05, len(ypred)).astype(np.float32)
        events.append((X, ygen, ycand, ypred))
    return events


def test_nominal_values_equal_the_metrics_and_errors_are_positive() -> None:
    col = pf.collect(_events(identical=False), jet_chunk=5)
    res = pf.summarize(col)
    unc = summarize_uncertainties(col, replicas=50, seed=1)
    json.dumps(unc)  # JSON-ready
    q = unc["quantities"]
    for side in ("mlpf", "baseline"):
        assert q["jet_pt_resolution/all"][side]["value"] == pytest.approx(
            res[side]["jet_pt_resolution"]
        )
        assert q["met_std_gev"][side]["value"] == pytest.approx(res[side]["met_std_gev"])
        assert q["met_resolution"][side]["value"] == pytest.approx(res[side]["met_resolution"])
        assert q["efficiency/photon"][side]["value"] == pytest.approx(
            res[side]["efficiency"]["photon"]
        )
        assert q["pt_resolution/charged_hadron"][side]["value"] == pytest.approx(
            res[side]["pt_resolution"]["charged_hadron"], rel=1e-5
        )
        assert q["pt_resolution/charged_hadron"][side]["error"] > 0.0
    # MLPF's pT smearing (+-5 %) is far narrower than the baseline's (+-30 %)
    comp = q["pt_resolution/charged_hadron"]["comparison"]
    assert comp["better"] is True
    assert comp["difference"]["value"] < -5 * comp["difference"]["error"]


def test_identical_algorithms_differ_by_exactly_zero_with_zero_error() -> None:
    col = pf.collect(_events(identical=True), jet_chunk=5)
    unc = summarize_uncertainties(col, replicas=30, seed=2)
    compared = [q["comparison"] for q in unc["quantities"].values() if "comparison" in q]
    assert len(compared) > 20
    for comp in compared:
        if comp["difference"]["value"] is None:  # an empty jet bin
            continue
        assert comp["difference"] == {"value": 0.0, "error": 0.0}
        assert comp["at_least_as_good"] is True and comp["better"] is False


def test_events_of_elements_and_jets_are_recorded() -> None:
    events = _events(identical=False)
    col = pf.collect(events, jet_chunk=5)
    assert col.element_event.max() == len(events) - 1
    assert len(col.element_event) == len(col.gen["cls"])
    assert col.confusion_events["mlpf"].shape == (len(events), 6, 6)
    assert np.array_equal(col.confusion_events["mlpf"].sum(0), col.confusion["mlpf"])
    assert len(col.jet_pair_events["baseline"]) == len(col.jet_pairs["baseline"])
    # jets of every chunk of 5 events keep their own event index
    assert set(col.jet_pair_events["baseline"].tolist()) <= set(range(len(events)))
    assert col.jet_pair_events["baseline"].max() >= 10
