"""TrackML CSV layout: exact round trip, and one clear error per kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.sim.particles import make_particles
from particlegraph.sim.silicon import SiliconConfig
from particlegraph.tasks.tracking.simulate import build_event
from particlegraph.tasks.tracking.trackml import (
    format_table,
    list_events,
    read_event,
    read_submission,
    write_event,
    write_submission,
)


def _event(seed=0, n=30, event_id=1000):
    rng = np.random.default_rng(seed)
    pt = rng.uniform(0.5, 5.0, n)
    eta = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], 1)
    parts = make_particles(np.full(n, 211), rng.choice([-1.0, 1.0], n), p4, np.zeros((n, 3)))
    return build_event(parts, SiliconConfig(), rng, event_id)


def test_round_trip_is_exact(tmp_path):
    ev = _event()
    write_event(tmp_path, ev)
    back = read_event(tmp_path, 1000)
    for kind in ("hits", "cells", "truth", "particles"):
        first = format_table(getattr(ev, kind), kind)
        assert format_table(getattr(back, kind), kind) == first  # text -> arrays -> same text
        assert (tmp_path / f"event000001000-{kind}.csv").read_text() == first
    np.testing.assert_array_equal(back.hits["x"], ev.hits["x"].astype(np.float32))
    assert back.truth["weight"].sum() == pytest.approx(1.0, rel=1e-5)
    assert list_events(tmp_path) == [1000]
    count, _value = back.cell_features()
    assert count.sum() == back.cells["hit_id"].size and np.all(count >= 1)


def test_header_and_columns_follow_the_layout(tmp_path):
    write_event(tmp_path, _event())
    heads = {
        k: (tmp_path / f"event000001000-{k}.csv").read_text().splitlines()[0]
        for k in ("hits", "cells", "truth", "particles")
    }
    assert heads == {
        "hits": "hit_id,x,y,z,volume_id,layer_id,module_id",
        "cells": "hit_id,ch0,ch1,value",
        "truth": "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight",
        "particles": "particle_id,vx,vy,vz,px,py,pz,q,nhits",
    }


def test_reads_shuffled_truth_and_gzip(tmp_path):
    import gzip

    ev = _event()
    write_event(tmp_path, ev)
    truth = (tmp_path / "event000001000-truth.csv").read_text().splitlines()
    rows = truth[1:]
    np.random.default_rng(0).shuffle(rows)
    (tmp_path / "event000001000-truth.csv").write_text("\n".join([truth[0], *rows]) + "\n")
    hits = tmp_path / "event000001000-hits.csv"
    (tmp_path / "event000001000-hits.csv.gz").write_bytes(gzip.compress(hits.read_bytes()))
    hits.unlink()
    back = read_event(tmp_path, 1000)
    np.testing.assert_array_equal(back.truth["hit_id"], back.hits["hit_id"])  # realigned
    np.testing.assert_array_equal(back.truth["particle_id"], ev.truth["particle_id"])


def test_submission_round_trip(tmp_path):
    hit_id = np.array([3, 1, 2])
    write_submission(tmp_path / "s.csv", hit_id, np.array([7, 8, 9]))
    np.testing.assert_array_equal(
        read_submission(tmp_path / "s.csv", np.array([1, 2, 3])), [8, 9, 7]
    )
    with pytest.raises(DataFileError, match="one row per hit"):
        read_submission(tmp_path / "s.csv", np.array([1, 2, 3, 4]))


@pytest.mark.parametrize(
    ("kind", "text", "match"),
    [
        ("hits", "hit_id,x,y,z,volume_id,layer_id\n1,0,0,0,8,2\n", "module_id"),
        ("hits", "hit_id,x,y,z,volume_id,layer_id,module_id\n1,a,0,0,8,2,1\n", "numeric"),
        ("truth", "hit_id,particle_id\n1,2\n", "column"),
        ("hits", "\x00\x01garbage", "column|CSV"),
    ],
)
def test_bad_files_raise_data_file_error(tmp_path, kind, text, match):
    write_event(tmp_path, _event())
    (tmp_path / f"event000001000-{kind}.csv").write_text(text)
    with pytest.raises(DataFileError, match=match):
        read_event(tmp_path, 1000)


def test_missing_folder_and_foreign_truth(tmp_path):
    with pytest.raises(DataFileError, match="not a directory"):
        list_events(tmp_path / "nope")
    with pytest.raises(DataFileError, match="no event"):
        list_events(tmp_path)
    write_event(tmp_path, _event(event_id=1000))
    other = _event(seed=5, n=60, event_id=1000)
    from particlegraph.tasks.tracking.trackml import write_table

    write_table(tmp_path / "event000001000-truth.csv", other.truth, "truth")
    with pytest.raises(DataFileError, match=r"hit ids|rows"):
        read_event(tmp_path, 1000)


def test_challenge_truth_weights_are_kept_and_score_on_their_scale(tmp_path):
    from particlegraph.tasks.tracking.dataset import load_events
    from particlegraph.tasks.tracking.score import trackml_score

    ev = _event()
    pid = ev.truth["particle_id"]
    # as in the challenge's files: a secondary (here particle 1) weighs 0, the rest sum to 0.5
    w = np.where(pid == 1, 0.0, ev.truth["weight"]).astype(np.float32)
    ev.truth["weight"] = w * np.float32(0.5 / w.sum())
    write_event(tmp_path, ev)
    (back,) = load_events(tmp_path)
    np.testing.assert_allclose(back.weight.numpy(), ev.truth["weight"], rtol=1e-6)
    assert back.weight.numpy()[back.particle_id.numpy() == 1].sum() == 0.0
    # losing the zero-weight secondary costs nothing; the perfect answer scores 1, not 0.5
    p = back.particle_id.numpy()
    assert trackml_score(p, back.weight.numpy(), p) == pytest.approx(1.0)
    assert trackml_score(p, back.weight.numpy(), np.where(p == 1, -np.arange(p.size), p)) == (
        pytest.approx(1.0)
    )
