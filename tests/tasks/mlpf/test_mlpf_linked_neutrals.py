"""Linked-tower neutrals (tasks/mlpf/linked_neutrals.py): towers, features, the step, its file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_mlpf_recovery import hand_event

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim.elements import Y_ENERGY, Y_ETA, Y_PID, Y_PT
from particlegraph.tasks.mlpf.evaluate import predict_events
from particlegraph.tasks.mlpf.linked_neutrals import (
    FEATURE_NAMES,
    LINKED_NEUTRALS_FILE,
    NUM_FEATURES,
    LinkedNeutrals,
    check_threshold,
    fit_linked_neutrals,
    linked_hcal_towers,
    load_linked_neutrals,
    neutral_rows,
    save_linked_neutrals,
    tower_features,
    training_rows,
)
from particlegraph.tasks.mlpf.recovery import NeutralRecovery


def _prob(n: int) -> np.ndarray:
    p = np.full((n, 6), 0.1, np.float32)
    p[:, 0] = 0.5
    return p


def linear_step(weight: np.ndarray, bias: float, threshold: float = 1.0) -> LinkedNeutrals:
    """One linear layer on unstandardised features: fraction = max(weight . f + bias, 0)."""
    return LinkedNeutrals(
        np.zeros(NUM_FEATURES), np.ones(NUM_FEATURES), ((weight[None, :], np.array([bias])),),
        threshold,
    )  # fmt: skip


def test_only_hcal_towers_with_a_linked_track_are_chosen() -> None:
    x, _ = hand_event()
    rows, link = linked_hcal_towers(x)
    # tower 0 (pion p = 20) and tower 2 (pion p = 10) are HCAL towers with links; tower 1 has no
    # track, tower 3 is an ECAL cell (its electron is linked, but it has no HCAL energy)
    assert rows.tolist() == [0, 2]
    assert math.expm1(link[0, 0]) == pytest.approx(float(x[4, 1]) * math.cosh(float(x[4, 2])),
                                                   rel=1e-5)  # fmt: skip


def test_features_hold_the_hand_values() -> None:
    x, y = hand_event()
    rows, link = linked_hcal_towers(x)
    prob = _prob(len(x))
    f = tower_features(x, y, prob, rows, link)
    assert f.shape == (2, NUM_FEATURES) == (2, len(FEATURE_NAMES))
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    assert f[0, col["log1p_e"]] == pytest.approx(math.log1p(50.0))
    assert f[0, col["log1p_e_em"]] == 0.0
    assert f[1, col["log1p_e_had"]] == pytest.approx(math.log1p(40.0))
    assert f[1, col["abs_eta"]] == pytest.approx(0.8, rel=1e-6)
    assert f[0, col["prob_0"]] == pytest.approx(0.5)
    # MLPF predicted nothing in tower 0 and a 35 GeV neutral hadron in tower 2
    assert f[0, col["log1p_e_pred"]] == 0.0
    assert f[1, col["log1p_e_pred"]] == pytest.approx(math.log1p(35.0))


def test_apply_replaces_linked_towers_by_the_hand_computed_neutral() -> None:
    x, y = hand_event()
    col = FEATURE_NAMES.index("prob_0")
    w = np.zeros(NUM_FEATURES)
    w[col] = 1.0  # fraction = prob_0 = 0.5 on every tower
    out = linear_step(w, 0.0, threshold=22.0).apply(x, y, _prob(len(x)))
    # tower 0: 0.5 x 50 = 25 GeV >= 22: a neutral hadron along the tower
    assert out[0, Y_PID] == 2
    assert out[0, Y_ENERGY] == pytest.approx(25.0)
    assert out[0, Y_PT] == pytest.approx(25.0 / math.cosh(0.12), rel=1e-6)
    assert out[0, Y_ETA] == pytest.approx(0.12)
    assert math.atan2(out[0, 4], out[0, 5]) == pytest.approx(0.2, rel=1e-6)
    # tower 2: 0.5 x 40 = 20 GeV < 22: MLPF's 35 GeV neutral is removed
    assert not out[2].any()
    # every other element is MLPF's own output
    others = [1, 3, 4, 5, 6]
    np.testing.assert_array_equal(out[others], y[others])
    assert not np.shares_memory(out, y)


def test_negative_output_and_threshold_zero_give_no_particle() -> None:
    x, y = hand_event()
    out = linear_step(np.zeros(NUM_FEATURES), -1.0, threshold=0.0).apply(x, y, _prob(len(x)))
    assert not out[[0, 2]].any()  # a fraction below zero is no energy, not a negative one


def test_neutral_rows_keeps_energy_at_the_threshold() -> None:
    x, _ = hand_event()
    rows = neutral_rows(x[[0, 2]], np.array([5.0, 4.999]), 5.0)
    assert rows[0, Y_ENERGY] == 5.0 and rows[0, Y_PID] == 2
    assert not rows[1].any()


def test_standardisation_and_relu_layers_match_a_hand_forward_pass() -> None:
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=NUM_FEATURES), rng.uniform(0.5, 2.0, NUM_FEATURES)
    w1, b1 = rng.normal(size=(3, NUM_FEATURES)), rng.normal(size=3)
    w2, b2 = rng.normal(size=(1, 3)), rng.normal(size=1)
    step = LinkedNeutrals(mean, std, ((w1, b1), (w2, b2)), 1.0)
    f = rng.normal(size=(5, NUM_FEATURES))
    for row, got in zip(f, step.fraction(f), strict=True):
        z = (row - mean) / std
        h = [max(sum(w1[i, j] * z[j] for j in range(NUM_FEATURES)) + b1[i], 0.0) for i in range(3)]
        want = max(sum(w2[0, i] * h[i] for i in range(3)) + b2[0], 0.0)
        assert got == pytest.approx(want, abs=1e-12)


def test_training_target_is_the_true_neutral_energy_fraction() -> None:
    x, y = hand_event()
    ygen = np.zeros_like(y)
    ygen[0] = [2, 0, 30 / math.cosh(0.12), 0.12, math.sin(0.2), math.cos(0.2), 30.0]  # 30 GeV nh
    ygen[2] = [1, 1, 5.0, -0.8, 0, 1, 5.0]  # a charged class on a tower is not a neutral
    f, target, k = training_rows([(x, ygen, ygen, y, _prob(len(x)))])
    assert k == 1 and f.shape == (2, NUM_FEATURES)
    np.testing.assert_allclose(target, [30.0 / 50.0, 0.0], rtol=1e-6)


def _synthetic_events(n: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Events of HCAL towers with one linked pion each; the true neutral energy is
    max(E - P, 0) where E - P > 5 GeV, else none: a rule the fit can learn."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        m = 40
        eta, phi = rng.uniform(-2, 2, m), rng.uniform(-3, 3, m)
        e = rng.uniform(5, 80, m)
        p = e * rng.uniform(0.2, 1.2, m)
        towers = np.column_stack([np.full(m, 1.0), e / np.cosh(eta), eta, np.sin(phi), np.cos(phi),
                                  e, np.zeros(m), e, np.zeros((m, 4))])  # fmt: skip
        tracks = np.column_stack([np.full(m, 2.0), p / np.cosh(eta), eta, np.sin(phi),
                                  np.cos(phi), p, eta, np.sin(phi), np.cos(phi), np.ones(m),
                                  np.zeros(m), np.zeros(m)])  # fmt: skip
        x = np.concatenate([towers, tracks]).astype(np.float32)
        resid = e - p
        ygen = np.zeros((2 * m, 7), np.float32)
        keep = resid > 5
        kin = np.column_stack([eta, np.sin(phi), np.cos(phi)])
        ygen[:m][keep] = np.column_stack(
            [np.full(m, 2.0), np.zeros(m), resid / np.cosh(eta), kin, resid]
        )[keep]
        ygen[m:] = np.column_stack([np.ones(m), np.ones(m), p / np.cosh(eta), kin, p])
        events.append((x, ygen, ygen, np.zeros_like(ygen), _prob(2 * m)))
    return events


def test_fit_learns_a_rule_and_is_deterministic() -> None:
    train, test = _synthetic_events(40, 1), _synthetic_events(10, 2)
    step = fit_linked_neutrals(train, 5.0, epochs=20)
    again = fit_linked_neutrals(train, 5.0, epochs=20)
    for (w, b), (w2, b2) in zip(step.layers, again.layers, strict=True):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    f, target, _ = training_rows(test)
    err_fit = np.mean((step.fraction(f) - target) ** 2)
    err_mean = np.mean((target.mean() - target) ** 2)  # the best constant
    assert err_fit < 0.2 * err_mean
    assert step.events == 40 and step.towers == 40 * 40


def test_fit_refuses_too_few_towers() -> None:
    with pytest.raises(DataFileError, match="too few"):
        fit_linked_neutrals(_synthetic_events(1, 0), 5.0)
    with pytest.raises(DataFileError, match="no validation events"):
        fit_linked_neutrals([], 5.0)


def test_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    step = LinkedNeutrals(
        rng.normal(size=NUM_FEATURES), rng.uniform(0.5, 2, NUM_FEATURES),
        ((rng.normal(size=(4, NUM_FEATURES)), rng.normal(size=4)),
         (rng.normal(size=(1, 4)), rng.normal(size=1))),
        3.5, events=7, towers=99,
    )  # fmt: skip
    assert load_linked_neutrals(tmp_path) is None
    path = save_linked_neutrals(step, tmp_path)
    assert path.name == LINKED_NEUTRALS_FILE
    back = load_linked_neutrals(tmp_path)
    assert back is not None
    assert (back.threshold_gev, back.events, back.towers) == (3.5, 7, 99)
    f = rng.normal(size=(6, NUM_FEATURES))
    np.testing.assert_array_equal(back.fraction(f), step.fraction(f))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.update(features=d["features"][:-1]), "features"),
        (lambda d: d["layers"][0].update(bias=[0.0]), "does not follow"),
        (lambda d: d.update(std=[0.0] * NUM_FEATURES), "positive"),
        (lambda d: d.update(threshold_gev=-1), ">= 0"),
        (lambda d: d.pop("mean"), "mean"),
        (lambda d: d["layers"].pop(), "one output"),
    ],
)
def test_damaged_files_are_refused(tmp_path: Path, change, match: str) -> None:
    step = linear_step(np.ones(NUM_FEATURES), 0.0)
    step = dataclasses.replace(step, layers=((np.ones((2, NUM_FEATURES)), np.zeros(2)),
                                             (np.ones((1, 2)), np.zeros(1))))  # fmt: skip
    d = step.to_dict()
    change(d)
    (tmp_path / LINKED_NEUTRALS_FILE).write_text(json.dumps(d))
    with pytest.raises(DataFileError, match=match):
        load_linked_neutrals(tmp_path)


def test_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / LINKED_NEUTRALS_FILE).write_text("import os")
    with pytest.raises(DataFileError, match="not a linked-neutrals step"):
        load_linked_neutrals(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, True, "4"])
def test_threshold_refusals(value: object) -> None:
    with pytest.raises(ConfigError):
        check_threshold(value)


def test_recovery_and_linked_neutrals_together_are_refused(tmp_path: Path) -> None:
    step = linear_step(np.zeros(NUM_FEATURES), 0.0)
    with pytest.raises(ConfigError, match="use one of them"):
        next(
            predict_events(
                None, tmp_path, recovery=NeutralRecovery(2.0), linked_neutrals=step,
                progress=False,
            )
        )  # fmt: skip


@pytest.fixture(scope="module")
def linked_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three events of 40 HCAL towers, each with one linked pion (``_synthetic_events``)."""
    from particlegraph.sim.elements import MLPFEvent
    from particlegraph.tasks.mlpf.store import write_events

    root = tmp_path_factory.mktemp("linked")
    events = [MLPFEvent(e[0], e[1], e[2]) for e in _synthetic_events(3, 5)]
    write_events(root / "a.parquet", events, {"test": True})
    return root


def test_evaluate_applies_the_runs_step_and_records_it(
    linked_dataset: Path, tmp_path: Path
) -> None:
    import torch

    from particlegraph.tasks.mlpf import evaluate as mlpf_evaluate
    from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=16, k=4, propagate_dim=8, num_blocks=1))
    # fraction 0.5 on every linked HCAL tower, kept from 0 GeV: every tower (all are linked)
    # becomes a neutral hadron with half its energy; the tracks keep MLPF's output
    step = dataclasses.replace(linear_step(np.zeros(NUM_FEATURES), 0.5, 0.0), events=9)
    kw = {"device": "cpu", "progress": False}
    plain = list(mlpf_evaluate.predict_events(model, linked_dataset, **kw))
    stepped = list(mlpf_evaluate.predict_events(model, linked_dataset, linked_neutrals=step, **kw))
    for (x, _, _, p), (_, _, _, q) in zip(plain, stepped, strict=True):
        tower = x[:, 0] == 1
        np.testing.assert_array_equal(q[~tower], p[~tower])
        assert (q[tower, Y_PID] == 2).all()
        np.testing.assert_allclose(q[tower, Y_ENERGY], 0.5 * x[tower, 5], rtol=1e-6)
    run = tmp_path / "run"
    run.mkdir()
    save_linked_neutrals(step, run)
    m = mlpf_evaluate.evaluate(run, linked_dataset, device="cpu", model=model, progress=False,
                               figures=False)  # fmt: skip
    assert m["linked_neutrals"] == {
        "threshold_gev": 0.0, "events": 9, "towers": 0, "mode": "replace", "min_tower_gev": 0.0,
    }  # fmt: skip
    off = mlpf_evaluate.evaluate(run, linked_dataset, device="cpu", model=model,
                                 progress=False, figures=False, use_calibration=False,
                                 out_dir=tmp_path / "plain")  # fmt: skip
    assert off["linked_neutrals"] is None
    assert off["baseline"] == m["baseline"] and off["mlpf"] != m["mlpf"]


def test_cli_calibrate_learns_the_step(linked_dataset: Path, tmp_path: Path) -> None:
    from test_mlpf_evaluate import _fake_run
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    run = tmp_path / "run"
    _fake_run(run)
    args = ["mlpf", "calibrate", "--run", str(run), "--data", str(linked_dataset),
            "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--linked-neutrals", "3"])
    assert result.exit_code == 0, result.output
    step = load_linked_neutrals(run)
    assert step is not None and step.threshold_gev == 3.0
    assert (step.events, step.towers) == (3, 120)
    assert "linked-tower neutrals" in result.output
    bad = CliRunner().invoke(app, [*args, "--linked-neutrals", "-1"])
    assert bad.exit_code == 2 and "error:" in bad.output and ">= 0" in bad.output


def test_fill_mode_keeps_mlpfs_own_particles() -> None:
    x, y = hand_event()
    step = dataclasses.replace(linear_step(np.zeros(NUM_FEATURES), 0.5, 1.0), mode="fill")
    out = step.apply(x, y, _prob(len(x)))
    # tower 0: MLPF predicted nothing, so the step fills in 0.5 x 50 GeV
    assert out[0, Y_PID] == 2 and out[0, Y_ENERGY] == pytest.approx(25.0)
    # tower 2: MLPF's own 35 GeV neutral hadron stays (replace mode would make it 20 GeV)
    np.testing.assert_array_equal(out[2], y[2])
    replaced = dataclasses.replace(step, mode="replace").apply(x, y, _prob(len(x)))
    assert replaced[2, Y_ENERGY] == pytest.approx(20.0)


def test_mode_is_stored_and_checked(tmp_path: Path) -> None:
    step = dataclasses.replace(linear_step(np.zeros(NUM_FEATURES), 0.5), mode="fill")
    save_linked_neutrals(step, tmp_path)
    back = load_linked_neutrals(tmp_path)
    assert back is not None and back.mode == "fill"
    d = step.to_dict()
    d["mode"] = "everything"
    (tmp_path / LINKED_NEUTRALS_FILE).write_text(json.dumps(d))
    with pytest.raises(DataFileError, match="mode"):
        load_linked_neutrals(tmp_path)
    with pytest.raises(ConfigError, match="mode"):
        fit_linked_neutrals(_synthetic_events(2, 0), 1.0, mode="all")


def test_soft_towers_are_left_to_mlpf() -> None:
    x, y = hand_event()
    step = dataclasses.replace(linear_step(np.zeros(NUM_FEATURES), 0.5, 1.0), min_tower_gev=45.0)
    out = step.apply(x, y, _prob(len(x)))
    assert out[0, Y_ENERGY] == pytest.approx(25.0)  # 50 GeV tower: the step acts
    np.testing.assert_array_equal(out[2], y[2])  # 40 GeV tower: MLPF's own 35 GeV neutral
    with pytest.raises(ConfigError, match="min_tower_gev"):
        dataclasses.replace(step, min_tower_gev=-1.0)


def test_cli_calibrate_refuses_a_foreign_step_file_before_writing(
    linked_dataset: Path, tmp_path: Path
) -> None:
    from test_mlpf_evaluate import _fake_run
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    run = tmp_path / "run"
    _fake_run(run)
    (run / LINKED_NEUTRALS_FILE).write_text("my notes")
    args = ["mlpf", "calibrate", "--run", str(run), "--data", str(linked_dataset),
            "--device", "cpu", "--linked-neutrals", "3"]  # fmt: skip
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert not (run / "calibration.json").exists()  # refused before anything was written
    assert (run / LINKED_NEUTRALS_FILE).read_text() == "my notes"
