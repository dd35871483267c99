"""One report per run: stages add their parts; every link and image on the page exists."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from particlegraph.report.html import ReportSection, render_run_report, save_stage

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)


class _Page(HTMLParser):
    """Collects image sources, link targets, element ids, h2 headings and figure captions."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.h2: list[str] = []
        self.captions: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"] or "")
        if tag == "a":
            self.hrefs.append(a["href"] or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")
        self._tag = tag

    def handle_data(self, data: str) -> None:
        if self._tag == "h2" and data.strip():
            self.h2.append(data.strip())
        if self._tag == "figcaption" and data.strip():
            self.captions.append(data.strip())


def check_page(html_path: Path) -> _Page:
    """Parse ``html_path``; assert every referenced file and anchor exists. Reusable for any run."""
    page = _Page()
    page.feed(html_path.read_text())
    for ref in page.srcs + page.hrefs:
        if "://" in ref:
            continue
        if ref.startswith("#"):
            assert ref[1:] in page.ids, f"dangling anchor {ref}"
        else:
            assert (html_path.parent / ref).exists(), f"{ref} does not exist"
    return page


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG)
    return path


def test_stages_render_in_order_with_captions_and_links(tmp_path):
    run = tmp_path / "run"
    docs = _png(tmp_path / "docs" / "evaluation.md")  # any existing file works as a link target
    save_stage(run, "explanation", [ReportSection("Maps", [_png(run / "explain" / "m.png")],
                                                  captions=["what the map shows"])])  # fmt: skip
    save_stage(
        run,
        "evaluation",
        [ReportSection("Rates", [_png(run / "evaluation" / "eff.png")],
                       captions={"eff.png": "efficiency vs pT"},
                       links=[("definition: efficiency", "#efficiency"), ("docs", str(docs))])],
        summary_rows=[["photon", "0.9 \u00b1 0.1 (9/10)"]], header=["class", "eff"],
    )  # fmt: skip
    save_stage(run, "definitions", [ReportSection("efficiency", text="k / n")])
    page = check_page(render_run_report(run, "t"))
    assert page.h2 == ["Evaluation", "Explanation", "Definitions"]
    assert page.captions == ["efficiency vs pT", "what the map shows"]
    assert "#efficiency" in page.hrefs
    # every image is also a link to itself (click to enlarge)
    assert set(page.srcs) <= set(page.hrefs)


def test_stage_with_removed_figures_becomes_a_note(tmp_path):
    run = tmp_path / "run"
    img = _png(run / "explain" / "m.png")
    save_stage(run, "explanation", [ReportSection("Maps", [img])])
    save_stage(run, "evaluation", [ReportSection("Table", rows=[["a", 1]], header=["k", "v"])])
    img.unlink()  # a re-run deleted the old explanation
    html = render_run_report(run, "t")
    check_page(html)
    assert "figures were removed" in html.read_text()
