"""Track cleanup: per-track edge statistics by hand, dissolving weak candidates, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.build import BuildConfig, build_tracks
from particlegraph.tasks.tracking.cleanup import clean_tracks, track_quality
from particlegraph.tasks.tracking.score import track_metrics, trackml_score

# tracks: 0 = hits 0-2, 1 = hits 3-4, 2 = hit 5; edge 2 -> 3 crosses tracks 0 and 1
TRACK = np.array([0, 0, 0, 1, 1, 2])
EDGES = np.array([[0, 1, 0, 3, 2], [1, 2, 2, 4, 3]])
SCORE = np.array([0.9, 0.5, 0.7, 0.2, 0.99])


def test_track_quality_by_hand():
    q = track_quality(TRACK, EDGES, SCORE)
    assert q["track"].tolist() == [0, 1, 2]
    assert q["nhits"].tolist() == [3, 2, 1]
    assert q["n_edges"].tolist() == [3, 1, 0]  # the crossing edge belongs to neither
    assert q["mean_score"][:2] == pytest.approx([0.7, 0.2])
    assert q["min_score"][:2] == pytest.approx([0.5, 0.2])
    assert np.isnan(q["mean_score"][2]) and np.isnan(q["min_score"][2])
    assert q["unlinked_share"].tolist() == [0.0, 0.0, 1.0]


def _parts(track):
    return sorted(sorted(np.flatnonzero(track == t).tolist()) for t in np.unique(track))


def test_min_hits_dissolves_short_tracks_into_single_hits():
    out = clean_tracks(TRACK, EDGES, SCORE, min_hits=3)
    assert _parts(out) == [[0, 1, 2], [3], [4], [5]]


def test_min_edge_score_spares_tracks_without_edges():
    out = clean_tracks(TRACK, EDGES, SCORE, min_edge_score=0.5)
    assert _parts(out) == [[0, 1, 2], [3], [4], [5]]  # track 1 (mean 0.2) dissolved
    out = clean_tracks(TRACK, EDGES, SCORE, min_edge_score=0.71)
    assert _parts(out) == [[0], [1], [2], [3], [4], [5]]  # track 0 (mean 0.7) too
    assert clean_tracks(TRACK, EDGES, SCORE) is TRACK  # both cuts off: untouched


def test_dissolving_a_fake_lowers_the_fake_rate_and_keeps_the_score():
    # particle 1: hits 0-4 (a good track, high scores); a fake track of hits 5-7 from three
    # particles joined by doubtful edges; the weights sum to 1 over particle 1
    pid = np.array([1, 1, 1, 1, 1, 2, 3, 4])
    weight = np.array([0.2] * 5 + [0.0] * 3)
    edges = np.array([[0, 1, 2, 3, 5, 6], [1, 2, 3, 4, 6, 7]])
    score = np.array([0.95, 0.9, 0.97, 0.92, 0.6, 0.55])
    base = BuildConfig(0.5, "cc")
    before = build_tracks(8, edges, score, base)
    after = build_tracks(8, edges, score, BuildConfig(0.5, "cc", min_edge_score=0.8))
    ppt = {1: 2.0, 2: 0.6, 3: 0.7, 4: 0.8}
    assert track_metrics(pid, before, ppt)["fake_rate"] == pytest.approx(0.5)
    assert track_metrics(pid, after, ppt)["fake_rate"] == 0.0
    assert trackml_score(pid, weight, after) == trackml_score(pid, weight, before) == 1.0
    assert np.array_equal(after, clean_tracks(before, edges, score, min_edge_score=0.8))


def test_old_build_settings_load_with_the_cleanup_off():
    old = json.loads('{"threshold": 0.7, "mode": "splitext"}')  # run.json before the cleanup
    b = BuildConfig(**old)
    assert (b.min_hits, b.min_edge_score) == (0, 0.0)


@pytest.mark.parametrize(
    "bad", [{"min_hits": -1}, {"min_edge_score": 1.5}, {"min_edge_score": -0.1}]
)
def test_bad_cleanup_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="min_hits"):
        BuildConfig(0.5, "cc", **bad)
