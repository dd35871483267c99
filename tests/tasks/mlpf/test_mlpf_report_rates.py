"""MLPF report rows: binomial errors and counts (moved out of the engine's report tests)."""

from __future__ import annotations


def test_mlpf_rate_rows_carry_binomial_errors_and_counts():
    from particlegraph.tasks.mlpf.report import explanation_caption, format_rate, rate_rows

    cm = [[0] * 6 for _ in range(6)]
    cm[3][3], cm[3][2], cm[2][3] = 9, 1, 3  # photon: 9 of 10 found; 3 of 12 predicted are fakes
    (row,) = rate_rows({"mlpf": {"confusion_matrix": cm}, "baseline": {}}, [3])
    assert row[0] == "photon"
    assert row[1] == "0.9000 \u00b1 0.0949 (9/10)"  # sqrt(0.9 * 0.1 / 10) = 0.0949
    assert row[3] == "0.2500 \u00b1 0.1250 (3/12)"  # sqrt(0.25 * 0.75 / 12) = 0.1250
    assert row[2] == "\u2013" and format_rate(0, 0).startswith("\u2013")
    assert "neutral hadron" in explanation_caption("relmap_avg_class_neutral_hadron.png")
