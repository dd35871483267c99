"""The findings of an MLPF relevance study: a table with bootstrap uncertainties, two claims.

For an output o, a true class c and a split (correct / wrong prediction), the *share* of a typed
feature (``track:is_gen_electron``, ``tower:E_em``, ...) is the mean over elements of
``sum_{s in group} |R[t, s, f]| / sum_{s,f} |R[t, s, f]|`` (the shares of an element sum to 1);
the share of a neighbour rank is the |R| share of the element itself (``self``), of its k-th
most relevant neighbour (``#k``) or of all further ones (``rest``). Uncertainties are the
standard deviation over Poisson-bootstrap replicas of the events.

The two claims read from such maps in the MLPF explainability study (Mokhtar et al.,
arXiv:2111.12840) are checked on our sample:

1. "correctly classified electrons put high relevance on is_gen_electron": for the electron
   score of correctly classified true electrons, ``track:is_gen_electron`` is among the
   3 features with the largest share and its share exceeds the uniform share 1/24 by more
   than 2 sigma -> ``confirmed``; ``not confirmed`` otherwise;
2. "eta_outer is irrelevant for neutral hadrons": for the neutral-hadron score of correctly
   classified true neutral hadrons, the share of ``track:eta_outer`` + 2 sigma is below 1 %
   -> ``confirmed``.

Fewer than :data:`MIN_ELEMENTS` such elements give ``undetermined``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.explain.aggregate import RelevanceStudy
from particlegraph.sim.elements import CLASS_NAMES

#: Elements needed before a claim is judged.
MIN_ELEMENTS = 10
#: Features and ranks listed per row of the table.
TOP = 3
SPLITS = ("correct", "wrong")


def _rank_names(k: int) -> list[str]:
    return ["self", *(f"#{i}" for i in range(1, k + 1)), "rest"]


def findings_table(
    acc: RelevanceStudy, typed: Sequence[str], top: int = TOP
) -> list[dict[str, Any]]:
    """One row per output x true class x split with elements: top features and ranks."""
    share, share_sd = acc.mean("abs_share"), acc.boot_std("abs_share")
    rank, rank_sd = acc.mean("rank_share"), acc.boot_std("rank_share")
    ranks = _rank_names(acc.spec.num_neighbours)
    rows = []
    for o, name in enumerate(acc.spec.outputs):
        for c, cname in enumerate(CLASS_NAMES):
            for w, split in enumerate(SPLITS):
                n = int(acc.arrays["count"][o, c, w])
                if n == 0:
                    continue
                fo = np.argsort(-share[o, c, w], kind="stable")[:top]
                ro = np.argsort(-rank[o, c, w], kind="stable")[:top]
                rows.append({
                    "output": name, "class": cname, "split": split, "elements": n,
                    "features": [{"feature": typed[i], "share": float(share[o, c, w, i]),
                                  "sd": float(share_sd[o, c, w, i])} for i in fo],
                    "ranks": [{"rank": ranks[i], "share": float(rank[o, c, w, i]),
                               "sd": float(rank_sd[o, c, w, i])} for i in ro],
                })  # fmt: skip
    return rows


def _feature_stat(
    acc: RelevanceStudy, typed: Sequence[str], output: str, cls: str, feature: str
) -> dict[str, Any] | None:
    if output not in acc.spec.outputs:
        return None
    o, c, f = acc.spec.outputs.index(output), CLASS_NAMES.index(cls), list(typed).index(feature)
    share = acc.mean("abs_share")[o, c, 0]
    order = np.argsort(-share, kind="stable")
    return {
        "output": output, "class": cls, "split": "correct", "feature": feature,
        "elements": int(acc.arrays["count"][o, c, 0]), "share": float(share[f]),
        "sd": float(acc.boot_std("abs_share")[o, c, 0, f]),
        "rank": int(np.flatnonzero(order == f)[0]) + 1, "of": len(typed),
        "top_features": [typed[i] for i in order[:TOP]],
    }  # fmt: skip


def check_claims(acc: RelevanceStudy, typed: Sequence[str]) -> list[dict[str, Any]]:
    """The two quoted findings (module docstring), each with a verdict and its numbers."""
    uniform = 1.0 / len(typed)
    out = []
    stat = _feature_stat(acc, typed, "class:electron", "electron", "track:is_gen_electron")
    claim = "correctly classified electrons put high relevance on is_gen_electron"
    if stat is None or stat["elements"] < MIN_ELEMENTS:
        verdict = "undetermined"
    elif stat["rank"] <= TOP and stat["share"] - 2 * stat["sd"] > uniform:
        verdict = "confirmed"
    else:
        verdict = "not confirmed"
    out.append({"claim": claim, "verdict": verdict, "criterion":
                f"rank <= {TOP} and share - 2 sd > 1/{len(typed)}", **(stat or {})})  # fmt: skip
    stat = _feature_stat(acc, typed, "class:neutral_hadron", "neutral_hadron", "track:eta_outer")
    claim = "eta_outer is irrelevant for neutral hadrons"
    if stat is None or stat["elements"] < MIN_ELEMENTS:
        verdict = "undetermined"
    elif stat["share"] + 2 * stat["sd"] < 0.01:
        verdict = "confirmed"
    else:
        verdict = "not confirmed"
    out.append({"claim": claim, "verdict": verdict, "criterion": "share + 2 sd < 0.01",
                **(stat or {})})  # fmt: skip
    return out


def _fmt(items: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{html.escape(str(i[key]))} {100 * i['share']:.1f}&plusmn;{100 * i['sd']:.1f}%"
                     for i in items)  # fmt: skip


def findings_rows(summary: dict[str, Any], split: str | None = None) -> list[list[Any]]:
    """Plain table rows (output, class, split, elements, top features, top ranks); all splits
    or only ``split`` (``correct`` or ``wrong``)."""
    return [
        [r["output"], r["class"], r["split"], r["elements"],
         "; ".join(f"{i['feature']} {100 * i['share']:.1f}+-{100 * i['sd']:.1f}%" for i in r["features"]),
         "; ".join(f"{i['rank']} {100 * i['share']:.1f}+-{100 * i['sd']:.1f}%" for i in r["ranks"])]
        for r in summary["findings"] if split in (None, r["split"])
    ]  # fmt: skip


def findings_html(summary: dict[str, Any]) -> str:
    """A stand-alone HTML page: the claims and the findings table (correct predictions)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>MLPF relevance findings</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.25em .6em;font-size:.9em}th{background:#eee}"
        "</style></head><body>",
        f"<h1>Relevance findings</h1><p>{summary['events']} events, {summary['elements']} "
        f"elements, element accuracy {100 * summary['accuracy']:.1f} %; shares are mean |R| "
        f"shares &plusmn; bootstrap sd ({summary['bootstrap_replicas']} replicas).</p>",
        "<h2>Claims</h2><table><tr><th>claim</th><th>verdict</th><th>evidence</th></tr>",
    ]  # fmt: skip
    for c in summary["claims"]:
        ev = (f"{c['feature']}: share {100 * c['share']:.2f}&plusmn;{100 * c['sd']:.2f} %, rank "
              f"{c['rank']}/{c['of']}, {c['elements']} elements ({esc(c['criterion'])})"
              if "share" in c else "no such elements")  # fmt: skip
        parts.append(f"<tr><td>{esc(c['claim'])}</td><td><b>{esc(c['verdict'])}</b></td>"
                     f"<td>{ev}</td></tr>")  # fmt: skip
    parts.append("</table><h2>Correct predictions: most relevant features and neighbour ranks"
                 "</h2><table><tr><th>output</th><th>true class</th><th>elements</th>"
                 "<th>top features</th><th>top ranks</th></tr>")  # fmt: skip
    for r in summary["findings"]:
        if r["split"] != "correct":
            continue
        parts.append(f"<tr><td>{esc(r['output'])}</td><td>{esc(r['class'])}</td>"
                     f"<td>{r['elements']}</td><td>{_fmt(r['features'], 'feature')}</td>"
                     f"<td>{_fmt(r['ranks'], 'rank')}</td></tr>")  # fmt: skip
    parts += ["</table></body></html>", ""]
    return "\n".join(parts)


def findings_section(study_dir: str | Path) -> Any:
    """A :class:`~particlegraph.report.html.ReportSection` with the claims and the findings
    table of ``study_dir/summary.json`` (e.g. ``RUN/explain_study``), or None without a study.

    For a run report: ``sections.append(findings_section(run / "explain_study"))``.
    """
    from particlegraph.report.html import ReportSection

    path = Path(study_dir) / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    claims = "; ".join(f"{c['claim']}: {c['verdict']}" for c in summary["claims"])
    text = (f"Relevance study of {summary['events']} events, all outputs (details: "
            f"{Path(study_dir).name}/findings.html). Claims: {claims}. Shares are mean |R| "
            "shares +- bootstrap sd.")  # fmt: skip
    rows = findings_rows(summary, "correct") or findings_rows(summary)
    return ReportSection(
        "Relevance findings", (), text, rows,
        ["output", "true class", "prediction", "elements", "top features", "top neighbour ranks"],
    )  # fmt: skip
