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
    assert np.mean(ev.truth["particle_id"] == 0) == pytest.approx(0.1, abs=0.01)
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
