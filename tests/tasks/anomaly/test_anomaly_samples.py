"""Samples: PF-candidate selection, Parquet round trip, configs, seeded sharded generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.anomaly.configs import read_config
from particlegraph.tasks.anomaly.generate import generate_sample
from particlegraph.tasks.anomaly.samples import (
    pf_candidates,
    read_candidates,
    read_metadata,
    samples_config_from_dict,
)


def test_pf_candidates_drop_class_zero_and_sort_by_pt() -> None:
    # rows: class, charge, pt, eta, sin phi, cos phi, E
    y = np.array([
        [1, 1, 2.0, 0.1, 0.0, 1.0, 2.0],
        [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3, 0, 7.0, -1.0, 1.0, 0.0, 9.0],
        [5, -1, 4.0, 0.5, 0.0, -1.0, 5.0],
    ], dtype=np.float32)  # fmt: skip
    c = pf_candidates(y, keep=2)
    assert c["pt"].tolist() == [7.0, 4.0]
    assert c["cls"].tolist() == [3, 5]
    assert c["phi"] == pytest.approx([np.pi / 2, np.pi])
    assert c["n_cand"] == 3


def test_packaged_config_defines_the_samples() -> None:
    cfg = samples_config_from_dict(read_config("samples"))
    assert {"zerobias", "jetht"} <= set(cfg.samples)
    assert len(cfg.samples) - 2 >= 3  # at least three BSM-like signals
    assert cfg.spec("jetht").ht_min > 0 and cfg.spec("zerobias").label == 0
    with pytest.raises(ConfigError, match="unknown sample"):
        cfg.spec("nope")
    with pytest.raises(ConfigError, match="unknown process"):
        samples_config_from_dict({"samples": {"x": {"process": "nope"}}})


def test_generation_is_seeded_and_independent_of_sharding(tmp_path: Path) -> None:
    cfg = samples_config_from_dict(
        {"pileup": 0.0, "events_per_file": 2, "samples": {"mb": {"process": "minbias"}}}
    )
    a = generate_sample("mb", cfg, tmp_path / "a", events=4, seed=3)
    b0 = generate_sample("mb", cfg, tmp_path / "b", events=4, seed=3, shard=1, num_shards=2)
    assert not b0[0].exists() and b0[1].exists()  # shard 1 of 2 made file 1 only
    generate_sample("mb", cfg, tmp_path / "b", events=4, seed=3, shard=0, num_shards=2)
    ca, cb = read_candidates(a[0].parent), read_candidates(tmp_path / "b" / "mb")
    assert ca.num_events == cb.num_events == 4
    np.testing.assert_array_equal(ca.pt, cb.pt)
    np.testing.assert_array_equal(ca.offsets, cb.offsets)
    assert (np.diff(ca.offsets) <= cfg.keep).all()
    assert read_metadata(a[0])["seed"] == 3


@pytest.mark.slow
def test_trigger_threshold_is_applied(tmp_path: Path) -> None:
    cfg = samples_config_from_dict(
        {"pileup": 0.0, "events_per_file": 3, "samples": {
            "hard": {"process": "qcd", "pythia_settings": ["PhaseSpace:pTHatMin = 100."], "ht_min": 150.0}}}
    )  # fmt: skip
    c = read_candidates(generate_sample("hard", cfg, tmp_path, events=3, seed=0)[0])
    assert (c.ht >= 150.0).all()


def test_bad_sample_paths(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such sample"):
        read_candidates(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"no \*\.parquet anomaly sample files"):
        read_candidates(tmp_path / "empty")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(DataFileError, match="not a readable"):
        read_candidates(tmp_path / "bad.parquet")
