"""Track cleanup: per-track edge statistics by hand, dissolving weak candidates, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.build import BuildConfig, build_tracks
from particlegraph.tasks.tracking.cleanup import (
    circle_residuals,
    clean_tracks,
    strip_outliers,
    track_quality,
)
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


BAD = [{"min_hits": -1}, {"min_edge_score": 1.5}, {"min_edge_score": -0.1}, {"outlier_mm": -1.0},
       {"max_fit_rms": float("nan")}]  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
def test_bad_cleanup_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="build\\."):
        BuildConfig(0.5, "cc", **bad)


def _arc(centre_x: float, n: int, phi0: float = 0.1) -> np.ndarray:
    """n hits (n, 3) on the circle through the origin centred at (centre_x, 0) [mm]."""
    ang = np.pi - phi0 - np.linspace(0.05, 0.8, n)  # start near the origin, leave it
    x = centre_x + centre_x * np.cos(ang)
    y = centre_x * np.sin(ang)
    return np.stack([x, y, np.linspace(0, 500, n)], 1)


def test_circle_residuals_zero_on_a_helix_and_the_distance_off_it():
    xyz = _arc(2000.0, 8)
    res, rms = circle_residuals(np.zeros(8, dtype=np.int64), xyz)
    assert np.abs(res).max() < 1e-6 and rms[0] < 1e-6
    # a second track: a hit moved 30 mm outward from a circle of radius 500 mm
    other = _arc(500.0, 6)
    c = np.array([500.0, 0.0])
    d = (other[3, :2] - c) / np.linalg.norm(other[3, :2] - c)
    other[3, :2] += 30.0 * d
    both = np.concatenate([xyz, other])
    track = np.r_[np.zeros(8), np.ones(6)].astype(np.int64)
    res, rms = circle_residuals(track, both)
    assert res[:8].max() < 1e-6  # the first track's fit does not see the second
    assert res[8 + 3] == max(res)  # the moved hit is the farthest from its fitted circle
    assert 0.5 < rms[1] < 30.0 / np.sqrt(6) + 1e-9  # the fit leans towards it, its RMS below


def test_strip_outliers_releases_only_the_wrong_hits():
    good = _arc(1500.0, 10)
    # two hits of a neighbour 0.05 rad away in phi (40-60 mm off at these radii)
    c, s = np.cos(0.05), np.sin(0.05)
    wrong = good[[5, 8]] @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    xyz = np.concatenate([good, wrong])
    res, _ = circle_residuals(np.zeros(12, dtype=np.int64), xyz)
    assert res[:10].max() > 5.0  # the first fit leans towards them: one cut at 5 mm ...
    out = strip_outliers(np.zeros(12, dtype=np.int64), xyz, 5.0)  # ... rounds at 20, 10, 5
    assert len(set(out[:10].tolist())) == 1  # the particle's hits stay together
    assert len(set(out[10:].tolist())) == 2 and not set(out[10:]) & set(out[:10])
    _, rms = circle_residuals(out, xyz)
    assert rms[np.unique(out).tolist().index(out[0])] < 1e-6


def test_fit_cuts_need_positions():
    with pytest.raises(ValueError, match="xyz"):
        clean_tracks(TRACK, EDGES, SCORE, outlier_mm=5.0)
    with pytest.raises(ConfigError, match="position"):
        build_tracks(6, EDGES, SCORE, BuildConfig(0.5, "cc", max_fit_rms=3.0))
