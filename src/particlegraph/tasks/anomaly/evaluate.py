"""Evaluation: scores of trained runs on a background and signal samples, metrics, report.

:func:`evaluate` returns an :class:`Evaluation` (per-event scores, metrics per (model, score,
signal, seed) and their mean / spread over seeds, sculpting numbers); :func:`write_evaluation`
turns it into files: ``scores.parquet`` (sample, label, event, HT, leading-jet mass and one column
per ``model:score@seed``, so anyone can recompute a ROC), ``metrics.json``, ``metrics.md``
(the table), PNG figures and ``report.html``.

Metrics (:mod:`particlegraph.metrics.roc`): AUC, eps_S at eps_B = 1e-2 and 1e-3, 1/eps_B at
eps_S = 0.3, max eps_S / sqrt(eps_B). Sculpting: on the background, the Spearman correlation of
each score with HT and with the leading-jet mass, and the mean HT / jet mass of the background
events that pass the score cut with eps_B = 1e-2 relative to all background events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.metrics.roc import summarize
from particlegraph.tasks.anomaly.models import AnomalyModel, NodeAE
from particlegraph.tasks.anomaly.scores import Calibration, score_graphs
from particlegraph.tasks.anomaly.train import load_graphs, load_run

METRICS = ("auc", "eps_s_at_1e2", "eps_s_at_1e3", "inv_eps_b_at_0p3", "max_sic")


@dataclass(frozen=True)
class SampleRef:
    """A sample to score: ``name``, folder/file ``path`` and the event range ``start .. stop-1``."""

    name: str
    path: str
    start: int = 0
    stop: int | None = None


def parse_sample(text: str) -> SampleRef:
    """Parse ``name=path[:start[:stop]]`` (e.g. ``zerobias=data/zerobias:2000:3000``)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"sample {text!r} must look like name=path[:start[:stop]]")
    parts = rest.split(":")
    try:
        nums = [int(p) if p else None for p in parts[1:3]]
    except ValueError as err:
        raise ConfigError(f"sample {text!r}: start and stop must be integers") from err
    start = nums[0] if nums and nums[0] is not None else 0
    stop = nums[1] if len(nums) > 1 else None
    return SampleRef(name.strip(), parts[0], start, stop)


def all_scores(
    model: AnomalyModel, cal: Calibration | None, graphs: list[Any]
) -> dict[str, np.ndarray]:
    """Every score column of a model on ``graphs``: ``recon`` (+ node-ae: ``recon_ptw``,
    and with a calibration the remedies ``latent`` and ``combined``)."""
    s = score_graphs(model, graphs)
    cols = dict(s.columns)
    if isinstance(model, NodeAE) and cal is not None and s.latent_summary is not None:
        cols.update(cal.remedy(cols["recon"], s.latent_summary))
    return cols


@dataclass
class Evaluation:
    """Everything :func:`evaluate` computed (see the module docstring)."""

    background: str
    signals: list[str]
    events: dict[str, dict[str, np.ndarray]]  # sample -> {"event", "ht", "lead_jet_mass"}
    scores: dict[str, dict[str, np.ndarray]]  # sample -> {"model:score@seed": (n,)}
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    sculpting: list[dict[str, Any]] = field(default_factory=list)


def evaluate(
    runs: Sequence[str | Path], background: SampleRef, signals: list[SampleRef]
) -> Evaluation:
    """Score ``background`` and every signal with every run; metrics per (model, score, signal)."""
    if not runs or not signals:
        raise ConfigError("evaluate needs at least one run directory and one signal sample")
    samples = [background, *signals]
    if len({s.name for s in samples}) != len(samples):
        raise ConfigError("sample names must be distinct")
    graph_cache: dict[tuple[str, int, bool, str], list[Any]] = {}
    ev = Evaluation(background.name, [s.name for s in signals], {}, {s.name: {} for s in samples})
    for run in runs:
        model, cfg, cal = load_run(run)
        key_model = cfg.model.name
        for smp in samples:
            ck = (smp.name, cfg.model.k, cfg.model.use_symmetric, cfg.model.select)
            if ck not in graph_cache:
                graph_cache[ck] = load_graphs(smp.path, cfg.model, smp.start, smp.stop)
            graphs = graph_cache[ck]
            if smp.name not in ev.events:
                ev.events[smp.name] = {
                    "event": np.array([int(g.event) + smp.start for g in graphs]),
                    "ht": np.array([float(g.ht) for g in graphs]),
                    "lead_jet_mass": np.array([float(g.lead_jet_mass) for g in graphs]),
                }
            for col, v in all_scores(model, cal, graphs).items():
                ev.scores[smp.name][f"{key_model}:{col}@{cfg.fit.seed}"] = v
    _metrics(ev)
    _sculpting(ev)
    return ev


def _split_key(key: str) -> tuple[str, str, int]:
    ms, _, seed = key.rpartition("@")
    model, _, score = ms.partition(":")
    return model, score, int(seed)


def _metrics(ev: Evaluation) -> None:
    bkg = ev.scores[ev.background]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for key, b in bkg.items():
        model, score, seed = _split_key(key)
        for sig in ev.signals:
            s = ev.scores[sig][key]
            m = summarize(np.r_[s, b], np.r_[np.ones(s.size), np.zeros(b.size)]).as_dict()
            row = {"model": model, "score": score, "signal": sig, "seed": seed, **m}
            ev.per_seed.append(row)
            groups[(model, score, sig)].append(row)
    for (model, score, sig), rows in groups.items():
        out: dict[str, Any] = {"model": model, "score": score, "signal": sig, "n_seeds": len(rows)}
        for k in METRICS:
            vals = np.array([np.inf if r[k] is None else r[k] for r in rows], dtype=float)
            fin = vals[np.isfinite(vals)]
            out[k] = (
                float(np.mean(vals))
                if fin.size == vals.size
                else (float(np.mean(fin)) if fin.size else None)
            )
            out[f"{k}_std"] = float(np.std(fin, ddof=1)) if fin.size > 1 else 0.0
        ev.table.append(out)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra = np.argsort(np.argsort(a[ok])).astype(float)
    rb = np.argsort(np.argsort(b[ok])).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _sculpting(ev: Evaluation) -> None:
    info = ev.events[ev.background]
    for key, s in ev.scores[ev.background].items():
        model, score, seed = _split_key(key)
        cut = float(np.quantile(s, 0.99))
        row: dict[str, Any] = {"model": model, "score": score, "seed": seed, "cut_eps_b_1e2": cut}
        for var in ("ht", "lead_jet_mass"):
            x = info[var]
            row[f"spearman_{var}"] = _spearman(s, x)
            mean_all = float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
            for tag, q in (("", 0.99), ("_eps_b_0p1", 0.9)):
                sel = s > float(np.quantile(s, q))
                row[f"mean_{var}_pass_over_all{tag}"] = (
                    float(np.nanmean(x[sel]) / mean_all) if sel.any() and mean_all else float("nan")
                )
        ev.sculpting.append(row)


def _fmt(v: Any, n_bkg: float | None = None) -> str:
    """Table cell: 3 significant digits; an infinite rejection is a lower bound ``> n_bkg``."""
    if v is None:
        return "inf" if n_bkg is None else f"> {n_bkg:.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"
    return str(v)


def markdown_table(ev: Evaluation) -> str:
    """The metrics table: means over seeds, the AUC with the sample standard deviation over
    seeds; ``> N`` where no background event (of N) passes the cut."""
    n_bkg = float(ev.events[ev.background]["event"].size)
    head = (
        "| model | score | signal | seeds | AUC | eps_S@1e-2 | eps_S@1e-3 | 1/eps_B@0.3 | max SIC |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in ev.table:
        lines.append(
            f"| {r['model']} | {r['score']} | {r['signal']} | {r['n_seeds']} | {r['auc']:.3f} ± "
            f"{r['auc_std']:.3f} | {_fmt(r['eps_s_at_1e2'])} | {_fmt(r['eps_s_at_1e3'])} | "
            f"{_fmt(r['inv_eps_b_at_0p3'], n_bkg)} | {_fmt(r['max_sic'])} |"
        )
    return "\n".join(lines) + "\n"


def write_evaluation(ev: Evaluation, out: str | Path) -> Path:
    """Write scores, metrics, figures and ``report.html`` into ``out``; returns the report path."""
    import matplotlib.pyplot as plt
    import pyarrow as pa
    import pyarrow.parquet as pq

    from particlegraph.atomic import atomic_path, write_json, write_text
    from particlegraph.plot import headless_backend
    from particlegraph.report.html import ReportSection, write_report
    from particlegraph.tasks.anomaly import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    with atomic_path(out / "scores.parquet") as tmp:
        pq.write_table(pa.table(dict(cols)), tmp)
    write_json(out / "metrics.json", {"background": ev.background, "signals": ev.signals,
                                      "table": ev.table, "per_seed": ev.per_seed,
                                      "sculpting": ev.sculpting})  # fmt: skip
    table = markdown_table(ev)
    write_text(out / "metrics.md", table)

    sections = []
    firsts: dict[tuple[str, str], str] = {}
    for k in keys:
        model, score, _ = _split_key(k)
        firsts.setdefault((model, score), k)
    for (model, score), k in firsts.items():
        stem = f"{model}_{score}".replace(":", "_")
        f1 = plots.save(plots.score_histograms({n: ev.scores[n][k] for n in ev.scores},
                                                      title=f"{model}:{score}").figure, out / f"hist_{stem}.png")  # fmt: skip
        f2 = plots.save(plots.roc_curves(ev.scores[ev.background][k],
                                                {n: ev.scores[n][k] for n in ev.signals},
                                                title=f"{model}:{score} vs {ev.background}").figure,
                               out / f"roc_{stem}.png")  # fmt: skip
        s = ev.scores[ev.background][k]
        cut = float(np.quantile(s, 0.9))  # eps_B = 0.1: enough events to see a shape
        info = ev.events[ev.background]
        imgs = [f1, f2]
        for var, lab in (("ht", "HT [GeV]"), ("lead_jet_mass", "leading-jet mass [GeV]")):
            if np.isfinite(info[var]).any():
                headless_backend()
                fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
                plots.score_profile(info[var], s, xlabel=f"background {lab}", ax=a1)
                plots.sculpting_profile(
                    info[var], s, cut, xlabel=f"background {lab}, eps_B = 0.1 cut", ax=a2
                )
                imgs.append(plots.save(fig, out / f"sculpt_{var}_{stem}.png"))
        sections.append(ReportSection(f"{model}: {score}", imgs))
    summary = [[r["model"], r["score"], r["signal"], r["n_seeds"], r["auc"], r["auc_std"],
                r["eps_s_at_1e2"], r["eps_s_at_1e3"], r["inv_eps_b_at_0p3"], r["max_sic"]]
               for r in ev.table]  # fmt: skip
    header = ["model", "score", "signal", "seeds", "AUC", "AUC std", "eps_S@1e-2", "eps_S@1e-3",
              "1/eps_B@0.3", "max SIC"]  # fmt: skip
    scul = ReportSection(
        "Sculpting (background)",
        text="Spearman correlation of each score with HT and leading-jet mass on the background, "
        "and mean HT / jet mass of events above the eps_B = 1e-2 cut relative to all.",
        rows=[
            [
                r["model"],
                r["score"],
                r["seed"],
                r["spearman_ht"],
                r["spearman_lead_jet_mass"],
                r["mean_ht_pass_over_all"],
                r["mean_lead_jet_mass_pass_over_all"],
            ]
            for r in ev.sculpting
        ],
        header=[
            "model",
            "score",
            "seed",
            "rho(score, HT)",
            "rho(score, m_j)",
            "<HT> pass/all",
            "<m_j> pass/all",
        ],
    )
    return write_report(out / "report.html", f"Anomaly detection: background {ev.background}",
                        summary, [*sections, scul], header=header)  # fmt: skip
