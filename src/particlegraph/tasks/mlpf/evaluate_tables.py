"""The evaluation's tables: the console summary of ``mlpf evaluate`` and the report's rows.

Pure functions of the ``metrics.json`` content (:func:`particlegraph.tasks.mlpf.evaluate.evaluate`):
the class table (efficiency and fake rate, MLPF beside the baseline), the event-level table (jets,
MET, pT and phi resolution per class) and the headline numbers with bootstrap errors.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from particlegraph.sim.elements import CLASS_NAMES
from particlegraph.tasks.mlpf import metrics as pf

#: Particle classes shown in the tables and figures: charged hadron .. muon.
SHOWN_CLASSES = pf.PARTICLE_CLASSES


def class_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Rows ``class | eff mlpf | eff baseline | fake mlpf | fake baseline`` per particle class."""
    rows = []
    for c in SHOWN_CLASSES:
        name = CLASS_NAMES[c]
        row: list[Any] = [name]
        for key in ("efficiency", "fake_rate"):
            row += [metrics.get(side, {}).get(key, {}).get(name) for side in pf.SIDES]
        rows.append(row)
    return rows


CLASS_HEADER = ["class", "eff MLPF", "eff baseline", "fake MLPF", "fake baseline"]
EVENT_HEADER = ["quantity", "MLPF", "baseline"]
_EVENT_KEYS = (
    ("jet pT resolution (IQR/median)", "jet_pt_resolution"),
    ("jet pT response (median)", "jet_pt_response"),
    ("jet matching efficiency", "jet_matching_efficiency"),
    ("MET resolution (IQR/median)", "met_resolution"),
    ("MET response (median)", "met_response"),
    ("std(MET reco - gen) [GeV]", "met_std_gev"),
)


def event_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Rows ``quantity | MLPF | baseline`` for jets and MET, then pT resolution per class."""
    rows = [
        [label] + [metrics.get(side, {}).get(key) for side in pf.SIDES]
        for label, key in _EVENT_KEYS
    ]
    diag = metrics.get("diagnostics", {})
    for c in SHOWN_CLASSES:
        name = CLASS_NAMES[c]
        for label, key in (("pT response", "pt_response"), ("pT resolution", "pt_resolution")):
            rows.append(
                [f"{label} {name}"]
                + [metrics.get(side, {}).get(key, {}).get(name) for side in pf.SIDES]
            )
        rows.append(
            [f"phi resolution {name} [rad]"]
            + [
                diag.get(side, {}).get("classes", {}).get(name, {}).get("phi_resolution")
                for side in pf.SIDES
            ]
        )
    return rows


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table with aligned columns (floats with 4 decimals, None as '-')."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    text = [[str(h) for h in header]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    lines = []
    for k, r in enumerate(text):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


#: Why the charged classes read 1.0000 / 0.0000 for both algorithms (printed under the table).
CHARGED_NOTE = (
    "note: charged hadron, electron and muon read 1 by construction: a track's target is the "
    "particle that made it and the track carries the generator's electron/muon flags (as in the "
    "public Delphes sample), so the class can be read off the input; the baseline does so "
    "exactly, MLPF has to learn it (its fake rates show where it does not). The neutral classes "
    "(neutral hadron, photon) measure the reconstruction."
)


#: Quantities of the console summary's table with errors.
HEADLINE_NAMES = (
    "jet_pt_resolution/hard", "jet_pt_response/hard", "met_resolution", "met_std_gev",
    "efficiency/neutral_hadron", "fake_rate/neutral_hadron", "efficiency/photon",
    "fake_rate/photon", "pt_resolution/neutral_hadron", "pt_resolution/photon",
    "phi_resolution/charged_hadron",
)  # fmt: skip


def format_summary(metrics: Mapping[str, Any]) -> str:
    """The compact summary printed by the CLI: the class table, why charged classes are exact,
    jets and MET, then the headline numbers with bootstrap errors."""
    from particlegraph.tasks.mlpf import report

    errors = ""
    if "uncertainty" in metrics:
        errors = "\n\n" + format_table(
            report.UNCERTAINTY_HEADER, report.uncertainty_rows(metrics, HEADLINE_NAMES)
        )
    return (
        f"events: {metrics.get('events')}\n"
        + format_table(CLASS_HEADER, class_rows(metrics))
        + "\n"
        + textwrap.fill(CHARGED_NOTE, width=100, subsequent_indent="      ")
        + "\n\n"
        + format_table(EVENT_HEADER, event_rows(metrics))
        + errors
    )
