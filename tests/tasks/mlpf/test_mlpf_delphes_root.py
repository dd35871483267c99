"""Delphes ROOT reader on a tiny file written with uproot in the Delphes branch layout."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from delphes_files import PARTICLES, TOWERS, TRACKS, write_delphes

from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf import delphes_root
from particlegraph.tasks.mlpf.delphes_root import RootReadOptions, build_event, iter_root

M_PI = 0.13957


def expected_event0() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.zeros((5, 12), np.float32)
    for i in range(2):
        phi, phio = TRACKS["Phi"][i], TRACKS["PhiOuter"][i]
        X[i] = [2, TRACKS["PT"][i], TRACKS["Eta"][i], np.sin(phi), np.cos(phi), TRACKS["P"][i],
                TRACKS["EtaOuter"][i], np.sin(phio), np.cos(phio), TRACKS["Charge"][i], 0, i == 1]  # fmt: skip
    for j in range(3):
        phi = TOWERS["Phi"][j]
        X[2 + j, :8] = [1, TOWERS["ET"][j], TOWERS["Eta"][j], np.sin(phi), np.cos(phi),
                        TOWERS["E"][j], TOWERS["Eem"][j], TOWERS["Ehad"][j]]  # fmt: skip
    ygen = np.zeros((5, 7), np.float32)
    ygen[0] = [1, 1, 10.0, 0.5, np.sin(0.1), np.cos(0.1), 11.3]
    ygen[1] = [4, -1, 20.0, -1.0, np.sin(-2.0), np.cos(-2.0), 30.9]
    # tower 0: photon (5 GeV) + neutral hadron (3.1 GeV) -> photon class, summed momentum
    px = 5 * np.cos(1.0) + 3 * np.cos(1.02)
    py = 5 * np.sin(1.0) + 3 * np.sin(1.02)
    pz = 5 * np.sinh(0.0) + 3 * np.sinh(0.02)
    pt = np.hypot(px, py)
    ygen[2] = [3, 0, pt, np.arcsinh(pz / pt), py / pt, px / pt, 8.1]
    # tower 1: a charged hadron beyond the tracker is a neutral hadron for PF
    ygen[3] = [2, 0, 2.0, 3.0, np.sin(3.1), np.cos(3.1), 20.1]
    ycand = np.zeros((5, 7), np.float32)
    for i, (cls, m) in enumerate(((1, M_PI), (4, 0.000511))):
        pt, eta, phi = TRACKS["PT"][i], TRACKS["Eta"][i], TRACKS["Phi"][i]
        e = np.hypot(pt * np.cosh(eta), m)
        ycand[i] = [cls, TRACKS["Charge"][i], pt, eta, np.sin(phi), np.cos(phi), e]
    ycand[2] = [3, 0, 4.9, 0.0, np.sin(1.0), np.cos(1.0), 4.9]  # photon beats the 2 GeV n. hadron
    ycand[3] = [2, 0, 0.5, 3.0, np.sin(-3.1), np.cos(-3.1), 5.0]
    return X, ygen, ycand


@pytest.mark.parametrize("refs", [True, False], ids=["references", "geometric"])
def test_reader_matches_hand_computed_event(tmp_path: Path, refs: bool) -> None:
    events = list(iter_root(write_delphes(tmp_path / "delphes.root", refs=refs)))
    assert len(events) == 2
    X, ygen, ycand = expected_event0()
    np.testing.assert_allclose(events[0].X, X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(events[0].ygen, ygen, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(events[0].ycand, ycand, rtol=1e-5, atol=1e-5)
    assert events[1].X.shape == (0, 12) and events[1].ygen.shape == (0, 7)


def test_without_eflow_ycand_is_zero(tmp_path: Path) -> None:
    ev = next(iter_root(write_delphes(tmp_path / "d.root", eflow=False)))
    assert ev.X.shape == (5, 12) and not ev.ycand.any()


def test_tower_particle_references_win_over_geometry() -> None:
    """With Tower.Particles, a particle goes where the file says, not to the nearest tower."""
    ev: dict[str, object] = {f"Particle.{k}": np.array([p[i] for p in PARTICLES]) for i, k in enumerate(["PID", "Status", "Charge", "PT", "Eta", "Phi", "E"])}  # fmt: skip
    ev |= {f"Track.{k}": np.array(v) for k, v in TRACKS.items()}
    ev |= {f"Tower.{k}": np.array(v) for k, v in TOWERS.items()}
    # tower 0 lists particle UID 2 (photon), tower 2 lists UID 3 (n. hadron) and the track's UID 1
    ev["Tower.Particles"] = (np.array([1, 0, 2]), np.array([2, 3, 1]))
    out = build_event(ev, RootReadOptions(neutral_min_energy=3.0))
    np.testing.assert_allclose(
        out.ygen[2], [3, 0, 5.0, 0.0, np.sin(1.0), np.cos(1.0), 5.0], atol=1e-6
    )
    assert not out.ygen[3].any()  # tower 1 lists nobody
    np.testing.assert_allclose(
        out.ygen[4, [0, 2, 6]], [2, 3.0, 3.1], rtol=1e-6
    )  # track's particle excluded
    out9 = build_event(ev, RootReadOptions(neutral_min_energy=9.0))
    assert not out9.ygen[4].any()  # a 3.1 GeV neutral hadron is below the 9 GeV threshold


def test_bad_root_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(
        DataFileError, match=r"no_towers\.root: not a Delphes tree .*missing Tower\.ET"
    ):
        list(iter_root(write_delphes(tmp_path / "no_towers.root", towers=False)))
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"root" * 100)
    with pytest.raises(DataFileError, match=r"junk\.root: not a readable ROOT file"):
        delphes_root.check_branches(junk)
    with pytest.raises(DataFileError, match=r"no TTree 'Events' \(found: Delphes; see --tree\)"):
        list(iter_root(write_delphes(tmp_path / "d.root"), RootReadOptions(tree="Events")))
    with pytest.raises(DataFileError, match="no such file"):
        list(iter_root(tmp_path / "missing.root"))


def test_cli_converts_root_to_parquet_and_pkl(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app
    from particlegraph.tasks.mlpf import delphes_pkl as delphes
    from particlegraph.tasks.mlpf import store

    src = write_delphes(tmp_path / "sample.root")
    expected = list(iter_root(src))
    runner = CliRunner()
    ok = runner.invoke(app, ["mlpf", "convert", str(src), str(tmp_path / "pq")])
    assert ok.exit_code == 0, ok.output
    got = store.read_events(tmp_path / "pq" / "sample.parquet")
    ok = runner.invoke(app, ["mlpf", "convert", str(src), str(tmp_path / "one.pkl.bz2")])
    assert ok.exit_code == 0, ok.output
    for events in (got, delphes.read_pkl(tmp_path / "one.pkl.bz2")):
        for a, b in zip(expected, events, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
    bad = write_delphes(tmp_path / "bad" / "no_towers.root", towers=False)
    result = runner.invoke(app, ["mlpf", "convert", str(bad), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "missing Tower.ET" in result.stderr
    assert not (tmp_path / "out").exists()


def test_reference_ids_from_uproot_tref_records() -> None:
    """uproot reads TRef as records with a ``ref`` field and TRefArray with ``refs``."""
    from particlegraph.tasks.mlpf.delphes_root import _flatten, _reference_ids

    tref = ak.Array([[{"@pidf": 0, "ref": 3, "@other1": 0, "@other2": 0}], []])
    assert _reference_ids(tref, depth=1).tolist() == [[3], []]
    trefarray = ak.Array(
        [[{"fName": "", "fSize": 2, "refs": [4, 5]}, {"fName": "", "fSize": 0, "refs": []}]]
    )
    ids = _reference_ids(trefarray, depth=2)
    assert ids.tolist() == [[[4, 5], []]]
    offsets, counts2, offsets2, flat = _flatten(ids, depth=2)
    assert offsets.tolist() == [0, 2] and counts2.tolist() == [2, 0] and flat.tolist() == [4, 5]
    assert offsets2.tolist() == [0, 2, 2]
    assert _reference_ids(ak.Array([[{"x": 1}]]), depth=1) is None  # unknown layout: fall back
