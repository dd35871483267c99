"""Turn an MLPF :class:`~particlegraph.tasks.mlpf.explain_result.Explanation` into files.

:func:`write_explanation` writes into ``OUT/`` (nothing here computes relevance):

* ``relmap_single_<output>.png``: relevance maps (element + its most relevant neighbours x the
  12 input features) of one element of each true class present in the first event;
* ``relmap_avg_<output>.png``: the same averaged per true class, correct / wrong predictions;
* ``feature_hist_<output>.png``: per-class histograms of each feature's relevance share;
* ``relmap_<output>.npz``: the arrays behind those figures;
* ``event_display.png``: eta-phi display of the first event for the first output;
* ``flipping_element.png``, ``flipping_feature.png``: flipping curves (first ``flip_events``);
* ``randomization.png``: the cascading model-randomisation test on the first event;
* ``summary.json``: conservation figures, flipping AUC gaps, rank correlations, counts;

and, with ``report_dir``, the explanation section of that run's ``index.html``.
:func:`format_summary` gives the lines ``mlpf explain`` prints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import atomic_path, write_json
from particlegraph.plot import save_figure
from particlegraph.sim.elements import CLASS_LABELS, X_FEATURES
from particlegraph.tasks.mlpf.explain_outputs import slug
from particlegraph.tasks.mlpf.explain_result import EventDisplay, Explanation, OutputExplanation

#: Resolution of every explanation figure [dots per inch].
DPI = 110


def _save(fig: Any, path: Path) -> str:
    """Write one figure through :func:`particlegraph.plot.save_figure`; returns its file name."""
    return save_figure(fig, path, dpi=DPI).name


def _save_npz(path: Path, **arrays: np.ndarray) -> str:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return path.name


def _single_maps_file(entry: OutputExplanation, out: Path) -> str:
    from particlegraph.plot.explain import relevance_maps_figure

    panels = [(p.values, p.rows, p.title) for p in entry.single_maps]
    fig = relevance_maps_figure(
        panels, title=f"relevance maps for output {entry.name}", feature_names=X_FEATURES
    )
    return _save(fig, out / f"relmap_single_{slug(entry.name)}.png")


def _event_display_file(display: EventDisplay, out: Path) -> str:
    from particlegraph.plot.explain import event_display_figure

    panels = [(p.element, p.edges, p.highlight, p.title) for p in display.panels]
    fig = event_display_figure(display.eta, display.phi, panels, is_track=display.is_track)
    return _save(fig, out / "event_display.png")


def _class_files(entry: OutputExplanation, out: Path) -> list[str]:
    """The averaged maps and the feature-share histograms of one output."""
    from particlegraph.plot.explain import class_maps_figure, feature_histograms_figure

    name = entry.name
    maps = class_maps_figure(
        entry.maps, entry.counts, title=f"averaged maps: {name}",
        class_names=CLASS_LABELS, feature_names=X_FEATURES,
    )  # fmt: skip
    hists = feature_histograms_figure(
        entry.hist_counts, entry.hist_edges, title=f"feature relevance: {name}",
        class_names=CLASS_LABELS, feature_names=X_FEATURES,
    )  # fmt: skip
    return [
        _save(maps, out / f"relmap_avg_{slug(name)}.png"),
        _save(hists, out / f"feature_hist_{slug(name)}.png"),
    ]


def _faithfulness_files(result: Explanation, out: Path) -> list[str]:
    """Flipping curves of every output (one figure per unit) and the randomisation test."""
    from particlegraph.plot.explain import flipping_figure, randomization_figure

    files = []
    for unit in ("element", "feature"):
        curves = {n: e.flipping[unit] for n, e in result.outputs.items() if unit in e.flipping}
        if curves:
            fig = flipping_figure(curves, title=f"{unit} flipping ({result.rule})")
            files.append(_save(fig, out / f"flipping_{unit}.png"))
    tests = {n: e.randomization for n, e in result.outputs.items() if e.randomization is not None}
    if tests:
        fig = randomization_figure(
            tests, title="cascading model randomisation (layers reset from the output)"
        )
        files.append(_save(fig, out / "randomization.png"))
    return files


def write_explanation(
    result: Explanation,
    out: str | Path,
    *,
    figures: bool = True,
    report_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``result`` into ``out`` (module docstring); returns the ``summary.json`` content.

    Args:
        result: what :func:`~particlegraph.tasks.mlpf.explain_compute.explain_events` computed.
        out: the output folder (created if needed; files are written atomically).
        figures: draw the PNG figures (the ``.npz`` arrays and the summary are always written).
        report_dir: a run folder whose ``index.html`` gains the explanation section.

    The summary's ``seconds`` and ``timing_s["figures"]`` include the time spent here [s].
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    files: list[str] = []
    if figures:
        files += [_single_maps_file(e, out) for e in result.outputs.values() if e.single_maps]
        if result.event_display is not None:
            files.append(_event_display_file(result.event_display, out))
    for entry in result.outputs.values():
        if figures:
            files += _class_files(entry, out)
        files.append(_save_npz(
            out / f"relmap_{slug(entry.name)}.npz", mean=entry.maps, count=entry.counts,
            hist_counts=entry.hist_counts, hist_edges=entry.hist_edges,
            features=np.array(X_FEATURES),
        ))  # fmt: skip
    if figures:
        files += _faithfulness_files(result, out)
    spent = time.perf_counter() - tick
    summary = result.summary()
    summary["timing_s"]["figures"] += spent
    summary["seconds"] += spent
    summary["files"] = [*sorted(set(files)), "summary.json"]
    write_json(out / "summary.json", summary)
    if report_dir is not None:
        from particlegraph.tasks.mlpf.report import report_explanation

        report_explanation(report_dir, out, summary)
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def format_summary(summary: Mapping[str, Any], out: str | Path) -> list[str]:
    """The lines ``mlpf explain`` prints: totals, then per output conservation, flipping AUC
    gaps and the rank correlation with every layer reset."""
    lines = [
        f"explained {summary['events']} event(s), {summary['elements']} elements, "
        f"{len(summary['outputs'])} output(s) in {summary['seconds']:.1f} s -> {out}"
    ]
    for name, entry in summary["outputs"].items():
        cons = entry["conservation"]
        gaps = " ".join(
            f"{unit}-flip gap {_fmt(entry[f'flipping_{unit}']['auc_gap'])}"
            for unit in ("element", "feature")
            if f"flipping_{unit}" in entry
        )
        rho = entry.get("randomization", {}).get("spearman", [])
        last = f" rho(all reset) {_fmt(rho[-1])}" if rho else ""
        lines.append(
            f"  {name}: conservation rel. err mean {_fmt(cons['mean_rel_err'])} "
            f"max {_fmt(cons['max_rel_err'])}, absorbed {_fmt(cons['mean_absorbed_share'])}; "
            f"{gaps}{last}"
        )
    return lines
