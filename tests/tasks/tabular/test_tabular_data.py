"""Toy generator, events.data and Parquet reading/writing, bad files (tabular/data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.tabular.analysis import roc_curve_auto
from particlegraph.tasks.tabular.data import (
    TabularData,
    ToyConfig,
    generate_toy,
    read_parquet_metadata,
    read_table,
    toy_metadata,
    write_table,
)


def test_toy_is_seeded_and_labels_follow_events_data_layout():
    a = generate_toy(ToyConfig(events=500, seed=3))
    b = generate_toy(ToyConfig(events=500, seed=3))
    c = generate_toy(ToyConfig(events=500, seed=4))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (500, 3) and a.x.dtype == np.float32
    assert set(np.unique(a.label)) == {0, 1, 2, 3}
    xt, yt = a.part("test")
    assert len(xt) == int((a.label >= 2).sum()) and set(np.unique(yt)) == {0, 1}


def test_toy_observables_separate_as_designed():
    d = generate_toy(ToyConfig(events=20_000, seed=0))
    y = d.y
    auc = [roc_curve_auto(d.x[:, i], y).auc for i in range(3)]
    auc_abs2 = roc_curve_auto(np.abs(d.x[:, 1]), y)
    assert auc[0] > 0.8  # obs1 separates directly
    assert auc[1] < 0.53 and auc[2] < 0.53  # obs2 plain and obs3: no separation
    assert auc_abs2.auc > 0.75 and auc_abs2.flipped  # small |obs2| is signal-like
    # obs3 has the same distribution for both classes: equal means and widths
    s3, b3 = d.x[y == 1, 2], d.x[y == 0, 2]
    assert abs(s3.mean() - b3.mean()) < 0.05 and abs(s3.std() - b3.std()) < 0.05
    # obs2 centred on zero for both classes with different widths (0.6 vs 1.6)
    s2, b2 = d.x[y == 1, 1], d.x[y == 0, 1]
    assert abs(s2.mean()) < 0.05 and abs(b2.mean()) < 0.05
    assert s2.std() == pytest.approx(0.6, rel=0.05) and b2.std() == pytest.approx(1.6, rel=0.05)


@pytest.mark.parametrize("suffix", [".data", ".parquet"])
def test_round_trip(tmp_path, suffix):
    cfg = ToyConfig(events=300, seed=1)
    d = generate_toy(cfg)
    path = tmp_path / f"events{suffix}"
    write_table(path, d, toy_metadata(cfg))
    back = read_table(path)
    np.testing.assert_array_equal(back.label, d.label)
    if suffix == ".parquet":
        np.testing.assert_array_equal(back.x, d.x)
        assert read_parquet_metadata(path)["seed"] == 1
    else:
        np.testing.assert_allclose(back.x, d.x, rtol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_reads_hand_written_events_data(tmp_path):
    p = tmp_path / "events.data"
    p.write_text("# comment\n1.5 -2 0.25 1\n\n  0 0 0 2\n-1e-1 3 4 3\n")
    d = read_table(p)
    np.testing.assert_allclose(d.x, [[1.5, -2, 0.25], [0, 0, 0], [-0.1, 3, 4]])
    np.testing.assert_array_equal(d.label, [1, 2, 3])
    np.testing.assert_array_equal(d.y, [1, 0, 1])
    np.testing.assert_array_equal(d.is_test, [False, True, True])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2 3 0\n1 2 0\n", r"events.data:2: expected 4 .* found 3"),
        ("1 2 3 0 5\n", r"events.data:1: expected 4 .* found 5"),
        ("1 2 x 0\n", r"events.data:1: non-numeric"),
        ("1 2 3 4\n", r"events.data:1: label '4'"),
        ("1 2 3 -1\n", r"label '-1'"),
        ("1 2 3 0.5\n", r"label '0.5'"),
        ("1 nan 3 0\n", r"non-finite"),
        ("# only a comment\n", r"no events"),
    ],
)
def test_bad_events_data_raises_one_line_error(tmp_path, text, match):
    p = tmp_path / "events.data"
    p.write_text(text)
    with pytest.raises(DataFileError, match=match) as err:
        read_table(p)
    assert "\n" not in str(err.value)


def test_bad_parquet_and_paths(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"obs1": [1.0], "obs2": [2.0], "label": [0]}), p)
    with pytest.raises(DataFileError, match=r"missing column\(s\) \['obs3'\]"):
        read_table(p)
    pq.write_table(pa.table({"obs1": [1.0], "obs2": [2.0], "obs3": [0.0], "label": [7]}), p)
    with pytest.raises(DataFileError, match="label 7"):
        read_table(p)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataFileError, match="cannot read Parquet"):
        read_table(tmp_path / "junk.parquet")
    with pytest.raises(DataFileError, match="does not exist"):
        read_table(tmp_path / "missing.data")
    (tmp_path / "a.csv").write_text("1,2,3,0\n")
    with pytest.raises(DataFileError, match="unknown suffix"):
        read_table(tmp_path / "a.csv")
    with pytest.raises(ConfigError, match="unknown suffix"):
        write_table(tmp_path / "b.csv", TabularData(np.zeros((1, 3)), np.zeros(1, dtype=int)))


def test_toy_config_validates():
    with pytest.raises(ConfigError, match="test_fraction"):
        ToyConfig(test_fraction=1.0)
    with pytest.raises(ConfigError, match="events"):
        ToyConfig(events=1)
