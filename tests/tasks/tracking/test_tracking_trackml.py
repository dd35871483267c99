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


HITS_HEAD = "hit_id,x,y,z,volume_id,layer_id,module_id\n"
TRUTH_HEAD = "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight\n"
PARTS_HEAD = "particle_id,vx,vy,vz,px,py,pz,q,nhits\n"


def _write(tmp_path, hits, truth=None, parts=None, gz=False):
    import gzip

    path = tmp_path / ("event000001000-hits.csv" + (".gz" if gz else ""))
    data = (HITS_HEAD + hits).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    if truth is not None:
        (tmp_path / "event000001000-truth.csv").write_text(TRUTH_HEAD + truth)
        (tmp_path / "event000001000-particles.csv").write_text(PARTS_HEAD + (parts or ""))


@pytest.mark.parametrize(
    ("hits", "match"),
    [
        ("1,30,0,5,8.7,2,1\n", "volume_id.*integers.*8.7"),  # refused, not truncated to 8
        ("1,30,0,5,8,2.5,1\n", "layer_id.*integers"),
        ("1.5,30,0,5,8,2,1\n", "hit_id.*integers"),
        ("1,inf,0,5,8,2,1\n", "'x'.*finite"),
        ("1,30,0,,8,2,1\n", "'z'.*empty"),
        ("1,30,0,5,8,2,1\n1,31,0,5,8,2,1\n", "hit_id values repeat"),
        ("", "no hits"),  # header only
    ],
)
def test_hits_are_validated_on_read(tmp_path, hits, match):
    _write(tmp_path, hits)
    with pytest.raises(DataFileError, match=match):
        read_event(tmp_path, 1000)


def test_integral_float_ids_are_accepted(tmp_path):
    _write(tmp_path, "1,30,0,5,8.0,2,1\n")
    assert read_event(tmp_path, 1000).hits["volume_id"].tolist() == [8]


def test_negative_truth_weight_is_refused(tmp_path):
    truth = "1,1,30,0,5,1,0,0,-0.5\n"
    _write(tmp_path, "1,30,0,5,8,2,1\n", truth, "1,0,0,0,1,0,0,1,1\n")
    with pytest.raises(DataFileError, match="negative or not finite"):
        read_event(tmp_path, 1000)


def test_single_hit_and_all_noise_events_have_a_defined_result(tmp_path):
    from particlegraph.tasks.tracking.baselines import find_tracks
    from particlegraph.tasks.tracking.dataset import to_hit_event
    from particlegraph.tasks.tracking.score import trackml_score

    _write(tmp_path, "1,30,0,5,8,2,1\n", "1,0,30,0,5,0,0,0,0\n", "")
    ev = to_hit_event(read_event(tmp_path, 1000))
    assert ev.num_hits == 1
    tid = find_tracks("helix_dbscan", ev.xyz.numpy(), None, {"eps": 0.01, "n_vertices": 0})
    assert tid.tolist() == [0]
    assert trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), tid) == 0.0
    noise = "".join(f"{i},0,{30 + i},0,{i},0,0,0,0\n" for i in range(1, 6))
    _write(tmp_path, "".join(f"{i},{30 + i},0,{i},8,2,1\n" for i in range(1, 6)), noise, "")
    ev = to_hit_event(read_event(tmp_path, 1000))
    assert ev.num_hits == 5 and ev.particle_id.sum() == 0
    assert trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), np.zeros(5, int)) == 0.0


def test_gzip_bomb_and_giant_file_are_refused_before_parsing(tmp_path, monkeypatch):
    import zlib

    from particlegraph.errors import ResourceLimitError

    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "1")
    # ~20 KB of gzip that expands to 20 MB of digits
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = comp.compress(HITS_HEAD.encode()) + comp.compress(b"1" * (20 << 20)) + comp.flush()
    assert len(body) < 100_000
    (tmp_path / "event000001000-hits.csv.gz").write_bytes(body)
    with pytest.raises(ResourceLimitError, match="expands to more than the limit of 1 MB") as err:
        read_event(tmp_path, 1000)
    assert "\n" not in str(err.value)
    (tmp_path / "event000001000-hits.csv.gz").unlink()
    # a sparse 10 GB plain file: refused by its size, nothing is read
    with open(tmp_path / "event000001000-hits.csv", "wb") as f:
        f.truncate(10 << 30)
    with pytest.raises(ResourceLimitError, match="10240 MB, more than the limit of 1 MB"):
        read_event(tmp_path, 1000)


def test_damaged_gzip_is_a_data_file_error(tmp_path):
    import gzip

    path = tmp_path / "event000001000-hits.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataFileError, match=r"not a readable CSV|truncated"):
        read_event(tmp_path, 1000)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="not a readable CSV"):
        read_event(tmp_path, 1000)
    path.write_bytes(gzip.compress((HITS_HEAD + "1,30,0,5,8,2,1\n" * 50).encode())[:-20])
    with pytest.raises(DataFileError, match="truncated"):
        read_event(tmp_path, 1000)
