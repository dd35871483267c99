"""``report.run_index``: one call writes RUN/index.html with the config, the files and a stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from particlegraph.errors import DataFileError
from particlegraph.report.html import ReportSection
from particlegraph.report.run_index import (
    flat_rows,
    missing_targets,
    page_targets,
    write_run_index,
)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)


@dataclass(frozen=True)
class _Fit:
    epochs: int = 3
    lr: float = 0.5


@dataclass(frozen=True)
class _Cfg:
    data: str = "events.data"
    features: tuple[int, ...] = (0, 2)
    fit: _Fit = field(default_factory=_Fit)


def test_flat_rows_dot_nested_keys_and_drop_long_or_structured_lists():
    rows = flat_rows(_Cfg())
    assert rows == [["data", "events.data"], ["features", "[0, 2]"], ["fit.epochs", 3],
                    ["fit.lr", 0.5]]  # fmt: skip
    got = flat_rows({"a": {"b": None}, "scan": [{"eps": 1}], "long": list(range(9)), "ok": [1.5]})
    assert got == [["a.b", None], ["ok", "[1.5]"]]


def test_index_links_config_files_and_figures_that_exist(tmp_path):
    run = tmp_path / "run"
    (run / "figs").mkdir(parents=True)
    (run / "figs" / "loss.png").write_bytes(PNG)
    (run / "history.json").write_text("[]")
    page = write_run_index(
        run, "Toy run: run", "training",
        [ReportSection("Curves", ["figs/loss.png"], links=[("history", "history.json")])],
        config=_Cfg(), files=["history.json", "absent.json"],
    )  # fmt: skip
    assert page == run / "index.html"
    text = page.read_text()
    assert "Configuration" in text and "fit.lr" in text and "Files" in text
    targets = sorted(p.relative_to(run).as_posix() for p in page_targets(page))
    # the history link twice (Files + the section), the figure as link and image
    assert targets == ["figs/loss.png", "figs/loss.png", "history.json", "history.json"]
    assert "absent.json" not in text
    assert missing_targets(page) == []
    # a second stage adds its part; the first stays
    (run / "eval.png").write_bytes(PNG)
    write_run_index(run, "Toy run: run", "evaluation", [ReportSection("Eval", ["eval.png"])])
    text = page.read_text()
    assert text.index("Training") < text.index("Evaluation") and "loss.png" in text
    # a page whose figure was removed afterwards: missing_targets names it
    (run / "eval.png").unlink()
    page.write_text(text)
    assert missing_targets(page) == [run / "eval.png"] * 2  # the link and the image


def test_missing_link_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(DataFileError, match=r"metrics\.json does not exist"):
        write_run_index(run, "t", "evaluation", [ReportSection("m", links=[("m", "metrics.json")])])
    assert list(run.iterdir()) == []
