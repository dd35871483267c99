"""End-to-end generation: determinism, sharding, column contract, resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.errors import ConfigError
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, ParticleClass
from particlegraph.sim.pileup import build_pool, overlay
from particlegraph.sim.pythia import process_settings
from particlegraph.tasks.mlpf.generate import generate, generate_file_events
from particlegraph.tasks.mlpf.store import read_events, read_metadata

pytest.importorskip("pythia8mc")

# Non-diffractive pile-up in the tests: Pythia needs ~10-30 s to set up diffraction.
FAST_PU = process_settings("minbias")
KW = {
    "process": "minbias", "events": 3, "pileup": 2.0, "seed": 11, "events_per_file": 2,
    "pool_size": 4, "pileup_settings": FAST_PU,
}  # fmt: skip


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    one = tmp_path_factory.mktemp("single")
    two = tmp_path_factory.mktemp("sharded")
    single = generate(out=one, progress=False, **KW)
    # reuse the cached pile-up pool (also checks that a cached pool gives the same events)
    (cached,) = one.glob(".minbias_pool_*.npz")
    (two / cached.name).write_bytes(cached.read_bytes())
    sharded = [
        p for i in range(2) for p in generate(out=two, shard=i, num_shards=2, progress=False, **KW)
    ]
    return single, sorted(sharded)


def test_shard_split_gives_identical_arrays(datasets):
    single, sharded = datasets
    assert [p.name for p in single] == ["minbias_pu2_00000.parquet", "minbias_pu2_00001.parquet"]
    assert [p.name for p in sharded] == [p.name for p in single]
    for a, b in zip(single, sharded, strict=True):
        ev_a, ev_b = read_events(a), read_events(b)
        assert len(ev_a) == len(ev_b)
        for x, y in zip(ev_a, ev_b, strict=True):
            for col_a, col_b in zip(x, y, strict=True):
                assert col_a.tobytes() == col_b.tobytes()
    assert [len(read_events(p)) for p in single] == [2, 1]
    meta = read_metadata(single[1])
    assert meta["process"] == "minbias" and meta["file_index"] == 1 and meta["events"] == 1
    assert meta["detector"]["bz"] == 3.8


def test_column_contract(datasets):
    for path in datasets[0]:
        for ev in read_events(path):
            n = ev.X.shape[0]
            assert ev.X.shape == (n, 12) and ev.ygen.shape == (n, 7) and ev.ycand.shape == (n, 7)
            assert ev.X.dtype == ev.ygen.dtype == ev.ycand.dtype == np.float32
            assert set(np.unique(ev.X[:, 0])) <= {ELEM_TOWER, ELEM_TRACK}
            tower, track = ev.X[:, 0] == ELEM_TOWER, ev.X[:, 0] == ELEM_TRACK
            assert tower.sum() > 0 and track.sum() > 0
            for y in (ev.ygen, ev.ycand):
                assert np.all(y[y[:, 0] == 0] == 0.0)
                assert set(np.unique(y[tower, 0])) <= {
                    0,
                    ParticleClass.NEUTRAL_HADRON,
                    ParticleClass.PHOTON,
                }
                assert np.all(y[tower, 1] == 0.0)
                assert set(np.unique(y[track, 0])) <= {1, 4, 5}
            # physical charges: the track's measured charge is the generator particle's charge
            assert np.array_equal(ev.ygen[track, 1], ev.X[track, 9])
            assert np.all(np.abs(ev.X[track, 9]) == 1.0)
            assert np.all(ev.X[tower, 8:] == 0.0)
            # tower energy = ECAL + HCAL
            assert np.allclose(ev.X[tower, 5], ev.X[tower, 6] + ev.X[tower, 7], rtol=1e-5)
            # muon flags match the generator class
            assert np.array_equal(ev.X[track, 10] == 1, ev.ygen[track, 0] == ParticleClass.MUON)


def test_existing_files_are_skipped(datasets):
    single, _ = datasets
    stamp = single[0].stat().st_mtime_ns
    again = generate(out=single[0].parent, progress=False, **KW)
    assert again == single and single[0].stat().st_mtime_ns == stamp


def test_another_seed_gives_other_events():
    a = generate_file_events("minbias", 1, 0.0, 5, 0)
    c = generate_file_events("minbias", 1, 0.0, 6, 0)
    assert a[0].X.shape != c[0].X.shape or a[0].X.tobytes() != c[0].X.tobytes()


def test_pool_overlay_is_seeded_and_rotates_events():
    pool = build_pool(2, seed=5, settings=FAST_PU)
    assert pool.num_events == 2 and pool.offsets[-1] == pool.particles.size
    draw = [overlay(pool, 3.0, np.random.default_rng(9), 53.0) for _ in range(2)]
    assert draw[0][1] == draw[1][1]
    assert np.array_equal(draw[0][0].px, draw[1][0].px)
    parts, n = draw[0]
    if n:
        # phi rotations and z mirroring keep each particle's pT and |pz|
        src = pool.particles
        assert np.all(np.isin(np.round(parts.pt, 9), np.round(src.pt, 9)))
        assert np.all(np.isin(np.round(np.abs(parts.pz), 9), np.round(np.abs(src.pz), 9)))
        assert not np.all(np.isin(np.round(parts.px, 9), np.round(src.px, 9)))
    empty, zero = overlay(pool, 0.0, np.random.default_rng(0), 53.0)
    assert zero == 0 and empty.size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"process": "higgs"}, "unknown process"),
        ({"events": -1}, "positive"),
        ({"pileup": -2.0}, "pileup"),
        ({"shard": 2, "num_shards": 2}, "shard"),
        ({"fmt": "csv"}, "format"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    args = {"process": "ttbar", "events": 1, "pileup": 0.0, "seed": 0, "out": tmp_path} | kwargs
    with pytest.raises(ConfigError, match=message):
        generate(**args)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv",
    [
        ["--process", "higgs", "--events", "2"],
        ["--process", "ttbar", "--events", "-5"],
    ],
)
def test_cli_bad_input_exits_2(tmp_path, argv):
    result = CliRunner().invoke(app, ["mlpf", "generate", *argv, "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert not (tmp_path / "d").exists()


def test_cli_writes_pkl(tmp_path):
    from particlegraph.tasks.mlpf.delphes_pkl import read_pkl

    out = tmp_path / "d"
    argv = ["mlpf", "generate", "--process", "minbias", "--events", "2", "--seed", "1"]
    result = CliRunner().invoke(app, [*argv, "--out", str(out), "--format", "pkl"])
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.pkl.bz2"))
    assert [f.name for f in files] == ["minbias_pu0_00000.pkl.bz2"]
    assert len(read_pkl(files[0])) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "process", ["ttbar", "qcd", "zee", "zmumu", "ztautau", "wlnu", "zprime_ttbar"]
)
def test_every_preset_generates(process):
    (ev,) = generate_file_events(process, 1, 0.0, 3, 0)
    assert ev.X.shape[0] > 10 and ev.X.dtype == np.float32
