"""Summaries of per-event records: paired differences by hand, merging, identity checks."""

from __future__ import annotations

import math

import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.eval_summary import (
    LEARNED,
    merge_summaries,
    paired_differences,
    summarize,
)

META = {"run": "pretrained:x", "model_sha256": "ab", "data": "/d", "build": {"mode": "cc"},
        "filter_cut": -1.0, "tuned_on": "/t", "tune_events": 1, "classical_events": 3}  # fmt: skip


def _rec(i: int, **scores: float) -> dict:
    return {"event_id": i, "hits": 100 + i,
            "metrics": {m: {"score": s, "fake_rate_pt1": s / 10, "n_tracks_pt1": 7.0}
                        for m, s in scores.items()},
            "graph": {"graph_edge_purity": 0.5} if LEARNED in scores else {},
            "times": {("total_s" if m == LEARNED else f"{m}_s"): 1.0 for m in scores}}  # fmt: skip


def test_paired_difference_by_hand():
    # learned 0.9, 0.8, 0.7; follower 0.85, 0.6 on the first two events, helix on event 2 only
    recs = [_rec(0, layerpair_gnn=0.9, follower=0.85), _rec(1, layerpair_gnn=0.8, follower=0.6),
            _rec(2, layerpair_gnn=0.7, helix=0.2)]  # fmt: skip
    p = paired_differences(recs)
    assert p["follower"]["events"] == 2 and p["follower"]["event_ids"] == [0, 1]
    # differences 0.05 and 0.2: mean 0.125, sample std 0.15 / sqrt(2), sem 0.15 / 2
    assert p["follower"]["score"]["mean"] == pytest.approx(0.125)
    assert p["follower"]["score"]["sem"] == pytest.approx(0.075)
    assert p["follower"]["fake_rate_pt1"]["mean"] == pytest.approx(0.0125)
    assert "n_tracks_pt1" not in p["follower"]  # counts are not differenced
    assert p["helix"]["score"]["mean"] == pytest.approx(0.5) and math.isnan(
        p["helix"]["score"]["sem"]
    )
    s = summarize(recs, META)
    assert s["score_difference_learned_minus"]["follower"] == p["follower"]["score"]
    assert (
        s["methods"][LEARNED]["kind"] == "learned" and s["methods"]["helix"]["kind"] == "classical"
    )
    assert s["methods"]["follower"]["events"] == 2 and s["methods"]["follower"]["score"][
        "mean"
    ] == pytest.approx(0.725)
    assert s["per_event_score"]["follower"] == [0.85, 0.6]
    assert s["hits_per_event"]["mean"] == pytest.approx(101.0) and s["events"] == 3


def test_merge_joins_methods_by_event_and_equals_one_summary():
    learned = [_rec(0, layerpair_gnn=0.9), _rec(1, layerpair_gnn=0.8), _rec(2, layerpair_gnn=0.7)]
    classical = [_rec(1, follower=0.6), _rec(0, follower=0.85)]  # another order, a subset
    both = [_rec(0, layerpair_gnn=0.9, follower=0.85), _rec(1, layerpair_gnn=0.8, follower=0.6),
            _rec(2, layerpair_gnn=0.7)]  # fmt: skip
    a = summarize(learned, {**META, "tuned_on": "no classical methods"})
    b = summarize(classical, META)
    m = merge_summaries(a, b)
    ref = summarize(both, {**META, "planned_event_ids": [], "methods_asked": [], "complete": False})
    assert m == ref
    assert m["paired_difference_learned_minus"]["follower"]["score"]["mean"] == pytest.approx(0.125)


def test_merge_refuses_overlap_other_runs_and_old_files():
    a = summarize([_rec(0, layerpair_gnn=0.9)], META)
    with pytest.raises(ConfigError, match="both files hold"):
        merge_summaries(a, summarize([_rec(0, layerpair_gnn=0.9, follower=0.1)], META))
    with pytest.raises(ConfigError, match="model_sha256 differs"):
        merge_summaries(a, summarize([_rec(0, follower=0.1)], {**META, "model_sha256": "cd"}))
    with pytest.raises(ConfigError, match="data differs"):
        merge_summaries(a, summarize([_rec(0, follower=0.1)], {**META, "data": "/other"}))
    with pytest.raises(ConfigError, match="tune_events differs"):
        merge_summaries(summarize([_rec(0, helix=0.3)], META),
                        summarize([_rec(0, follower=0.1)], {**META, "tune_events": 2}))  # fmt: skip
    bad = _rec(0, follower=0.1)
    bad["hits"] = 5
    with pytest.raises(ConfigError, match="hits"):
        merge_summaries(a, summarize([bad], META))
    old = {k: v for k, v in a.items() if k != "records"}
    with pytest.raises(ConfigError, match="no per-event records"):
        merge_summaries(old, a)


def test_merge_takes_the_building_from_the_learned_side_only():
    cleaned = {
        **META,
        "build": {"mode": "cc", "outlier_mm": 10.0},
        "tuned_on": "no classical methods",
    }
    a = summarize([_rec(0, layerpair_gnn=0.9)], cleaned)
    b = summarize([_rec(0, follower=0.85)], META)  # made before the building changed
    for m in (merge_summaries(a, b), merge_summaries(b, a)):
        assert m["build"] == cleaned["build"] and m["tuned_on"] == META["tuned_on"]
        assert m["paired_difference_learned_minus"]["follower"]["score"]["mean"] == pytest.approx(
            0.05
        )
    with pytest.raises(ConfigError, match="build differs"):  # two learned results must agree
        merge_summaries(a, summarize([_rec(1, layerpair_gnn=0.7)], META))
