"""tracks.pickle reader: bombs and code payloads are refused before they cost anything."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from particlegraph.errors import DataFileError, ResourceLimitError
from particlegraph.tasks.tracking.notebook import read_tracks_pickle


def test_shared_nested_lists_are_refused(tmp_path: Path) -> None:
    nested: list = [0.0, 0.0, 0.0]
    for _ in range(12):
        nested = [nested] * 10  # 3e12 coordinates from a few hundred bytes
    path = tmp_path / "tracks.pickle"
    path.write_bytes(pickle.dumps([{"hits": {"xyz": nested, "particle_id": [0]}}], protocol=4))
    assert path.stat().st_size < 400
    with pytest.raises(ResourceLimitError, match="shared references expand to more than"):
        read_tracks_pickle(path)


def test_many_references_to_one_sample_count_each_time(tmp_path: Path, monkeypatch) -> None:
    sample = {"hits": {"xyz": np.zeros((100, 3)), "particle_id": np.zeros(100)}}
    path = tmp_path / "tracks.pickle"
    path.write_bytes(pickle.dumps([sample] * 1000, protocol=4))  # 400,000 values, one copy
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "1")  # 262,144 values
    with pytest.raises(ResourceLimitError):
        read_tracks_pickle(path)
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "2")
    assert len(read_tracks_pickle(path)) == 1000


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.canary),))


def test_a_code_payload_never_runs(tmp_path: Path) -> None:
    path = tmp_path / "tracks.pickle"
    path.write_bytes(pickle.dumps([{"hits": _Payload(tmp_path / "canary")}]))
    with pytest.raises(DataFileError, match=r"not a readable tracks\.pickle \(refusing to load"):
        read_tracks_pickle(path)
    assert not (tmp_path / "canary").exists()
