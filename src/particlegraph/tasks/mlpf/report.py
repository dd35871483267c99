"""The MLPF run report: captions, definitions and uncertainties for ``RUN/index.html``.

Each stage of a run adds its part with :func:`write_run_page` (the engine's
:func:`particlegraph.report.run_index.write_run_index`, as every task), so after ``mlpf demo`` (train -> evaluate -> explain)
one page holds the training curves, the evaluation and the explanation, every figure linked and
captioned with what it shows. Numbers link to their definitions at the bottom of the page (and
to ``docs/`` when the report is written from a source checkout).

Efficiencies and fake rates in the tables carry the binomial standard error
``sqrt(p (1 - p) / n)`` and the counts ``k/n`` they come from (from the confusion matrix); the
headline table carries bootstrap errors over events and paired MLPF - baseline differences
(:mod:`.uncertainty`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from particlegraph.report.html import ReportSection, save_stage
from particlegraph.report.run_index import write_run_index
from particlegraph.sim.elements import CLASS_NAMES

PathLike = str | os.PathLike[str]

#: What each evaluation figure shows, by file name.
EVALUATION_CAPTIONS = {
    "confusion.png": "Confusion matrices of MLPF and the baseline: rows true class (ygen), "
    "columns predicted class, normalised per row, so the diagonal is the efficiency.",
    "efficiency_vs_pt.png": "Efficiency per class vs gen pT: fraction of elements of true class c "
    "predicted as c; error bars are binomial standard errors, n in the legend = entries.",
    "efficiency_vs_eta.png": "Efficiency per class vs gen eta, with binomial error bars.",
    "fake_rate_vs_pt.png": "Fake rate per class vs reco pT: fraction of elements predicted as c "
    "whose true class is not c, with binomial error bars.",
    "fake_rate_vs_eta.png": "Fake rate per class vs reco eta, with binomial error bars.",
    "response_pt.png": "pT response per class: distribution of pT_reco / pT_gen on elements where "
    "gen and reco are both of the class; the legend gives the median.",
    "response_energy.png": "Energy response per class: E_reco / E_gen, as for pT.",
    "response_eta.png": "Eta difference per class: eta_reco - eta_gen.",
    "jets.png": "Anti-kT R=0.4 jets: pT response of matched jets (left), jet pT spectra (middle) "
    "and the resolution IQR/median vs gen jet pT (right).",
    "met.png": "Missing transverse momentum: MET_reco / MET_gen (left) and MET_reco - MET_gen "
    "in GeV (right) per event.",
    "multiplicity.png": "Particles per event, reco vs gen: all particles and per class; the "
    "diagonal is perfect reconstruction.",
    "loss.png": "Training and validation loss per epoch.",
}

_EXPLAIN_PATTERNS = (
    (r"relmap_single_(.+)\.png", "Relevance map of output {0} for one element of each true class in "
     "the first event: the element's own 12 feature relevances (row 'self') and those of its most "
     "relevant neighbours."),
    (r"relmap_avg_(.+)\.png", "Relevance maps of output {0} averaged per true class (rows), split "
     "into correct and wrong predictions, each element normalised to unit total relevance; the "
     "number of elements is in each panel."),
    (r"feature_hist_(.+)\.png", "Per true class: histogram over elements of each input feature's "
     "share of the relevance of output {0}."),
    (r"event_display\.png", "Eta-phi display of the first event: marker size and colour = element "
     "relevance (towers circles, tracks triangles), lines = relevance of (target, source) pairs, "
     "red positive, blue negative; right: one element (star)."),
    (r"flipping_element\.png", "Element flipping: the explained output as the most relevant "
     "elements are removed first, against a random order (a larger gap = a more faithful "
     "explanation)."),
    (r"flipping_feature\.png", "Feature flipping: the same with input features instead of elements."),
    (r"randomization\.png", "Model-randomisation test: rank correlation of the relevance with "
     "the trained model's as layers are re-initialised from the top; it should fall."),
)  # fmt: skip

#: Definitions shown at the bottom of the page; sections link to them by anchor.
DEFINITIONS = {
    "efficiency": "Efficiency of class c: elements whose true class (ygen) is c and that are "
    "predicted as c, divided by the elements whose true class is c. Binomial standard error "
    "sqrt(p (1 - p) / n) with n the elements of true class c.",
    "fake rate": "Fake rate of class c: elements predicted as c whose true class is not c, "
    "divided by the elements predicted as c (n in the error).",
    "response and resolution": "Response: median of reco / gen (pT, energy) on elements where "
    "both are of the class; resolution: interquartile range / median of the same ratio. For eta "
    "the difference reco - gen and its interquartile range.",
    "jets and MET": "Anti-kT R = 0.4 jets (fastjet) from gen and reco particles, matched "
    "greedily within Delta R < 0.2; MET = |vector sum of particle pT| per event.",
    "bootstrap": "Errors of the headline numbers: the events are resampled with replacement "
    "(200 seeded replicas); each number is recomputed on every replica and its error is the "
    "standard deviation over replicas. MLPF - baseline differences are computed on the same "
    "replicas (paired). Better: the improvement exceeds 2 sigma; at least as good: MLPF is not "
    "worse by more than 1 sigma. Responses are compared by their distance to 1.",
    "relevance": "Layer-wise relevance propagation (LRP) distributes an output value over the "
    "input features of every element in its receptive field; relevances sum to the explained "
    "output up to the share absorbed by biases (conservation).",
    "charged classes": "Charged hadrons, electrons and muons come from tracks, whose target is "
    "the particle that made them and which carry the generator's electron/muon flags: the class "
    "can be read off the input, so efficiencies read 1; the baseline does so exactly, MLPF has to "
    "learn it (its fake rates show where it does not). Neutral hadrons and photons measure the "
    "reconstruction.",
}


def _anchor(title: str) -> str:
    return "#" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def docs_path(name: str) -> Path | None:
    """``docs/<name>`` of the source checkout this module runs from, when there is one."""
    path = Path(__file__).resolve().parents[4] / "docs" / name
    return path if path.is_file() else None


def definition_links(*names: str, doc: str | None = None) -> list[tuple[str, str]]:
    """``(text, href)`` links to the definitions on the page, plus ``docs/<doc>`` if present."""
    links = [(f"definition: {n}", _anchor(n)) for n in names]
    path = docs_path(doc) if doc else None
    if path is not None:
        links.append((f"docs/{doc}", str(path)))
    return links


def binomial(k: int, n: int) -> tuple[float | None, float | None]:
    """``(p, sqrt(p (1 - p) / n))`` for ``k`` passes of ``n`` trials; ``(None, None)`` if n = 0."""
    if n <= 0:
        return None, None
    p = k / n
    return p, math.sqrt(p * (1.0 - p) / n)


def format_rate(k: int, n: int) -> str:
    """``0.9876 ± 0.0031 (k/n)``, or an en dash without entries."""
    p, err = binomial(k, n)
    if p is None or err is None:
        return "\u2013 (0/0)"
    return f"{p:.4f} \u00b1 {err:.4f} ({k}/{n})"


def rate_rows(metrics: Mapping[str, Any], classes: Sequence[int]) -> list[list[str]]:
    """``class | eff MLPF | eff baseline | fake MLPF | fake baseline`` with errors and counts."""
    rows = []
    for c in classes:
        row = [CLASS_NAMES[c]]
        cells: dict[str, list[str]] = {"eff": [], "fake": []}
        for side in ("mlpf", "baseline"):
            cm = metrics.get(side, {}).get("confusion_matrix")
            if not cm:
                cells["eff"].append("\u2013")
                cells["fake"].append("\u2013")
                continue
            diag = int(cm[c][c])
            true_c = int(sum(cm[c]))
            pred_c = int(sum(r[c] for r in cm))
            cells["eff"].append(format_rate(diag, true_c))
            cells["fake"].append(format_rate(pred_c - diag, pred_c))
        rows.append(row + cells["eff"] + cells["fake"])
    return rows


def with_captions(sections: Sequence[ReportSection]) -> list[ReportSection]:
    """The evaluation sections with :data:`EVALUATION_CAPTIONS` and links to the definitions."""
    links = {
        "Confusion matrices": definition_links("efficiency", doc="evaluation.md"),
        "Efficiency and fake rate": definition_links(
            "efficiency", "fake rate", "charged classes", doc="evaluation.md"
        ),
        "Response per class": definition_links("response and resolution", doc="evaluation.md"),
        "Jets, MET and multiplicity": definition_links("jets and MET", doc="evaluation.md"),
    }
    return [
        sec._replace(captions=EVALUATION_CAPTIONS, links=sec.links or links.get(sec.title, ()))
        for sec in sections
    ]


def explanation_caption(name: str) -> str:
    """What an explanation figure shows, from its file name."""
    for pattern, text in _EXPLAIN_PATTERNS:
        m = re.fullmatch(pattern, name)
        if m:
            return text.format(*(g.replace("_", " ") for g in m.groups()))
    return name


def explanation_sections(out_dir: PathLike, summary: Mapping[str, Any]) -> list[ReportSection]:
    """Report sections of an explain run: every PNG it wrote, grouped and captioned."""
    out_dir = Path(out_dir)
    pngs = [out_dir / f for f in summary.get("files", []) if str(f).endswith(".png")]
    pngs = [p for p in pngs if p.is_file()]
    groups = (
        ("Relevance maps", ("relmap_single_", "relmap_avg_")),
        ("Feature relevance per class", ("feature_hist_",)),
        ("Event display", ("event_display",)),
        ("Faithfulness", ("flipping_", "randomization")),
    )
    text = (
        f"LRP ({summary.get('rule', '?')} rule) on {summary.get('events', '?')} event(s), "
        f"{summary.get('elements', '?')} elements, outputs: "
        + ", ".join(map(str, summary.get("outputs", {})))
        + "."
    )
    sections = []
    for i, (title, prefixes) in enumerate(groups):
        images = [p for p in pngs if p.name.startswith(prefixes)]
        if not images:
            continue
        sections.append(
            ReportSection(
                title,
                images,
                text if i == 0 else "",
                captions=[explanation_caption(p.name) for p in images],
                links=definition_links("relevance", doc="explain_figures.md"),
            )
        )
    cons_rows = [
        [name, e["conservation"].get("mean_rel_err"), e["conservation"].get("max_rel_err")]
        for name, e in summary.get("outputs", {}).items()
        if isinstance(e, Mapping) and "conservation" in e
    ]
    if cons_rows:
        sections.append(
            ReportSection(
                "Conservation",
                text="Relative error of sum(relevance) vs the explained output.",
                rows=cons_rows,
                header=["output", "mean rel. error", "max rel. error"],
            )
        )
    return sections


def definitions_sections() -> list[ReportSection]:
    """One small section per definition (their titles are the link anchors)."""
    return [ReportSection(name, text=text) for name, text in DEFINITIONS.items()]


def write_run_report(run_dir: PathLike, title: str | None = None) -> Path:
    """Store the definitions and re-render ``RUN/index.html`` from every stored stage."""
    return write_run_page(run_dir, "definitions", definitions_sections(), title)


def write_run_page(
    run_dir: PathLike,
    stage: str,
    sections: Sequence[ReportSection],
    title: str | None = None,
    *,
    files: Sequence[str] = (),
) -> Path:
    """Add ``stage`` of an MLPF run to ``RUN/index.html`` through the engine's
    :func:`particlegraph.report.run_index.write_run_index`, with the definitions its links point
    at; ``files`` (relative to ``run_dir``) are linked when they exist. Returns the page's path."""
    run_dir = Path(run_dir)
    if stage != "definitions":
        save_stage(run_dir, "definitions", definitions_sections())
    title = title or f"MLPF run: {run_dir.name}"
    return write_run_index(run_dir, title, stage, sections, files=files)


def report_explanation(run_dir: PathLike, out_dir: PathLike, summary: Mapping[str, Any]) -> Path:
    """Add the explanation part to the run's report (called at the end of ``explain``)."""
    return write_run_page(run_dir, "explanation", explanation_sections(out_dir, summary))


#: Header of the table of headline numbers with bootstrap errors.
UNCERTAINTY_HEADER = ["quantity", "MLPF", "baseline", "MLPF - baseline", "verdict"]


def _pm(entry: Mapping[str, Any] | None, digits: int = 4) -> str:
    if not entry or entry.get("value") is None:
        return "\u2013"
    err = entry.get("error")
    return f"{entry['value']:.{digits}f}" + ("" if err is None else f" \u00b1 {err:.{digits}f}")


def verdict(comparison: Mapping[str, Any] | None) -> str:
    """``better`` (beyond 2 sigma), ``as good`` (within 1 sigma or better), ``worse`` or a dash."""
    if not comparison or comparison.get("at_least_as_good") is None:
        return "\u2013"
    if comparison.get("better"):
        return "better (> 2 sigma)"
    return "at least as good (< 1 sigma worse)" if comparison["at_least_as_good"] else "worse"


def uncertainty_rows(
    metrics: Mapping[str, Any], names: Sequence[str] | None = None
) -> list[list[str]]:
    """Rows ``quantity | MLPF +- err | baseline +- err | difference +- err | verdict`` from
    ``metrics["uncertainty"]`` (all quantities, or those in ``names``). Responses are compared
    by ``|response - 1|``, so their difference column is that distance's difference."""
    quantities = metrics.get("uncertainty", {}).get("quantities", {})
    rows = []
    for name in names if names is not None else list(quantities):
        q = quantities.get(name)
        if q is None:
            continue
        comp = q.get("comparison")
        label = name + (" (|r - 1| compared)" if q.get("kind") == "unit" and comp else "")
        rows.append(
            [
                label,
                _pm(q.get("mlpf")),
                _pm(q.get("baseline")),
                _pm(comp.get("difference")) if comp else "\u2013",
                verdict(comp),
            ]
        )
    return rows
