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


def _record_ids(process: str, n: int, seed: int = 5) -> list[list[tuple[int, int]]]:
    """Per event, ``(id, id of first mother)`` of every particle in Pythia's full record."""
    from particlegraph.sim.pythia import make_pythia, process_settings

    pythia = make_pythia(process_settings(process), seed)
    out = []
    for _ in range(n):
        assert pythia.next()
        ev = pythia.event
        out.append([(ev[i].id(), ev[ev[i].mother1()].id()) for i in range(ev.size())])
    return out


def _met(y: np.ndarray) -> float:
    keep = y[:, 0] != 0
    phi = np.arctan2(y[keep, 4], y[keep, 5])
    return float(np.hypot((y[keep, 2] * np.cos(phi)).sum(), (y[keep, 2] * np.sin(phi)).sum()))


@pytest.mark.slow
@pytest.mark.parametrize(("process", "cls"), [("zee", 4), ("zmumu", 5)])
def test_z_presets_give_their_leptons(process: str, cls: int) -> None:
    events = generate_file_events(process, 4, 0.0, 3, 0)
    hard = [int(((ev.ygen[:, 0] == cls) & (ev.ygen[:, 2] > 15.0)).sum()) for ev in events]
    # two leptons per Z; one may leave the tracker (|eta| > 2.5) and then has no track
    assert sum(hard) >= 5 and max(hard) >= 2, hard
    other = 5 if cls == 4 else 4
    assert sum(int(((ev.ygen[:, 0] == other) & (ev.ygen[:, 2] > 15.0)).sum()) for ev in events) == 0


@pytest.mark.slow
def test_wlnu_has_missing_pt_and_one_lepton() -> None:
    events = generate_file_events("wlnu", 8, 0.0, 3, 0)
    mets = [_met(ev.ygen) for ev in events]  # the neutrino is invisible: visible sum is unbalanced
    assert np.median(mets) > 15.0, mets
    leptons = [
        int((np.isin(ev.ygen[:, 0], (4, 5)) & (ev.ygen[:, 2] > 15.0)).sum()) for ev in events
    ]
    assert sum(leptons) >= 4, leptons  # W -> e nu or mu nu; some leptons leave the tracker
    # a Z -> ee sample is balanced in comparison
    assert np.median([_met(ev.ygen) for ev in generate_file_events("zee", 4, 0.0, 3, 0)]) < min(
        np.median(mets), 15.0
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("process", "daughter", "mother"),
    [("ttbar", 5, 6), ("zprime_ttbar", 6, 32), ("ztautau", 15, 23)],
)
def test_record_signatures(process: str, daughter: int, mother: int) -> None:
    """ttbar: b quarks from t decays (b-quark jets); Z' -> tt; Z -> tau tau."""
    for record in _record_ids(process, 3):
        pairs = {(abs(i), abs(m)) for i, m in record}
        assert (daughter, mother) in pairs, process


@pytest.mark.slow
def test_qcd_and_ttbar_make_hard_jets() -> None:
    from particlegraph.physics.jets import cluster_jets
    from particlegraph.tasks.mlpf.metrics import particles

    # QCD at pTHatMin = 20 GeV: a parton of 20 GeV makes a particle jet of somewhat less
    # (out-of-cone radiation, neutrinos), so its leading jet is asked to pass half of that.
    for process, min_jets, min_pt in (("qcd", 1, 10.0), ("ttbar", 2, 20.0)):
        events = generate_file_events(process, 3, 0.0, 3, 0)
        jets = cluster_jets([particles(ev.ygen) for ev in events], min_pt=min_pt)
        assert all(len(j) >= min_jets for j in jets), (process, [len(j) for j in jets])
