"""Write an :class:`~particlegraph.tasks.mlpf.evaluate_result.Evaluation` into an output folder.

:func:`write_evaluation` computes nothing: the figures (:mod:`.evaluate_figures`) draw the
arrays of :func:`~particlegraph.tasks.mlpf.evaluate_result.figure_data`, the tables show
``metrics``::

    OUT/metrics.json          {"mlpf": {...}, "baseline": {...}, "gen": {...}, "events": K, ...}
    OUT/evaluation/*.png      confusion matrices, efficiency / fake rate vs pT and eta, response
                              per class, jets, MET, multiplicity, diagnostics, operating point,
                              loss curves (mplhep CMS style)
    OUT/report/*.json         the stored stages of the page (training, evaluation, definitions)
    OUT/index.html            summary tables and every plot (:mod:`particlegraph.report.run_index`)

``OUT`` is the run folder by default (``mlpf evaluate --out`` names another).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from particlegraph.atomic import write_json
from particlegraph.report.html import ReportSection, save_stage
from particlegraph.tasks.mlpf import report
from particlegraph.tasks.mlpf.evaluate_figures import (
    diagnostics_figures,
    make_figures,
    training_section,
)
from particlegraph.tasks.mlpf.evaluate_result import EVAL_DIR, Evaluation
from particlegraph.tasks.mlpf.evaluate_tables import (
    CHARGED_NOTE,
    CLASS_HEADER,
    EVENT_HEADER,
    SHOWN_CLASSES,
    event_rows,
)

PathLike = str | os.PathLike[str]


# --- the writer ------------------------------------------------------------------------------


def table_sections(metrics: Mapping[str, Any]) -> list[ReportSection]:
    """The report's tables: rates per class, headline numbers with errors, event-level metrics."""
    note = CHARGED_NOTE.removeprefix("note: ")
    return [
        ReportSection(
            "Efficiency and fake rate per class",
            rows=report.rate_rows(metrics, SHOWN_CLASSES),
            header=CLASS_HEADER,
            text=f"{metrics['events']} events; value \u00b1 binomial standard error (passed/total). "
            + note[0].upper()
            + note[1:],
            links=report.definition_links("efficiency", "fake rate", "charged classes"),
        ),
        ReportSection(
            "Headline numbers with bootstrap errors",
            rows=report.uncertainty_rows(metrics),
            header=report.UNCERTAINTY_HEADER,
            text=f"{metrics['events']} events; value \u00b1 bootstrap standard deviation over "
            "events; the difference is paired (same replicas).",
            links=report.definition_links("bootstrap", "jets and MET", doc="evaluation.md"),
        ),
        ReportSection(
            "Event-level metrics",
            rows=event_rows(metrics),
            header=EVENT_HEADER,
            links=report.definition_links("jets and MET", doc="evaluation.md"),
        ),
    ]


def write_evaluation(
    result: Evaluation, out: PathLike, *, figures: bool = True, title: str | None = None
) -> Path:
    """Write ``metrics.json``, the PNGs under ``evaluation/`` and ``index.html`` into ``out``.

    Args:
        result: what the evaluation computed.
        out: the output folder (created if needed; every file is written atomically).
        figures: draw the PNGs (needs ``result.figures``); False: metrics and tables only.
        title: the page title (default ``MLPF run: <folder name>``).

    Returns:
        The path of ``index.html``.
    """
    out = Path(out)
    out_dir = out / EVAL_DIR
    write_json(out / "metrics.json", result.metrics)
    fd = result.figures if figures else None
    sections = table_sections(result.metrics)
    if fd is not None:
        sections += report.with_captions(make_figures(fd, out_dir))
        if "diagnostics" in result.metrics:
            diag = result.metrics["diagnostics"]
            sections += diagnostics_figures(diag, result.operating_point, out_dir)
        train = training_section(result.history, out_dir)
        if train is not None:
            save_stage(out, "training", [train._replace(captions=report.EVALUATION_CAPTIONS)])
    return report.write_run_page(out, "evaluation", sections, title, files=["metrics.json"])
