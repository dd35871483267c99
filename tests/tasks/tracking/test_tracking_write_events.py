"""TrackML writers: an event's four files all or none, a converted sample all or none."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tracking_events import write_events as simulate_events

from particlegraph.tasks.tracking import trackml
from particlegraph.tasks.tracking.trackml import (
    TrackMLEvent,
    list_events,
    read_event,
    write_event,
    write_events,
)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[TrackMLEvent]:
    folder = tmp_path_factory.mktemp("events")
    simulate_events(folder, 3, 10)
    return [read_event(folder, i) for i in list_events(folder)]


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, kind: str, after: int = 0) -> None:
    """The ``after+1``-th write of a ``kind`` table fails as a full disk does."""
    real = trackml.format_table
    seen = []

    def format_table(table: dict[str, np.ndarray], k: str) -> str:
        if k == kind:
            seen.append(k)
            if len(seen) > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, k)

    monkeypatch.setattr(trackml, "format_table", format_table)


def test_an_event_is_written_whole_or_not_at_all(
    tmp_path: Path, events: list[TrackMLEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk_at(monkeypatch, "particles")  # the last of the four files
    with pytest.raises(OSError) as info:
        write_event(tmp_path, events[0])
    assert info.value.filename == str(tmp_path / "event000001000-particles.csv")
    assert list(tmp_path.iterdir()) == []  # no hits, cells or truth without their particles
    monkeypatch.undo()
    paths = write_event(tmp_path, events[0])
    assert [p.name.split("-")[1] for p in paths] == [
        "hits.csv", "cells.csv", "truth.csv", "particles.csv",
    ]  # fmt: skip
    # the particles file is renamed into place last: its time stamp is the newest
    assert max(paths, key=lambda p: p.stat().st_mtime_ns).name.endswith("particles.csv")


def test_a_converted_sample_is_written_whole_or_not_at_all(
    tmp_path: Path, events: list[TrackMLEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk_at(monkeypatch, "truth", after=2)  # the third event fails
    out = tmp_path / "new"
    with pytest.raises(OSError) as info:
        write_events(out, iter(events))
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(out / "event000001002-truth.csv")  # not the staging copy
    assert not out.exists()  # this call made it: it goes
    kept = tmp_path / "old"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(OSError):
        write_events(kept, iter(events))
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_write_events_round_trip(tmp_path: Path, events: list[TrackMLEvent]) -> None:
    def stream() -> Iterator[TrackMLEvent]:
        yield from events

    assert write_events(tmp_path / "out", stream()) == [1000, 1001, 1002]
    back = read_event(tmp_path / "out", 1001)
    np.testing.assert_array_equal(back.hits["x"], events[1].hits["x"])
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []
