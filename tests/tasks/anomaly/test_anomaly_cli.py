"""The ``anomaly`` typer app end to end on tiny synthetic samples, plus bad inputs (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from particlegraph.metrics.roc import roc_auc
from particlegraph.tasks.anomaly.cli import app
from particlegraph.train.loop import History

runner = CliRunner()


@pytest.mark.slow  # about 10 s on a quiet core, 35 s on the shared dev machine
def test_train_resume_evaluate_explain(sample_dir, tmp_path: Path, missing_links) -> None:
    bkg = sample_dir("bkg", n_events=120, seed=0)
    sig = sample_dir("sig", n_events=20, seed=1, pt_scale=20.0)
    runs = []
    for model, seed in (("node-ae", 0), ("node-ae", 1), ("gae-seed", 0)):
        run = tmp_path / f"{model}_{seed}"
        args = ["train", "--data", str(bkg), "--out", str(run), "--model", model, "--seed", str(seed),
                "--epochs", "1", "--max-events", "40", "--set", "model.hidden=8"]  # fmt: skip
        if model == "gae-seed":
            args = args[:-2]  # the seed's architecture is fixed
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        runs.append(run)
    # resume to 2 epochs: continues from the checkpoint instead of starting over
    res = runner.invoke(app, ["train", "--data", str(bkg), "--out", str(runs[0]), "--model", "node-ae",
                              "--epochs", "2", "--max-events", "40", "--set", "model.hidden=8", "--resume"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [int(r["epoch"]) for r in History.load(runs[0]).records] == [1, 2]

    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--background",
        f"bkg={bkg}:100:120",
        "--reference",
        f"ref={bkg}:40:100",
        "--boot",
        "5",
        "--signal",
        f"sig={sig}",
        "--out",
        str(out),
    ]
    for r in runs:
        args += ["--run", str(r)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {(r["model"], r["score"]): r for r in metrics["table"]}
    assert rows[("node-ae", "recon")]["n_seeds"] == 2
    assert {"recon", "recon_ptw", "latent", "combined"} <= {s for m, s in rows if m == "node-ae"}
    # the saved per-event scores reproduce the table's AUC
    t = pq.read_table(out / "scores.parquet").to_pydict()
    assert t["sample"].count("bkg") == 20 and t["sample"].count("sig") == 20
    # the trivial scores and the HT-calibrated twins travel in the same file
    assert {"trivial:ht@0", "trivial:density@0", "node-ae:recon_htcal@0"} <= set(t)
    # (no ht-matched rows: this hard synthetic signal's HT lies beyond every reference event)
    assert {r["protocol"] for r in metrics["table"]} == {"plain", "ht-calibrated"}
    auc0 = roc_auc(t["node-ae:recon@0"], t["label"])
    per_seed = [
        r
        for r in metrics["per_seed"]
        if (r["model"], r["score"], r["seed"]) == ("node-ae", "recon", 0)
    ]
    assert abs(per_seed[0]["auc"] - auc0) < 1e-12
    assert (out / "index.html").is_file() and not missing_links(out / "index.html")
    for run in runs:  # every trained run has its page
        assert (run / "index.html").is_file() and not missing_links(run / "index.html")

    res = runner.invoke(app, ["explain", "--run", str(runs[2]), "--sample", f"sig={sig}",
                              "--out", str(tmp_path / "expl"), "--events", "1", "--class-events", "5"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ex = json.loads((tmp_path / "expl" / "explanations.json").read_text())
    assert len(ex["events"]) == 1 and "h+" in ex["class_averages"]["sig"]


def test_inspect(sample_dir) -> None:
    res = runner.invoke(app, ["inspect", str(sample_dir("bkg", n_events=10))])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output.strip().splitlines()[0])
    assert info["events"] == 10 and info["pf_candidates"]["mean"] > 100


def test_inspect_exercise_pt(tmp_path: Path) -> None:
    import torch
    from torch_geometric.data import Data

    x = torch.tensor([[5.0, 0.0, 0.1, 0.14, 211.0], [2.0, 1.0, -3.0, 0.0, 22.0]])
    path = tmp_path / "ex.pt"
    torch.save([Data(x=x, edge_index=torch.tensor([[0], [1]]), y=torch.tensor([1]))], path)
    res = runner.invoke(app, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output.strip().splitlines()[0])
    assert info["events"] == 1 and info["leading_pt"]["mean"] == 5.0 and info["labels"] == [1]


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    res = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "error:" in res.output and "cannot be read safely" in res.output
    res = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such sample" in res.output
    res = runner.invoke(
        app, ["train", "--data", str(bad), "--out", str(tmp_path / "r"), "--model", "vae"]
    )
    assert res.exit_code == 2 and "unknown model 'vae'" in res.output
    res = runner.invoke(app, ["evaluate", "--run", str(tmp_path), "--background", "nonsense",
                              "--signal", "s=x", "--out", str(tmp_path / "e")])  # fmt: skip
    assert res.exit_code == 2 and "name=path" in res.output


def test_outputs_that_are_not_ours_are_refused(sample_dir, tmp_path: Path) -> None:
    bkg = sample_dir("bkg", n_events=20, seed=0)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    res = runner.invoke(app, ["train", "--data", str(bkg), "--run", str(foreign), "--epochs", "1",
                              "--max-events", "10", "--set", "model.hidden=4"])  # fmt: skip
    assert res.exit_code == 2 and "did not make" in res.output
    assert (foreign / "thesis.tex").read_text() == "mine"
    # evaluate may not write into its input sample folder, whatever --overwrite says
    res = runner.invoke(app, ["evaluate", "--run", str(foreign), "--background", f"b={bkg}",
                              "--signal", f"s={bkg}", "--out", str(bkg / "eval"), "--overwrite"])  # fmt: skip
    assert res.exit_code == 2 and "inside the input" in res.output


def test_demo_refuses_a_folder_made_with_another_size(tmp_path: Path) -> None:
    from particlegraph.outputs import claim

    claim(tmp_path / "demo", "anomaly demo", {"events": 400, "epochs": 3, "seed": 0})
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--events", "200"])
    assert res.exit_code == 2 and "--events" in res.output
