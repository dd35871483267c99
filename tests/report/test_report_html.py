"""HTML report: parses, escapes text, links only images that exist."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from particlegraph.errors import DataFileError
from particlegraph.report.html import ReportSection, format_cell, write_report

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[str] = []
        self.stack: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        elif tag not in ("meta", "br"):
            self.stack.append(tag)
        self._in_td = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()
        self._in_td = False

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.cells.append(data)


def test_report_links_existing_images_and_parses(tmp_path: Path) -> None:
    plots = tmp_path / "evaluation"
    plots.mkdir()
    for name in ("a.png", "b.png"):
        (plots / name).write_bytes(PNG)
    out = write_report(
        tmp_path / "index.html",
        "MLPF <run>",
        [["charged hadron", 0.912345, None], ["jets", 3, "x<y"]],
        [
            ReportSection("Efficiency", [plots / "a.png"], "text & more"),
            ("Jets", ["evaluation/b.png"], "", [["jet res", 0.25]], ["quantity", "value"]),
        ],
        header=["class", "eff", "fake"],
    )
    text = out.read_text()
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.stack == []
    assert parser.images == ["evaluation/a.png", "evaluation/b.png"]
    for src in parser.images:
        assert (tmp_path / src).is_file()
    assert "0.25" in parser.cells
    assert "0.9123" in parser.cells and "\u2013" in parser.cells and "x<y" in parser.cells
    assert "MLPF &lt;run&gt;" in text  # escaped title


def test_missing_image_raises_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"missing\.png"):
        write_report(tmp_path / "index.html", "t", [], [("S", ["missing.png"])])
    assert not (tmp_path / "index.html").exists()


def test_format_cell() -> None:
    assert format_cell(1.0 / 3.0) == "0.3333"
    assert format_cell(None) == "\u2013"
    assert format_cell(12) == "12"


def test_images_relative_to_the_working_directory(tmp_path, monkeypatch) -> None:
    """A run directory given as a relative path (``runs/x``) must still link its plots."""
    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "x"
    (run / "evaluation").mkdir(parents=True)
    (run / "evaluation" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write_report(run / "index.html", "t", [["k", 1]], [("plots", [run / "evaluation" / "a.png"])])
    text = (run / "index.html").read_text()
    assert 'src="evaluation/a.png"' in text
