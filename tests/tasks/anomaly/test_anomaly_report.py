"""Anomaly outputs: the per-event score table, the evaluation's files and page, the run page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from particlegraph.tasks.anomaly import evaluate as E
from particlegraph.tasks.anomaly import report as R


def _evaluation(rep: int = 1) -> E.Evaluation:
    """Background of 6 events, signal of 3 (each ``rep`` times), one learned and one trivial
    score (values by hand)."""
    bkg_ht, sig_ht = np.array([300.0, 350, 400, 450, 500, 550]), np.array([600.0, 650, 700])
    events = {
        "bkg": {"event": np.arange(10, 10 + 6 * rep), "ht": np.tile(bkg_ht, rep),
                "lead_jet_mass": np.linspace(10, 40, 6 * rep)},
        "sig": {"event": np.arange(3 * rep), "ht": np.tile(sig_ht, rep),
                "lead_jet_mass": np.full(3 * rep, 80.0)},
    }  # fmt: skip
    scores = {
        "bkg": {"m:recon@0": np.tile([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], rep),
                "trivial:ht@0": events["bkg"]["ht"]},
        "sig": {"m:recon@0": np.tile([0.35, 0.9, 1.0], rep), "trivial:ht@0": events["sig"]["ht"]},
    }  # fmt: skip
    ev = E.Evaluation("bkg", ["sig"], events, scores)
    E.compute_metrics(ev, n_boot=5)
    return ev


def test_score_columns_hold_every_event_and_the_trivial_scores() -> None:
    cols = R.score_columns(_evaluation())
    assert cols["sample"] == ["bkg"] * 6 + ["sig"] * 3
    assert cols["label"] == [0] * 6 + [1] * 3
    assert cols["event"] == [10, 11, 12, 13, 14, 15, 0, 1, 2]
    assert cols["lead_jet_mass"][6:] == [80.0] * 3
    assert cols["trivial:ht@0"] == cols["ht"]
    assert cols["m:recon@0"][6:] == [0.35, 0.9, 1.0]


def test_summary_rows_carry_auc_and_gain() -> None:
    ev = _evaluation()
    rows = {(r[0], r[1], r[2]): r for r in R.summary_rows(ev)}
    assert all(len(r) == len(R.SUMMARY_HEADER) for r in rows.values())
    # AUC by hand: of 18 (signal, background) pairs, the 0.35 signal beats 3 background events
    assert rows[("plain", "m", "recon")][5] == (3 + 6 + 6) / 18
    assert rows[("plain", "trivial", "ht")][5] == 1.0  # every signal HT above every background
    # gain of the learned score over the best trivial score (HT, AUC 1)
    assert rows[("plain", "m", "recon")][12] == (3 + 6 + 6) / 18 - 1.0


def test_write_evaluation_files_and_page(tmp_path: Path, missing_links) -> None:
    ev = _evaluation(rep=20)
    page = R.write_evaluation(ev, tmp_path)
    assert page == tmp_path / "index.html" and page.is_file()
    assert not missing_links(page)
    text = page.read_text()
    assert "scores.parquet" in text and "hist_m_recon.png" in text and "Sculpting" in text
    t = pq.read_table(tmp_path / "scores.parquet").to_pydict()
    assert t["label"].count(1) == 60 and t["sample"][0] == "bkg"
    np.testing.assert_allclose(t["m:recon@0"][:120], ev.scores["bkg"]["m:recon@0"])
    md = (tmp_path / "metrics.md").read_text()
    assert "| trivial | ht | sig | 1 | 1.000 |" in md  # one seed: no "± 0.000" spread
    # 120 background events: eps_B = 1e-2 is measured, 1e-3 (0.12 events) is not
    assert md.count("n/a (< 1 bkg event)") == md.count("| sig |") > 0


def test_training_page(tmp_path: Path, missing_links) -> None:
    (tmp_path / "config.yaml").write_text("model: {name: node-ae}\n")
    records = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "time_s": 0.1},
               {"epoch": 2, "train_loss": 1.0, "val_loss": 1.5, "time_s": 0.1}]  # fmt: skip
    page = R.write_training_page(tmp_path, {"model": {"name": "node-ae", "k": 3}}, records)
    assert page == tmp_path / "index.html" and not missing_links(page)
    text = page.read_text()
    assert "model.name" in text and "model.k" in text and "loss.png" in text
    assert "config.yaml" in text and "calibration.json" not in text  # only files that exist
