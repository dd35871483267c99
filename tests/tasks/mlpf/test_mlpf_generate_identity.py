"""Dataset identity: re-running generate with other settings fails naming the setting."""

from __future__ import annotations

import pytest

from particlegraph.errors import ConfigError
from particlegraph.sim.detector import DetectorConfig
from particlegraph.tasks.mlpf.generate import generate, read_settings, setting_difference
from particlegraph.tasks.mlpf.store import read_events

pytest.importorskip("pythia8mc")

KW = {"process": "minbias", "events": 2, "pileup": 0.0, "seed": 3, "events_per_file": 1}


@pytest.mark.parametrize("fmt", ["parquet", "pkl"])
def test_rerun_with_other_settings_fails_naming_the_setting(tmp_path, fmt):
    paths = generate(out=tmp_path, fmt=fmt, progress=False, **KW)
    before = [p.read_bytes() for p in paths]
    assert read_settings(paths[1])["seed"] == 3
    assert read_settings(paths[1])["events_per_file"] == 1
    # same settings: reused, untouched
    assert generate(out=tmp_path, fmt=fmt, progress=False, **KW) == paths
    assert [p.read_bytes() for p in paths] == before
    for change, option in (
        ({"seed": 4}, "--seed"),
        ({"events_per_file": 2}, "--events-per-file"),
        ({"detector": DetectorConfig(separate_ecal_towers=False)}, "--merged-towers"),
    ):
        with pytest.raises(ConfigError, match=option):
            generate(out=tmp_path, fmt=fmt, progress=False, **{**KW, **change})
    assert [p.read_bytes() for p in paths] == before  # nothing replaced by the failures


def test_overwrite_replaces_data_and_removes_files_past_the_end(tmp_path):
    old = generate(out=tmp_path, progress=False, **KW)
    new = generate(out=tmp_path, progress=False, overwrite=True, **{**KW, "events_per_file": 2})
    assert [p.name for p in new] == [old[0].name]
    assert not old[1].exists()  # the second file of the old dataset is gone
    assert len(read_events(new[0])) == 2
    assert read_settings(new[0])["events_per_file"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and "tmp" in p.name]


def test_fewer_events_than_stored_files_is_refused(tmp_path):
    generate(out=tmp_path, progress=False, **KW)
    with pytest.raises(ConfigError, match="beyond the 1 file"):
        generate(out=tmp_path, progress=False, **{**KW, "events": 1})


def test_setting_difference_names_nested_keys():
    stored = {"seed": 1, "detector": {"bz": 3.8}, "version": "0"}
    assert setting_difference(stored, {"seed": 1, "detector": {"bz": 3.8}, "version": "1"}) is None
    assert "detector.bz" in setting_difference(stored, {"seed": 1, "detector": {"bz": 2.0}})
    assert "no generation settings" in setting_difference({}, {"seed": 1})
