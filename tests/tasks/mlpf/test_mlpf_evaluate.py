"""The evaluation workflow end to end on a tiny synthetic dataset and an untrained model."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from particlegraph.errors import DataFileError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import evaluate as mlpf_evaluate
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig
from particlegraph.tasks.mlpf.store import write_events


def synthetic_events(rng: np.random.Generator, n_events: int) -> list[MLPFEvent]:
    """Events whose elements sit in two narrow cones, with ygen = element and a noisy ycand."""
    events = []
    for _ in range(n_events):
        n = int(rng.integers(30, 60))
        typ = rng.choice([1, 2], size=n)
        pt = rng.exponential(6.0, n) + 0.5
        which = rng.integers(0, 2, n)
        eta = np.where(which == 0, -1.0, 1.2) + rng.normal(0, 0.1, n)
        ph = np.where(which == 0, 0.5, -2.0) + rng.normal(0, 0.1, n)
        e = pt * np.cosh(eta)
        X = np.zeros((n, 12), dtype=np.float32)
        X[:, 0], X[:, 1], X[:, 2] = typ, pt, eta
        X[:, 3], X[:, 4], X[:, 5] = np.sin(ph), np.cos(ph), e
        trk = typ == 2  # tracks: eta/phi at the calorimeter (a unit sin/cos pair)
        X[trk, 6], X[trk, 7], X[trk, 8] = eta[trk], np.sin(ph[trk]), np.cos(ph[trk])
        cls = np.where(typ == 2, 1, rng.choice([2, 3], size=n))
        cls[rng.random(n) < 0.1] = 0
        ygen = np.stack(
            [cls, (cls == 1).astype(float), pt, eta, np.sin(ph), np.cos(ph), e], 1
        ).astype(np.float32)
        ygen[cls == 0] = 0
        ycand = ygen.copy()
        ycand[:, 2] *= rng.uniform(0.9, 1.1, n)
        events.append(MLPFEvent(X, ygen, ycand))
    return events


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("data")
    events = synthetic_events(rng, 6)
    write_events(root / "a.parquet", events[:3], {"test": True})
    write_events(root / "b.parquet", events[3:], {"test": True})
    return root


def test_evaluate_writes_metrics_plots_and_report(dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=16, k=4, propagate_dim=8, num_blocks=1))
    run = tmp_path / "run"
    metrics = mlpf_evaluate.evaluate(
        run, dataset, max_events=5, device="cpu", batch_size=2, model=model, progress=False
    )
    assert metrics["events"] == 5
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["events"] == 5
    for side in ("mlpf", "baseline"):
        for key in ("efficiency", "fake_rate", "pt_resolution", "energy_resolution"):
            assert set(on_disk[side][key]) == {
                "charged_hadron", "neutral_hadron", "photon", "electron", "muon"
            }  # fmt: skip
        for key in ("jet_pt_resolution", "jet_pt_response", "met_resolution"):
            assert key in on_disk[side]
    # the baseline keeps every class: charged hadron efficiency 1 on these events
    assert on_disk["baseline"]["efficiency"]["charged_hadron"] == pytest.approx(1.0)
    assert on_disk["baseline"]["fake_rate"]["photon"] == pytest.approx(0.0)

    parser = _Images()
    parser.feed((run / "index.html").read_text())
    pngs = sorted(p.name for p in (run / "evaluation").glob("*.png"))
    assert len(parser.images) == len(pngs) >= 8
    for src in parser.images:
        path = run / src
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
    summary = mlpf_evaluate.format_summary(metrics)
    assert "charged_hadron" in summary and "jet pT resolution" in summary


def test_predict_events_splits_batches_per_event(dataset: Path) -> None:
    model = MLPF(MLPFConfig(kind="fcn", hidden=8))
    sizes = [
        len(X)
        for X, ygen, ycand, ypred in mlpf_evaluate.predict_events(
            model, dataset, device="cpu", batch_size=4, progress=False
        )
        if ypred.shape == ygen.shape == ycand.shape
    ]
    from particlegraph.tasks.mlpf.store import iter_events

    assert sizes == [len(ev.X) for ev in iter_events(dataset)]


def test_evaluate_without_checkpoint_raises(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFileError):
        mlpf_evaluate.evaluate(tmp_path / "nothing", dataset, device="cpu", progress=False)


def _fake_run(run: Path) -> MLPF:
    """A run directory as `mlpf train` writes it: config.yaml + checkpoints/best.pt."""
    from particlegraph.config import dump_config
    from particlegraph.tasks.mlpf.train import MLPFRunConfig
    from particlegraph.train.checkpoint import checkpoint_path, save_checkpoint

    torch.manual_seed(1)
    cfg = MLPFRunConfig(model=MLPFConfig(kind="fcn", hidden=8))
    model = MLPF(cfg.model)
    dump_config(cfg, run / "config.yaml")
    save_checkpoint(checkpoint_path(run, "best"), {"model": model.state_dict()})
    return model.eval()


def test_cli_evaluate_loads_checkpoint_and_prints_summary(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    run = tmp_path / "run"
    model = _fake_run(run)
    args = ["mlpf", "evaluate", "--run", str(run), "--data", str(dataset)]
    result = CliRunner().invoke(app, [*args, "--events", "4", "--device", "cpu", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "eff MLPF" in result.output and "MET resolution" in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["events"] == 4
    # the loaded checkpoint predicts what the in-memory model predicts
    direct = pf_compare_with(model, dataset, 4)
    assert metrics["mlpf"]["confusion_matrix"] == direct["mlpf"]["confusion_matrix"]
    assert "<img" not in (run / "index.html").read_text()

    bad = CliRunner().invoke(
        app, ["mlpf", "evaluate", "--run", str(tmp_path / "x"), "--data", str(dataset)]
    )
    assert bad.exit_code == 2
    assert "error:" in bad.output


def pf_compare_with(model: MLPF, data: Path, n: int) -> dict:
    from particlegraph.tasks.mlpf.metrics import compare

    return compare(
        mlpf_evaluate.predict_events(model, data, max_events=n, device="cpu", progress=False)
    )


def test_evaluate_applies_the_runs_calibration_and_reports_errors(
    dataset: Path, tmp_path: Path
) -> None:
    from particlegraph.tasks.mlpf.calibration import Calibration, save_calibration

    torch.manual_seed(2)
    model = MLPF(MLPFConfig(hidden=16, k=4, propagate_dim=8, num_blocks=1))
    plain = mlpf_evaluate.evaluate(tmp_path / "plain", dataset, device="cpu", model=model,
                                   progress=False, figures=False)  # fmt: skip
    run = tmp_path / "calibrated"
    run.mkdir()
    # response 0.5 everywhere for photons: every predicted photon's pT doubles
    save_calibration(Calibration(points={"photon": [[(1.0, 0.5)]] * 3}, events=7), run)
    cal = mlpf_evaluate.evaluate(run, dataset, device="cpu", model=model, progress=False,
                                 figures=False)  # fmt: skip
    assert plain["calibration"] is None and cal["calibration"]["events"] == 7
    for key in ("pt_response", "energy_response"):
        before, after = plain["mlpf"][key]["photon"], cal["mlpf"][key]["photon"]
        assert before is not None  # the untrained model does predict photons here
        assert after == pytest.approx(2.0 * before, rel=1e-5)
    assert cal["mlpf"][key]["charged_hadron"] == plain["mlpf"][key]["charged_hadron"]
    assert cal["baseline"] == plain["baseline"]
    q = cal["uncertainty"]["quantities"]["met_std_gev"]
    assert q["mlpf"]["error"] >= 0 and "comparison" in q


def test_cli_calibrate_writes_calibration_and_guards_foreign_files(
    dataset: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app
    from particlegraph.tasks.mlpf.calibration import load_calibration

    run = tmp_path / "run"
    _fake_run(run)
    args = ["mlpf", "calibrate", "--run", str(run), "--data", str(dataset), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cal = load_calibration(run)
    assert cal is not None and cal.events == 6
    again = CliRunner().invoke(app, [*args, "--events", "3"])  # its own file: replaced
    assert again.exit_code == 0, again.output
    assert load_calibration(run).events == 3  # type: ignore[union-attr]
    (run / "calibration.json").write_text("my notes")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    inside = CliRunner().invoke(app, [*args, "--out", str(dataset)])
    assert inside.exit_code == 2 and "input" in inside.output


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cli_evaluate_out_writes_there_and_leaves_the_run_untouched(
    dataset: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app
    from particlegraph.outputs import claim, owner

    run = tmp_path / "run"
    _fake_run(run)
    claim(run, "mlpf train")
    (run / "history.json").write_text('{"records": [{"epoch": 1, "train_loss": 2.0}]}')
    before = _tree(run)
    out = tmp_path / "eval"
    args = ["mlpf", "evaluate", "--run", str(run), "--data", str(dataset), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--events", "4", "--no-figures", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _tree(run) == before  # nothing written into the run, nothing changed
    assert f"metrics: {out / 'metrics.json'}" in result.output
    assert json.loads((out / "metrics.json").read_text())["events"] == 4
    assert "MLPF evaluation of" in (out / "index.html").read_text()
    assert owner(out)["command"] == "mlpf evaluate"  # type: ignore[index]
    # its own folder is written again; a foreign file in a foreign folder needs --overwrite
    again = CliRunner().invoke(app, [*args, "--events", "2", "--no-figures", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["events"] == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(app, [*args, "--no-figures", "--out", str(foreign)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    forced = CliRunner().invoke(
        app, [*args, "--events", "1", "--no-figures", "--out", str(foreign), "--overwrite"]
    )
    assert forced.exit_code == 0, forced.output
    assert (foreign / "notes.txt").read_text() == "mine"  # written beside, never removed
    assert json.loads((foreign / "metrics.json").read_text())["events"] == 1
    assert _tree(run) == before


def test_evaluate_out_equal_to_the_run_is_the_default(dataset: Path, tmp_path: Path) -> None:
    """``--out RUN`` writes where the default does (no guard refuses the run's own folder)."""
    run = tmp_path / "run"
    _fake_run(run)
    metrics = mlpf_evaluate.evaluate(
        run, dataset, max_events=2, device="cpu", progress=False, figures=False, out_dir=run
    )
    assert json.loads((run / "metrics.json").read_text())["events"] == metrics["events"] == 2
    assert not (run / "particlegraph.json").exists()  # the run is not claimed by evaluate


def test_evaluate_failing_leaves_no_out_folder(dataset: Path, tmp_path: Path) -> None:
    """A new --out folder is removed when reading the events fails half-way (a damaged shard)."""
    run = tmp_path / "run"
    _fake_run(run)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "a.parquet").write_bytes((dataset / "a.parquet").read_bytes())
    (damaged / "b.parquet").write_bytes((dataset / "b.parquet").read_bytes()[:200])
    out = tmp_path / "eval" / "sub"
    with pytest.raises(DataFileError, match=r"b\.parquet"):
        mlpf_evaluate.evaluate(run, damaged, device="cpu", progress=False, out_dir=out)
    assert not (tmp_path / "eval").exists()


def test_evaluate_into_the_run_failing_half_way_puts_the_run_back(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk after metrics.json and some figures: the run is byte for byte as before."""
    import errno

    from particlegraph.tasks.mlpf import evaluate_figures

    run = tmp_path / "run"
    _fake_run(run)
    mlpf_evaluate.evaluate(run, dataset, max_events=2, device="cpu", progress=False)
    before = _tree(run)
    assert "metrics.json" in before and any(k.endswith(".png") for k in before)
    calls = {"n": 0}
    real = evaluate_figures.save_figure

    def full_after_two(fig: object, path: Path, *a: object, **k: object) -> object:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(fig, path, *a, **k)

    monkeypatch.setattr(evaluate_figures, "save_figure", full_after_two)
    with pytest.raises(OSError, match="No space left"):
        mlpf_evaluate.evaluate(run, dataset, max_events=3, device="cpu", progress=False)
    assert calls["n"] == 3  # metrics.json and two figures were replaced before the failure
    assert _tree(run) == before
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # no staging folder left
