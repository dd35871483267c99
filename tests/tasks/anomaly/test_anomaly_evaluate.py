"""Evaluation bookkeeping: metrics per (model, score, signal) with the seed spread, sculpting,
sample references, the written scores file."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly import evaluate as E
from particlegraph.tasks.anomaly import report as R


def _evaluation() -> E.Evaluation:
    rng = np.random.default_rng(0)
    n_b, n_s = 300, 100
    ht = rng.uniform(300, 900, n_b)
    events = {
        "bkg": {"event": np.arange(n_b), "ht": ht, "lead_jet_mass": rng.uniform(10, 90, n_b)},
        "sig": {"event": np.arange(n_s), "ht": np.full(n_s, 500.0), "lead_jet_mass": np.full(n_s, 50.0)},
    }  # fmt: skip
    scores: dict[str, dict[str, np.ndarray]] = {"bkg": {}, "sig": {}}
    for seed in (0, 1, 2):
        scores["bkg"][f"m:recon@{seed}"] = ht / 100 + rng.normal(0, 1, n_b)  # sculpts HT
        scores["sig"][f"m:recon@{seed}"] = rng.normal(7 + seed * 0.1, 1, n_s)
    # a trivial score: HT itself
    scores["bkg"]["trivial:ht@0"] = ht
    scores["sig"]["trivial:ht@0"] = events["sig"]["ht"].astype(float)
    ev = E.Evaluation("bkg", ["sig"], events, scores)
    E.compute_metrics(ev, n_boot=20)
    return ev


def test_metrics_mean_and_spread_over_seeds() -> None:
    ev = _evaluation()
    (row,) = [r for r in ev.table if r["model"] == "m"]
    aucs = []
    for seed in (0, 1, 2):
        s, b = ev.scores["sig"][f"m:recon@{seed}"], ev.scores["bkg"][f"m:recon@{seed}"]
        aucs.append(roc_auc_score(np.r_[np.ones(s.size), np.zeros(b.size)], np.r_[s, b]))
    assert row["n_seeds"] == 3 and (row["model"], row["score"], row["signal"]) == (
        "m",
        "recon",
        "sig",
    )
    assert row["auc"] == pytest.approx(np.mean(aucs))
    assert row["auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert len(ev.per_seed) == 3 + 1
    assert "| m | recon | sig | 3 |" in R.markdown_table(ev)


def test_gain_over_the_trivial_score_is_the_auc_difference() -> None:
    ev = _evaluation()
    (g,) = ev.gains
    (triv,) = [r for r in ev.table if r["model"] == "trivial"]
    (learned,) = [r for r in ev.table if r["model"] == "m"]
    # signal HT is a constant 500 inside the background's 300-900: AUC of HT = P(bkg < 500) = 1/3
    assert triv["auc"] == pytest.approx(np.mean(ev.events["bkg"]["ht"] < 500), abs=1e-12)
    assert g["best_trivial_auc"] == "ht"
    assert g["gain_auc"] == pytest.approx(learned["auc"] - triv["auc"])
    assert g["gain_auc_seed_std"] > 0 and g["gain_auc_boot_err"] > 0


def test_sculpting_sees_a_score_that_follows_ht() -> None:
    ev = _evaluation()
    row = ev.sculpting[0]
    assert row["spearman_ht"] > 0.5  # the score was built from HT
    assert abs(row["spearman_lead_jet_mass"]) < 0.2
    assert row["mean_ht_pass_over_all_eps_b_0p1"] > 1.2
    # the cut at eps_B = 0.1 (30 events) sculpts HT far beyond a random selection of 30
    assert row["n_pass_0p1"] == 30
    assert row["jsd_0p1"] > row["jsd_random_0p1"] + 3 * row["jsd_random_std_0p1"]


def test_parse_sample() -> None:
    assert E.parse_sample("zb=data/zb:2000:3000") == E.SampleRef("zb", "data/zb", 2000, 3000)
    assert E.parse_sample("s=x") == E.SampleRef("s", "x", 0, None)
    assert E.parse_sample("s=x::50") == E.SampleRef("s", "x", 0, 50)
    with pytest.raises(ConfigError, match="name=path"):
        E.parse_sample("nonsense")
    with pytest.raises(ConfigError, match="integers"):
        E.parse_sample("s=x:a")


def test_check_disjoint_refuses_shared_events(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "jetht", tmp_path / "other"
    a.mkdir(), b.mkdir()
    ok = [E.SampleRef("train", str(a), 0, 1600), E.SampleRef("ref", str(a), 1600, 2000),
          E.SampleRef("test", str(b), 0, 1000), E.SampleRef("tail", str(a), 2000)]  # fmt: skip
    E.check_disjoint(ok)  # adjacent ranges share nothing; another folder never clashes
    # the same folder written another way (relative / with ..) is still the same folder
    same = str(a / ".." / "jetht")
    with pytest.raises(ConfigError, match=r"'train' and 'test' share events 1500\.\.1599"):
        E.check_disjoint([ok[0], E.SampleRef("test", same, 1500, 2500)])
    with pytest.raises(ConfigError, match=r"'tail' and 'open' share events 2000\.\. "):
        E.check_disjoint([ok[3], E.SampleRef("open", str(a), 5)])


def test_trivial_only_evaluation_with_a_reference(sample_dir) -> None:  # type: ignore[no-untyped-def]
    bkg = sample_dir("bkg", n_events=120, seed=0)
    sig = sample_dir("sig", n_events=30, seed=1, pt_scale=20.0)
    ev = E.evaluate([], E.SampleRef("bkg", str(bkg), 60, 120), [E.SampleRef("sig", str(sig))],
                    reference=E.SampleRef("ref", str(bkg), 0, 60), n_boot=5)  # fmt: skip
    keys = set(ev.scores["bkg"])
    assert {"trivial:ht@0", "trivial:density@0", "trivial:ht_htcal@0"} <= keys
    rows = {(r["protocol"], r["score"]): r for r in ev.table}
    # a harder signal: the plain sum pT separates it, its HT-calibrated twin still ranks it high
    assert rows[("plain", "sum_pt")]["auc"] > 0.95
    # the fixture's HT is the sum pT of the stored candidates, so calibrated HT keeps its order
    # within each bin: AUC equal to ranking by HT inside bins, still well above 0.5 here
    assert rows[("ht-calibrated", "ht_htcal")]["auc"] > 0.5
    # HT-matched: the signal weighted to the reference HT in bins (n_sig_eff <= 30)
    assert rows[("ht-matched", "ht_htcal")]["n_sig_eff"] <= 30
    assert not ev.gains  # no learned score, nothing to compare


def test_add_scores_metrics_and_bad_shapes() -> None:
    ev = _evaluation()
    cols = {n: {"x:ht@0": ev.scores[n]["trivial:ht@0"].copy()} for n in ev.scores}
    E.add_scores(ev, cols, n_boot=5)
    auc = {(r["model"], r["score"]): r["auc"] for r in ev.table if r["protocol"] == "plain"}
    assert auc[("x", "ht")] == auc[("trivial", "ht")]  # the same numbers, the same AUC
    assert sum(r["model"] == "x" for r in ev.sculpting) == 1  # recomputed, not appended twice
    assert sum(r["model"] == "m" for r in ev.sculpting) == 3
    with pytest.raises(ConfigError, match="events"):
        E.add_scores(ev, {n: {"y:s@0": np.zeros(3)} for n in ev.scores})
    with pytest.raises(ConfigError, match="samples"):
        E.add_scores(ev, {"bkg": {"y:s@0": np.zeros(300)}})
