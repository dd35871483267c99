"""Findings table and the two claims, on hand-filled accumulators."""

from __future__ import annotations

import numpy as np

from particlegraph.explain.aggregate import FIXED, RelevanceStudy
from particlegraph.sim.elements import CLASS_NAMES
from particlegraph.tasks.mlpf.explain_study import study_spec, typed_names
from particlegraph.tasks.mlpf.findings import check_claims, findings_html, findings_table

OUTPUTS = ("class:electron", "class:neutral_hadron")
TYPED = typed_names()


def _study(electron_share: float, eta_outer_share: float, electrons: int = 40) -> RelevanceStudy:
    """Every element of a cell has the same shares: electron_share on track:is_gen_electron
    (the rest on track:pt), eta_outer_share on track:eta_outer (the rest on tower:E)."""
    acc = RelevanceStudy(study_spec(OUTPUTS, num_neighbours=2))
    e, nh = CLASS_NAMES.index("electron"), CLASS_NAMES.index("neutral_hadron")
    cells = [(0, e, electrons, {"track:is_gen_electron": electron_share,
                                "track:pt": 1 - electron_share}),
             (1, nh, 500, {"track:eta_outer": eta_outer_share, "tower:E": 1 - eta_outer_share})]  # fmt: skip
    for o, c, n, shares in cells:
        acc.arrays["count"][o, c, 0] = n
        acc.arrays["boot_count"][:, o, c, 0] = n
        for name, share in shares.items():
            f = TYPED.index(name)
            acc.arrays["abs_share"][o, c, 0, f] = round(share * n * FIXED)
            acc.arrays["boot_abs_share"][:, o, c, 0, f] = round(share * n * FIXED)
        acc.arrays["rank_share"][o, c, 0, 0] = round(n * FIXED)  # all relevance on the element
    return acc


def test_claims_confirmed_rejected_undetermined() -> None:
    claims = check_claims(_study(0.6, 0.001), TYPED)
    assert [c["verdict"] for c in claims] == ["confirmed", "confirmed"]
    assert claims[0]["rank"] == 1 and abs(claims[0]["share"] - 0.6) < 1e-9
    assert claims[0]["top_features"][0] == "track:is_gen_electron"
    # a small share is not "high relevance"; 5 % on eta_outer is not "irrelevant"
    claims = check_claims(_study(0.03, 0.05), TYPED)
    assert [c["verdict"] for c in claims] == ["not confirmed", "not confirmed"]
    assert claims[0]["rank"] == 2  # track:pt carries 97 %
    claims = check_claims(_study(0.6, 0.001, electrons=3), TYPED)
    assert claims[0]["verdict"] == "undetermined" and claims[1]["verdict"] == "confirmed"


def test_table_rows_and_html() -> None:
    acc = _study(0.6, 0.001)
    rows = findings_table(acc, TYPED)
    assert [(r["output"], r["class"], r["split"]) for r in rows] == [
        ("class:electron", "electron", "correct"),
        ("class:neutral_hadron", "neutral_hadron", "correct"),
    ]
    top = rows[1]["features"][0]
    assert top["feature"] == "tower:E" and abs(top["share"] - 0.999) < 1e-9 and top["sd"] < 1e-12
    assert rows[0]["ranks"][0]["rank"] == "self" and rows[0]["ranks"][0]["share"] == 1.0
    summary = {"events": 1, "elements": 540, "accuracy": 1.0, "bootstrap_replicas": 32,
               "claims": check_claims(acc, TYPED), "findings": rows}  # fmt: skip
    page = findings_html(summary)
    assert page.count("confirmed") == 2 and "track:is_gen_electron 60.0" in page
    assert np.isclose(acc.mean("abs_share")[0, CLASS_NAMES.index("electron"), 0].sum(), 1.0)
