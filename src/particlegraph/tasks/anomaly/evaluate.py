"""Evaluation: learned and trivial scores on a background and signal samples, and their metrics.

:func:`evaluate` returns an :class:`Evaluation` (per-event scores, metrics per (protocol, model,
score, signal, seed), their mean / spread over seeds, the gain of every learned score over the
best trivial score, and the HT sculpting of every score); it writes nothing.
:func:`.report.write_evaluation` turns it into files (``scores.parquet``, ``metrics.json``,
``metrics.md``, figures, ``index.html``).

Trivial scores (:mod:`.trivial`) are model ``trivial`` (seed 0). With a ``reference`` sample
(background events that are neither training nor test events), the trivial background density is
fitted on it, and every score gets an HT-calibrated twin ``<score>_htcal``
(:class:`~.decorrelate.HTCalibration` fitted on the reference): protocols ``plain``,
``ht-calibrated`` and ``ht-matched`` (:mod:`.comparison`).

Metrics (:mod:`particlegraph.metrics.roc`): AUC, eps_S at eps_B = 1e-2 and 1e-3 (interpolated on
the ROC, binomial errors), 1/eps_B at eps_S = 0.3, max eps_S / sqrt(eps_B). Sculpting
(:func:`.decorrelate.sculpting`): the background HT distribution after a cut at eps_B = 1e-2 (and
0.1) against before, as a Jensen-Shannon divergence with its bootstrap error and the random-cut
floor; plus the Spearman correlation of each score with HT and the leading-jet mass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly.comparison import (
    CAL_SUFFIX,
    gains,
    matching_weights,
    mean_over_seeds,
    per_seed_rows,
    split_key,
)
from particlegraph.tasks.anomaly.decorrelate import HTCalibration, sculpting
from particlegraph.tasks.anomaly.models import AnomalyModel, EdgeGAE, ModelConfig
from particlegraph.tasks.anomaly.scores import Calibration, score_graphs
from particlegraph.tasks.anomaly.train import load_graphs, load_run
from particlegraph.tasks.anomaly.trivial import TrivialDensity, trivial_scores

log = logging.getLogger(__name__)


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


def check_disjoint(samples: Sequence[SampleRef]) -> None:
    """Refuse two samples that read the same events (same folder, overlapping ranges): a
    training, reference and test sample of one background must never share an event.

    Raises:
        ConfigError: naming the two samples and the shared event range.
    """
    for i, a in enumerate(samples):
        for b in samples[i + 1 :]:
            if Path(a.path).resolve() != Path(b.path).resolve():
                continue
            lo = max(a.start, b.start)
            hi = min(
                a.stop if a.stop is not None else np.inf, b.stop if b.stop is not None else np.inf
            )
            if lo < hi:
                end = "" if hi == np.inf else f"{int(hi) - 1}"
                raise ConfigError(
                    f"samples {a.name!r} and {b.name!r} share events {lo}..{end} of {a.path}"
                )


def all_scores(
    model: AnomalyModel, cal: Calibration | None, graphs: list[Any]
) -> dict[str, np.ndarray]:
    """Every score column of a model on ``graphs``: ``recon`` (+ node-ae / set-ae: with a
    calibration the remedies ``latent`` and ``combined``; node-ae also ``recon_ptw``)."""
    s = score_graphs(model, graphs)
    cols = dict(s.columns)
    if not isinstance(model, EdgeGAE) and cal is not None and s.latent_summary is not None:
        cols.update(cal.remedy(cols["recon"], s.latent_summary))
    return cols


def model_key(cfg: ModelConfig) -> str:
    """The model part of a score key: the name, ``[event]`` for event-frame inputs."""
    return cfg.name + ("[event]" if cfg.frame == "event" else "")


@dataclass
class Evaluation:
    """Everything :func:`evaluate` computed (see the module docstring)."""

    background: str
    signals: list[str]
    events: dict[str, dict[str, np.ndarray]]  # sample -> {"event", "ht", "lead_jet_mass"}
    scores: dict[str, dict[str, np.ndarray]]  # sample -> {"model:score@seed": (n,)}
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    gains: list[dict[str, Any]] = field(default_factory=list)
    sculpting: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # ht-matched signal weights
    reference: str | None = None


def _read_trivial(smp: SampleRef) -> dict[str, np.ndarray] | None:
    from particlegraph.tasks.anomaly.samples import read_candidates, take_events

    if Path(smp.path).suffix == ".pt":
        return None
    c = take_events(read_candidates(smp.path, max_events=smp.stop), smp.start, smp.stop)
    return trivial_scores(c)


def evaluate(
    runs: Sequence[str | Path],
    background: SampleRef,
    signals: list[SampleRef],
    *,
    reference: SampleRef | None = None,
    n_boot: int = 100,
    ht_bins: int = 5,
) -> Evaluation:
    """Score ``background`` and every signal with every run and the trivial scores; metrics.

    ``reference``: background events (not training, not test) for the trivial density and the
    HT calibrations; without it only the plain protocol is evaluated. ``runs`` may be empty
    (trivial scores only).
    """
    if not signals:
        raise ConfigError("evaluate needs at least one signal sample")
    samples = [background, *signals] + ([reference] if reference is not None else [])
    if len({s.name for s in samples}) != len(samples):
        raise ConfigError("sample names (background, signals, reference) must be distinct")
    ev = Evaluation(background.name, [s.name for s in signals], {}, {s.name: {} for s in samples})
    ev.reference = reference.name if reference is not None else None
    _score_runs(ev, runs, samples)
    _add_trivial(ev, samples, reference)
    if reference is not None:
        _calibrate(ev, reference.name, ht_bins)
    if not ev.scores[background.name]:
        raise ConfigError("nothing to evaluate: no run and no trivial scores (.pt samples)")
    ref_ht = ev.events[reference.name]["ht"] if reference is not None else None
    if ref_ht is not None:
        ev.weights = {s: matching_weights(ev.events[s]["ht"], ref_ht) for s in ev.signals}
    compute_metrics(ev, n_boot)
    return ev


def compute_metrics(ev: Evaluation, n_boot: int = 100) -> None:
    """Fill ``per_seed``, ``table``, ``gains`` and ``sculpting`` of ``ev`` from its scores."""
    ev.sculpting = []
    ev.per_seed = per_seed_rows(ev.scores, ev.background, ev.signals, ev.weights)
    ev.table = mean_over_seeds(ev.per_seed)
    ev.gains = gains(ev.per_seed, ev.scores, ev.background, ev.weights, n_boot=n_boot)
    _sculpting(ev, n_boot)


def _score_runs(ev: Evaluation, runs: Sequence[str | Path], samples: list[SampleRef]) -> None:
    graph_cache: dict[tuple[Any, ...], list[Any]] = {}
    for run in runs:
        model, cfg, cal = load_run(run)
        m = cfg.model
        for smp in samples:
            ck = (smp.name, m.k, m.use_symmetric, m.select, m.frame)
            if ck not in graph_cache:
                graph_cache[ck] = load_graphs(smp.path, m, smp.start, smp.stop)
            graphs = graph_cache[ck]
            if smp.name not in ev.events:
                ev.events[smp.name] = _event_info(graphs, smp.start)
            for col, v in all_scores(model, cal, graphs).items():
                ev.scores[smp.name][f"{model_key(m)}:{col}@{cfg.fit.seed}"] = v


def _event_info(graphs: list[Any], start: int) -> dict[str, np.ndarray]:
    return {
        "event": np.array([int(g.event) + start for g in graphs]),
        "ht": np.array([float(g.ht) for g in graphs]),
        "lead_jet_mass": np.array([float(g.lead_jet_mass) for g in graphs]),
    }


def _add_trivial(ev: Evaluation, samples: list[SampleRef], reference: SampleRef | None) -> None:
    obs = {s.name: _read_trivial(s) for s in samples}
    if any(o is None for o in obs.values()):
        log.warning("trivial scores need Parquet samples; skipped (a .pt sample was given)")
        return
    density = TrivialDensity.fit(obs[reference.name]) if reference is not None else None  # type: ignore[arg-type]
    for s in samples:
        o = obs[s.name]
        assert o is not None
        if density is not None:
            o["density"] = density.score(o)
        if s.name not in ev.events:
            ev.events[s.name] = {"event": np.arange(o["ht"].size) + s.start, "ht": o["ht"],
                                 "lead_jet_mass": np.full(o["ht"].size, np.nan)}  # fmt: skip
        for k, v in o.items():
            ev.scores[s.name][f"trivial:{k}@0"] = v


def add_scores(
    ev: Evaluation, columns: dict[str, dict[str, np.ndarray]], n_boot: int = 100, ht_bins: int = 5
) -> None:
    """Add the scores of a model evaluated outside :func:`evaluate` (``columns``: sample ->
    ``model:score@seed`` -> (n,), for every sample of ``ev`` including the reference), their
    HT-calibrated twins (fitted on ``ev``'s reference, as for every other score), and recompute
    the metrics."""
    if set(columns) != set(ev.scores):
        raise ConfigError(f"scores for samples {sorted(ev.scores)} needed, got {sorted(columns)}")
    for name, cols in columns.items():
        for key, v in cols.items():
            if np.shape(v) != ev.events[name]["ht"].shape:
                raise ConfigError(f"{key} of {name}: {np.shape(v)} scores for "
                                  f"{ev.events[name]['ht'].size} events")  # fmt: skip
            ev.scores[name][key] = np.asarray(v, dtype=np.float64)
    if ev.reference is not None:
        _calibrate(ev, ev.reference, ht_bins, keys=list(columns[ev.reference]))
    compute_metrics(ev, n_boot)


def _calibrate(ev: Evaluation, ref: str, ht_bins: int, keys: list[str] | None = None) -> None:
    ref_ht = ev.events[ref]["ht"]
    for key in list(ev.scores[ref]) if keys is None else keys:
        model, score, seed = split_key(key)
        cal = HTCalibration.fit(ev.scores[ref][key], ref_ht, ht_bins)
        new = f"{model}:{score}{CAL_SUFFIX}@{seed}"
        for name in ev.scores:
            ev.scores[name][new] = cal.transform(ev.scores[name][key], ev.events[name]["ht"])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra = np.argsort(np.argsort(a[ok])).astype(float)
    rb = np.argsort(np.argsort(b[ok])).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _sculpting(ev: Evaluation, n_boot: int = 100) -> None:
    info = ev.events[ev.background]
    for key, s in ev.scores[ev.background].items():
        model, score, seed = split_key(key)
        row: dict[str, Any] = {"model": model, "score": score, "seed": seed}
        for var in ("ht", "lead_jet_mass"):
            x = info[var]
            row[f"spearman_{var}"] = _spearman(s, x)
            mean_all = float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
            for tag, q in (("", 0.99), ("_eps_b_0p1", 0.9)):
                sel = s > float(np.quantile(s, q))
                row[f"mean_{var}_pass_over_all{tag}"] = (
                    float(np.nanmean(x[sel]) / mean_all)
                    if np.isfinite(x[sel]).any() and mean_all
                    else float("nan")
                )
        for tag, eps in (("1e2", 1e-2), ("0p1", 0.1)):
            sc = sculpting(s, info["ht"], eps_b=eps, n_boot=n_boot)
            row.update({f"{k}_{tag}": v for k, v in sc.items() if k != "eps_b"})
        ev.sculpting.append(row)
