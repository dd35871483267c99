"""The exercise's tracks.pickle: read with a restricted unpickler, converted to TrackML files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.notebook import read_tracks_pickle, sample_to_event
from particlegraph.tasks.tracking.trackml import read_event, write_event


def _samples():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        n = 10
        out.append({
            "hits": {"xyz": rng.normal(size=(n, 3)), "emb": rng.normal(size=(n, 4)), "particle_id": np.repeat([1, 2, 0, 3, 4], 2)},
            "graphs": {"pred": [list(rng.integers(0, n, 3)) for _ in range(n)], "loss": np.array([[0, 1], [2, 3]]), "true": [[1], [0]] + [[]] * (n - 2)},
        })  # fmt: skip
    return out


def test_reads_and_converts(tmp_path):
    path = tmp_path / "tracks.pickle"
    path.write_bytes(pickle.dumps(_samples()))
    samples = read_tracks_pickle(path)
    assert len(samples) == 2 and samples[0].emb.shape == (10, 4)
    pred = samples[0].graphs["pred"]
    assert pred.shape == (2, 30) and np.array_equal(
        pred[1], np.repeat(np.arange(10), 3)
    )  # [neighbour, hit]
    assert samples[0].graphs["true"].tolist() == [[1, 0], [0, 1]]
    assert samples[0].graphs["loss"].shape == (2, 2)
    ev = sample_to_event(samples[0], 1000)
    write_event(tmp_path / "csv", ev)
    back = read_event(tmp_path / "csv", 1000)
    np.testing.assert_array_equal(back.truth["particle_id"], np.repeat([1, 2, 0, 3, 4], 2))
    assert back.truth["weight"].sum() == 0.0  # every particle has < 4 hits


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_code_and_bad_layouts(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([{"hits": _Evil()}]))
    with pytest.raises(DataFileError, match="not a readable"):
        read_tracks_pickle(path)
    path.write_bytes(pickle.dumps({"hits": {}}))
    with pytest.raises(DataFileError, match="list of samples"):
        read_tracks_pickle(path)
    bad = _samples()
    bad[0]["hits"]["xyz"] = np.zeros((10, 2))
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(DataFileError, match=r"\(N, 3\)"):
        read_tracks_pickle(path)
    bad = _samples()
    bad[1]["graphs"]["pred"] = [[99]] * 10
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(DataFileError, match="out of range"):
        read_tracks_pickle(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataFileError):
        read_tracks_pickle(path)
