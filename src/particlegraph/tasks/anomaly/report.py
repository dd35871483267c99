"""Anomaly outputs: the evaluation's files and the pages ``index.html``, through :mod:`particlegraph.report`.

:func:`.evaluate.evaluate` computes an :class:`~.evaluate.Evaluation`; this module only turns
results into text and files. Pure pieces (tables, per-event columns, report rows) return values;
the writers save them:

- :func:`write_evaluation`: ``scores.parquet`` (sample, label, event, HT, leading-jet mass and one
  column per ``model:score@seed``, trivial scores included, so anyone can recompute a ROC),
  ``metrics.json``, ``metrics.md`` (the tables), PNG figures and ``OUT/index.html``;
- :func:`write_training_page`: ``RUN/index.html`` of a trained run (configuration, loss curves,
  the validation calibration, the run's files).

Pages are written by :func:`particlegraph.report.run_index.write_run_index` (one stage of the
page, the configuration table and the file links), as for the other tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from particlegraph.report.html import ReportSection
from particlegraph.report.run_index import write_run_index
from particlegraph.tasks.anomaly.comparison import CAL_SUFFIX, split_key

if TYPE_CHECKING:  # annotations only: evaluate -> train -> report must not close a cycle
    from particlegraph.tasks.anomaly.evaluate import Evaluation

#: Columns of the page's headline table (one row per protocol, model, score and signal).
SUMMARY_HEADER = ["protocol", "model", "score", "signal", "seeds", "AUC", "AUC std", "eps_S@1e-2",
                  "err", "eps_S@1e-3", "1/eps_B@0.3", "max SIC", "gain AUC vs best trivial"]  # fmt: skip
SCULPT_HEADER = ["model", "score", "seed", "rho(score, HT)", "rho(score, m_j)", "<HT> pass/all",
                 "<m_j> pass/all", "JSD(HT) 1e-2", "err", "random floor"]  # fmt: skip
SCULPT_TEXT = (
    "Spearman correlation of each score with HT and leading-jet mass on the background, mean HT "
    "/ jet mass of events above the eps_B = 1e-2 cut relative to all, and the Jensen-Shannon "
    "divergence [bits] of the background HT after that cut vs before (bootstrap error; the floor "
    "is the value of a random cut keeping as many events)."
)


def _fmt(v: Any, n_bkg: float | None = None) -> str:
    """Table cell: 3 significant digits; an infinite rejection is a lower bound ``> n_bkg``."""
    if v is None:
        return "inf" if n_bkg is None else f"> {n_bkg:.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"
    return str(v)


def _pm(v: Any, err: Any, fmt: str = ".3f") -> str:
    if v is None:
        return "-"
    efmt = fmt.lstrip("+")
    return f"{v:{fmt}}" if err is None or not np.isfinite(err) else f"{v:{fmt}} ± {err:{efmt}}"


def _rate(row: dict[str, Any], tag: str, eps_b: float, n_bkg: float) -> str:
    """eps_S at eps_B with its binomial error, or ``n/a (< 1 bkg event)`` where eps_B is below
    one background event (the ROC is only interpolated there, not measured)."""
    if eps_b * n_bkg < 1.0:
        return "n/a (< 1 bkg event)"
    return _pm(row[f"eps_s_at_{tag}"], row[f"eps_s_at_{tag}_err"])


def _gain_index(ev: Evaluation) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {(g["protocol"], g["model"], g["score"], g["signal"]): g for g in ev.gains}


def markdown_table(ev: Evaluation, protocols: Sequence[str] | None = None) -> str:
    """The metrics tables, one per protocol: means over seeds, the AUC with the sample standard
    deviation over seeds, eps_S with its binomial error, the gain over the best trivial score
    (learned scores) with its bootstrap error; ``> N`` where no background event (of N) passes,
    ``n/a`` for an eps_B below one background event. Trivial scores come first within each
    signal."""
    n_bkg = float(ev.events[ev.background]["event"].size)
    gain = _gain_index(ev)
    head = ("| model | score | signal | seeds | AUC | eps_S@1e-2 | eps_S@1e-3 | 1/eps_B@0.3 | "
            "max SIC | gain AUC | gain eps_S@1e-2 |")  # fmt: skip
    out = []
    for proto in protocols or ("plain", "ht-calibrated", "ht-matched"):
        rows = [r for r in ev.table if r["protocol"] == proto]
        if not rows:
            continue
        rows.sort(key=lambda r: (r["signal"], not r["trivial"], r["model"], r["score"]))
        out += [f"\n**{proto}**\n", head, "|" + "---|" * 11]
        for r in rows:
            g = gain.get((proto, r["model"], r["score"], r["signal"]), {})
            out.append(
                f"| {r['model']} | {r['score']} | {r['signal']} | {r['n_seeds']} | "
                f"{_pm(r['auc'], r['auc_std'])} | {_rate(r, '1e2', 1e-2, n_bkg)} | "
                f"{_rate(r, '1e3', 1e-3, n_bkg)} | "
                f"{_fmt(r['inv_eps_b_at_0p3'], n_bkg)} | {_fmt(r['max_sic'])} | "
                f"{_pm(g.get('gain_auc'), g.get('gain_auc_boot_err'), '+.3f')} | "
                f"{_pm(g.get('gain_eps_s_at_1e2'), g.get('gain_eps_s_at_1e2_boot_err'), '+.3f')} |"
            )
    return "\n".join(out) + "\n"


def sculpting_table(ev: Evaluation) -> str:
    """Background HT sculpting of a cut at eps_B = 1e-2 per score (seed-0 runs and trivial)."""
    lines = ["| model | score | seed | JSD(HT pass, all) [bits] | random-cut floor | <HT> pass/all |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in ev.sculpting:
        lines.append(
            f"| {r['model']} | {r['score']} | {r['seed']} | {_pm(r['jsd_1e2'], r['jsd_err_1e2'])} | "
            f"{_pm(r['jsd_random_1e2'], r['jsd_random_std_1e2'])} | {_fmt(r['ht_pass_over_all_1e2'])} |"
        )
    return "\n".join(lines) + "\n"


def evaluation_dict(ev: Evaluation) -> dict[str, Any]:
    """JSON-ready summary: tables, gains, sculpting, per-seed rows (no per-event arrays)."""
    n_eff = {s: float(w.sum() ** 2 / max((w * w).sum(), 1e-300)) for s, w in ev.weights.items()}
    return {"background": ev.background, "signals": ev.signals, "reference": ev.reference,
            "n_events": {k: int(v["event"].size) for k, v in ev.events.items()},
            "ht_matched_n_sig_eff": n_eff, "table": ev.table, "gains": ev.gains,
            "sculpting": ev.sculpting, "per_seed": ev.per_seed}  # fmt: skip


def score_columns(ev: Evaluation) -> dict[str, list[Any]]:
    """The per-event table of ``scores.parquet``: background then signals, columns ``sample``,
    ``label`` (0 background, 1 signal), ``event``, ``ht``, ``lead_jet_mass`` and every score key
    (``model:score@seed``; the trivial scores are model ``trivial``)."""
    cols: dict[str, list[Any]] = defaultdict(list)
    keys = list(ev.scores[ev.background])
    for name in [ev.background, *ev.signals]:
        n = ev.events[name]["event"].size
        cols["sample"] += [name] * n
        cols["label"] += [0 if name == ev.background else 1] * n
        for k in ("event", "ht", "lead_jet_mass"):
            cols[k] += ev.events[name][k].tolist()
        for k in keys:
            cols[k] += ev.scores[name][k].tolist()
    return dict(cols)


def summary_rows(ev: Evaluation) -> list[list[Any]]:
    """Rows of :data:`SUMMARY_HEADER` (the page's headline table), one per row of ``ev.table``."""
    gain = _gain_index(ev)
    return [[r["protocol"], r["model"], r["score"], r["signal"], r["n_seeds"], r["auc"],
             r["auc_std"], r["eps_s_at_1e2"], r["eps_s_at_1e2_err"], r["eps_s_at_1e3"],
             r["inv_eps_b_at_0p3"], r["max_sic"],
             gain.get((r["protocol"], r["model"], r["score"], r["signal"]), {}).get("gain_auc")]
            for r in ev.table]  # fmt: skip


def sculpting_rows(ev: Evaluation) -> list[list[Any]]:
    """Rows of :data:`SCULPT_HEADER`, one per background score."""
    keys = ("model", "score", "seed", "spearman_ht", "spearman_lead_jet_mass",
            "mean_ht_pass_over_all", "mean_lead_jet_mass_pass_over_all", "jsd_1e2",
            "jsd_err_1e2", "jsd_random_1e2")  # fmt: skip
    return [[r[k] for k in keys] for r in ev.sculpting]


def figure_keys(ev: Evaluation) -> dict[tuple[str, str], str]:
    """(model, score) -> the first score key (lowest seed) that gets figures: every plain learned
    score and two trivial ones (HT and the background density)."""
    firsts: dict[tuple[str, str], str] = {}
    for k in ev.scores[ev.background]:
        model, score, _ = split_key(k)
        if score.endswith(CAL_SUFFIX) or (model == "trivial" and score not in ("ht", "density")):
            continue
        firsts.setdefault((model, score), k)
    return firsts


def _score_figures(ev: Evaluation, key: str, title: str, stem: str, out: Path) -> list[Path]:
    """Score histograms, ROC curves and the background sculpting profiles of one score."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend
    from particlegraph.tasks.anomaly import plots

    hist = plots.score_histograms({n: ev.scores[n][key] for n in ev.scores}, title=title)
    roc = plots.roc_curves(ev.scores[ev.background][key], {n: ev.scores[n][key] for n in ev.signals},
                           title=f"{title} vs {ev.background}")  # fmt: skip
    imgs = [plots.save(hist.figure, out / f"hist_{stem}.png"),
            plots.save(roc.figure, out / f"roc_{stem}.png")]  # fmt: skip
    s = ev.scores[ev.background][key]
    cut = float(np.quantile(s, 0.9))  # eps_B = 0.1: enough events to see a shape
    info = ev.events[ev.background]
    for var, lab in (("ht", "HT [GeV]"), ("lead_jet_mass", "leading-jet mass [GeV]")):
        if np.isfinite(info[var]).any():
            headless_backend()
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
            plots.score_profile(info[var], s, xlabel=f"background {lab}", ax=a1)
            plots.sculpting_profile(
                info[var], s, cut, xlabel=f"background {lab}, eps_B = 0.1 cut", ax=a2
            )
            imgs.append(plots.save(fig, out / f"sculpt_{var}_{stem}.png"))
    return imgs


def write_evaluation(ev: Evaluation, out: str | Path) -> Path:
    """Write scores, metrics, figures and ``out/index.html``; returns the page's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from particlegraph.atomic import atomic_path, write_json, write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "scores.parquet") as tmp:
        pq.write_table(pa.table(score_columns(ev)), tmp)
    write_json(out / "metrics.json", evaluation_dict(ev))
    tables = markdown_table(ev) + "\n**Sculpting (background HT)**\n\n" + sculpting_table(ev)
    write_text(out / "metrics.md", tables)
    sections = []
    for (model, score), key in figure_keys(ev).items():
        stem = f"{model}_{score}".replace(":", "_")
        imgs = _score_figures(ev, key, f"{model}:{score}", stem, out)
        sections.append(ReportSection(f"{model}: {score}", imgs))
    sections.append(ReportSection("Sculpting (background)", text=SCULPT_TEXT,
                                  rows=sculpting_rows(ev), header=SCULPT_HEADER))  # fmt: skip
    return write_run_index(out, f"Anomaly detection: background {ev.background}", "evaluation",
                           sections, files=("scores.parquet", "metrics.json", "metrics.md"),
                           summary_rows=summary_rows(ev), header=SUMMARY_HEADER)  # fmt: skip


def write_training_page(
    run_dir: str | Path, config: Any, records: Sequence[Mapping[str, float]]
) -> Path:
    """``RUN/index.html`` of a trained run: the loss curves (``loss.png``), the configuration,
    and the run's files; returns the page's path."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from particlegraph.plot import headless_backend
    from particlegraph.tasks.anomaly import plots

    run_dir = Path(run_dir)
    headless_backend()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [int(r["epoch"]) for r in records]
    for key, lab in (("train_loss", "training"), ("val_loss", "validation")):
        ax.plot(epochs, [r.get(key, np.nan) for r in records], marker="o", label=lab)
    ax.set(xlabel="epoch", ylabel="loss (the model's training loss)", title=run_dir.name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    loss = plots.save(fig, run_dir / "loss.png")
    rows = [[int(r["epoch"]), r.get("train_loss"), r.get("val_loss"), r.get("time_s")]
            for r in records]  # fmt: skip
    section = ReportSection("Training", [loss], rows=rows,
                            header=["epoch", "train loss", "validation loss", "time [s]"],
                            captions=["Training and validation loss per epoch (background only)."])  # fmt: skip
    names = ("config.yaml", "history.json", "history.csv", "preprocessing.json", "calibration.json")
    return write_run_index(run_dir, f"Anomaly run: {run_dir.name}", "training", [section],
                           config=config, files=names)  # fmt: skip
