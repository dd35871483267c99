"""anomaly generate on the run contract: a sample folder holds one sample identity, one writer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from particlegraph.errors import ConfigError
from particlegraph.outputs import claim, owner, writer_lock
from particlegraph.tasks.anomaly import generate as gen
from particlegraph.tasks.anomaly.samples import read_candidates, samples_config_from_dict

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_rows

CFG = samples_config_from_dict(
    {"pileup": 0.0, "events_per_file": 2, "samples": {"mb": {"process": "minbias"},
                                                      "hard": {"process": "qcd"}}}
)  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Stand in for Pythia + detector: file j of seed s holds rows seeded by (s, j)."""
    made: list[tuple[str, int, int]] = []

    def fake(name: str, spec: Any, cfg: Any, n: int, seed: int, j: int, pool: Any,
             detector: Any = None, on_event: Any = None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        made.append((name, seed, j))
        for _ in range(n):
            on_event()
        return make_rows(n, 1000 * seed + j), n

    monkeypatch.setattr(gen, "generate_file", fake)
    return made


def test_same_settings_resume_and_other_settings_are_refused(
    tmp_path: Path, calls: list[tuple[str, int, int]]
) -> None:
    paths = gen.generate_sample("mb", CFG, tmp_path, events=3, seed=1)
    assert [p.name for p in paths] == ["mb_00000.parquet", "mb_00001.parquet"]
    assert calls == [("mb", 1, 0), ("mb", 1, 1)]
    mark = owner(tmp_path / "mb")
    assert mark is not None and mark["command"] == "anomaly generate"
    assert mark["settings"]["seed"] == 1 and mark["settings"]["events"] == 3
    assert owner(tmp_path) is not None  # --out itself is claimed too
    paths[1].unlink()  # an interrupted run: the same command makes only what is missing
    gen.generate_sample("mb", CFG, tmp_path, events=3, seed=1)
    assert calls[2:] == [("mb", 1, 1)]
    before = paths[0].read_bytes()
    with pytest.raises(ConfigError, match=r"another --seed \(1, now 2\)"):
        gen.generate_sample("mb", CFG, tmp_path, events=3, seed=2)
    with pytest.raises(ConfigError, match=r"another --events \(3, now 4\)"):
        gen.generate_sample("mb", CFG, tmp_path, events=4, seed=1)
    with pytest.raises(ConfigError, match=r"another pileup"):
        other = samples_config_from_dict({**CFG.__dict__, "pileup": 5.0, "samples": {
            "mb": {"process": "minbias"}}})  # fmt: skip
        gen.generate_sample("mb", other, tmp_path, events=3, seed=1)
    assert paths[0].read_bytes() == before and len(calls) == 3  # refused: nothing touched
    # --overwrite replaces the old sample's files (file 1 of the old 2 goes: 1 file now)
    new = gen.generate_sample("mb", CFG, tmp_path, events=2, seed=2, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "mb").glob("*.parquet")) == ["mb_00000.parquet"]
    assert [p.name for p in new] == ["mb_00000.parquet"]
    assert read_candidates(tmp_path / "mb").num_events == 2


def test_every_sample_is_checked_before_any_is_made(
    tmp_path: Path, calls: list[tuple[str, int, int]]
) -> None:
    gen.generate_sample("hard", CFG, tmp_path, events=2, seed=1)
    with pytest.raises(ConfigError, match="another --seed"):
        gen.generate_samples(["mb", "hard"], CFG, tmp_path, events=2, seed=3)
    assert not (tmp_path / "mb").exists() and len(calls) == 1


def test_a_foreign_folder_and_a_second_writer_are_refused(
    tmp_path: Path, calls: list[tuple[str, int, int]]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files particlegraph did not make"):
        gen.generate_sample("mb", CFG, tmp_path, events=2)
    out = tmp_path / "data"
    claim(out, gen.COMMAND)  # as the first writer did before it took the lock
    refused = pytest.raises(ConfigError, match="is being written by `particlegraph anomaly gen")
    with writer_lock(out / "mb", gen.COMMAND, key="shard-1-of-2"), refused:
        gen.generate_sample("mb", CFG, out, events=4, shard=1, num_shards=2)
    assert calls == [] and not list(out.rglob("*.parquet"))
    # another shard of the same sample writes beside it
    with writer_lock(out / "mb", gen.COMMAND, key="shard-1-of-2"):
        gen.generate_sample("mb", CFG, out, events=4, shard=0, num_shards=2)
    assert calls == [("mb", 0, 0)]
