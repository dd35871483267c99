"""Event generation: TrackML files per event, identical whatever the shard split (Pythia)."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.simulate import CHUNK, generate
from particlegraph.tasks.tracking.trackml import list_events, read_event


@pytest.mark.slow
def test_shards_reproduce_the_single_run(tmp_path):
    n = CHUNK + 2
    generate(tmp_path / "one", events=n, seed=3)
    generate(tmp_path / "two", events=n, seed=3, shard=1, num_shards=2)
    generate(tmp_path / "two", events=n, seed=3, shard=0, num_shards=2)
    assert (
        list_events(tmp_path / "one")
        == list_events(tmp_path / "two")
        == list(range(1000, 1000 + n))
    )
    for name in ("event000001000", f"event{1000 + CHUNK + 1:09d}"):
        for kind in ("hits", "truth", "particles", "cells"):
            a = (tmp_path / "one" / f"{name}-{kind}.csv").read_text()
            assert a == (tmp_path / "two" / f"{name}-{kind}.csv").read_text()
    ev = read_event(tmp_path / "one", 1000)
    assert ev.truth is not None and ev.particles is not None
    assert np.mean(ev.truth["particle_id"] == 0) == pytest.approx(0.15, abs=0.01)
    assert ev.truth["weight"].sum() == pytest.approx(1.0, rel=1e-5)
    # nhits in the particles file counts the particle's hits in the truth file
    pid, counts = np.unique(
        ev.truth["particle_id"][ev.truth["particle_id"] > 0], return_counts=True
    )
    nh = dict(
        zip(ev.particles["particle_id"].tolist(), ev.particles["nhits"].tolist(), strict=True)
    )
    assert all(nh[p] == c for p, c in zip(pid.tolist(), counts.tolist(), strict=True))


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="unknown process"):
        generate(tmp_path, process="nope")
    with pytest.raises(ConfigError, match="shard"):
        generate(tmp_path, shard=2, num_shards=2)


def test_conversion_pairs_are_truth_particles_with_their_hits_and_weigh_zero():
    from particlegraph.sim.particles import concatenate, make_particles
    from particlegraph.sim.silicon import SiliconConfig
    from particlegraph.tasks.tracking.simulate import SECONDARY_RADIUS, build_event

    rng = np.random.default_rng(0)
    n = 300
    phi = rng.uniform(-np.pi, np.pi, n)
    e = rng.uniform(2.0, 10.0, n)
    gam = make_particles(np.full(n, 22), np.zeros(n),
                         np.stack([e * np.cos(phi), e * np.sin(phi), np.zeros(n), e], 1))  # fmt: skip
    pions = make_particles(np.full(20, 211), np.ones(20),
                           np.tile([3.0, 0.0, 1.0, 3.2], (20, 1)))  # fmt: skip
    ev = build_event(concatenate([pions, gam]), SiliconConfig(x_over_x0=0.05), rng, 1)
    parts, truth = ev.particles, ev.truth
    assert parts is not None and truth is not None
    r = np.hypot(parts["vx"], parts["vy"])
    conv = r > SECONDARY_RADIUS
    assert conv.sum() >= 20 and set(parts["q"][conv].tolist()) == {-1, 1}
    # nhits counts the truth hits of every particle, the pairs included
    counts = np.bincount(truth["particle_id"], minlength=parts["particle_id"].max() + 1)
    np.testing.assert_array_equal(parts["nhits"], counts[parts["particle_id"]])
    # a pair's first hit lies beyond its conversion point; its hits weigh 0 (as in the challenge)
    sec_ids = parts["particle_id"][conv]
    on_sec = np.isin(truth["particle_id"], sec_ids)
    assert on_sec.sum() > 0 and np.all(truth["weight"][on_sec] == 0)
    assert truth["weight"].sum() == pytest.approx(1.0, rel=1e-5)
    rmin = dict.fromkeys(sec_ids.tolist(), np.inf)
    for p, x, y in zip(
        truth["particle_id"][on_sec].tolist(), truth["tx"][on_sec], truth["ty"][on_sec], strict=True
    ):
        rmin[p] = min(rmin[p], float(np.hypot(x, y)))
    r_of = dict(zip(parts["particle_id"].tolist(), r.tolist(), strict=True))
    assert all(rmin[p] > r_of[p] for p in rmin if np.isfinite(rmin[p]))


def test_generate_claims_its_folder_and_refuses_other_samples(tmp_path, monkeypatch):
    from particlegraph.sim.silicon import SiliconConfig
    from particlegraph.tasks.tracking import simulate

    made = []

    def fake(out, *args):  # stands in for the Pythia loop: one event file per call
        path = out / f"event{1000 + len(made):09d}-hits.csv"
        path.write_text("hit_id\n")
        made.append(path)
        return [1000]

    monkeypatch.setattr(simulate, "_generate_events", fake)
    out = tmp_path / "sample"
    generate(out, seed=1)
    generate(out, seed=1)  # same settings: resumes, keeps the first event
    assert all(p.exists() for p in made)
    with pytest.raises(ConfigError, match="--seed"):
        generate(out, seed=2)
    with pytest.raises(ConfigError, match="detector settings"):
        generate(out, seed=1, detector=SiliconConfig(noise_fraction=0.1))
    generate(out, seed=2, overwrite=True)  # replaces the old sample's events
    assert [p.exists() for p in made] == [False, False, True]
    # a folder particlegraph did not make is refused; --overwrite keeps its other files
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="did not make"):
        generate(foreign)
    generate(foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
