"""A small, self-contained HTML report: title, summary table, sections of captioned figures.

The page embeds its own CSS and links PNGs by paths relative to the HTML file, so the run
directory can be copied or zipped and opened in any browser. Every linked image must exist
when the report is written; a missing one raises :class:`DataFileError`.

One report per run: each stage of a run (training, evaluation, explanation) stores its sections
with :func:`save_stage` in ``RUN/report/<stage>.json``, and :func:`render_run_report` writes
``RUN/index.html`` from every stage found, in the order of :data:`STAGES`, so the page grows as
the stages run and a stage that runs again replaces only its own part. A stage whose figures
were deleted since (a re-run in progress) is left out with a note.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from particlegraph.atomic import write_text
from particlegraph.errors import DataFileError


class ReportSection(NamedTuple):
    """One section of the report.

    Attributes:
        title: heading.
        images: PNG paths, absolute or relative to the report's folder.
        text: paragraph under the heading (plain text, escaped).
        rows: an optional table of this section (cells formatted with :func:`format_cell`).
        header: column names of that table.
        captions: what each image shows, by position (a list) or by file name (a dict);
            images without one are captioned by their file name.
        links: ``(text, href)`` pairs shown under the text, e.g. the definitions of the numbers
            (a relative path, resolved against the report's folder, or a URL).
    """

    title: str
    images: Sequence[str | os.PathLike[str]] = ()
    text: str = ""
    rows: Sequence[Sequence[Any]] = ()
    header: Sequence[str] | None = None
    captions: Sequence[str] | Mapping[str, str] = ()
    links: Sequence[tuple[str, str]] = ()

    def caption(self, index: int, image: str | os.PathLike[str]) -> str:
        """Caption of image ``index`` (``image``): from :attr:`captions`, else the file name."""
        name = Path(image).name
        if isinstance(self.captions, Mapping):
            return self.captions.get(name, name)
        if index < len(self.captions) and self.captions[index]:
            return self.captions[index]
        return name


#: Stages of a run in the order their parts appear in ``RUN/index.html``.
STAGES = ("training", "evaluation", "explanation", "explanation_study", "definitions")
#: Folder of a run that holds the stored stage sections.
STAGE_DIR = "report"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
table.summary { border-collapse: collapse; margin: 1em 0; }
table.summary th, table.summary td { border: 1px solid #bbb; padding: .3em .8em; text-align: right; }
table.summary th { background: #eee; }
table.summary td:first-child, table.summary th:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; max-width: 680px; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
h2.stage { margin-top: 2em; border-bottom: 1px solid #999; }
nav a { margin-right: 1em; }
p.links a { margin-right: 1em; }
.meta { color: #777; font-size: .85em; }
"""


def _page_head(title: str) -> list[str]:
    """Opening lines of a report page: doctype, head with the style sheet, title, timestamp."""
    esc = html.escape
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">written {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC by particlegraph</p>',
    ]


def format_cell(value: Any) -> str:
    """Text of one table cell: floats with 4 significant digits, None as an en dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _href(target: str, folder: Path) -> str:
    """A link target: URLs and anchors unchanged, paths made relative to ``folder``."""
    if "://" in target or target.startswith(("#", "mailto:")):
        return target
    path = Path(target)
    full = path if path.is_absolute() or path.exists() else folder / path
    try:
        return Path(os.path.relpath(full.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return full.as_posix()


def _image_src(image: str | os.PathLike[str], folder: Path) -> str:
    path = Path(image)
    # A relative path may be relative to the working directory (as the workflows pass them) or
    # to the report's folder; take whichever exists, the working directory first.
    full = path if path.is_absolute() or path.is_file() else folder / path
    if not full.is_file():
        raise DataFileError(f"report image {full} does not exist; write the plot before the report")
    rel = os.path.relpath(full.resolve(), folder.resolve())
    return Path(rel).as_posix()


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None) -> list[str]:
    if not rows:
        return []
    esc = html.escape
    parts = ['<table class="summary">']
    if header:
        cells = "".join(f"<th>{esc(str(h))}</th>" for h in header)
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = "".join(f"<td>{esc(format_cell(c))}</td>" for c in row)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return parts


def _anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def _sections_html(
    sections: Sequence[ReportSection | tuple[Any, ...]], folder: Path, level: int
) -> list[str]:
    esc = html.escape
    parts: list[str] = []
    for raw in sections:
        sec = raw if isinstance(raw, ReportSection) else ReportSection(*raw)
        parts.append(f'<h{level} id="{esc(_anchor(sec.title))}">{esc(sec.title)}</h{level}>')
        if sec.text:
            parts.append(f"<p>{esc(sec.text)}</p>")
        if sec.links:
            links = " ".join(
                f'<a href="{esc(_href(href, folder))}">{esc(text)}</a>' for text, href in sec.links
            )
            parts.append(f'<p class="links">{links}</p>')
        parts += _table(sec.rows, sec.header)
        if sec.images:
            parts.append('<div class="figures">')
            for i, image in enumerate(sec.images):
                src = _image_src(image, folder)
                cap = sec.caption(i, image)
                parts.append(
                    f'<figure><a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(cap)}"></a>'
                    f"<figcaption>{esc(cap)}</figcaption></figure>"
                )
            parts.append("</div>")
    return parts


def render_report(
    folder: str | os.PathLike[str],
    title: str,
    summary_rows: Sequence[Sequence[Any]],
    sections: Sequence[ReportSection | tuple[Any, ...]],
    *,
    header: Sequence[str] | None = None,
) -> str:
    """HTML text of the report whose images are resolved against ``folder``.

    Args:
        folder: folder the HTML file will live in.
        title: page title and top heading.
        summary_rows: rows of the summary table; cells are formatted with :func:`format_cell`.
        sections: :class:`ReportSection` or ``(title, images[, text])`` tuples.
        header: column names of the summary table (no header row when None).
    """
    folder = Path(folder)
    parts = _page_head(title)
    parts += _table(summary_rows, header)
    parts += _sections_html(sections, folder, level=2)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(
    path: str | os.PathLike[str],
    title: str,
    summary_rows: Sequence[Sequence[Any]],
    sections: Sequence[ReportSection | tuple[Any, ...]],
    *,
    header: Sequence[str] | None = None,
) -> Path:
    """Write the report to ``path`` (atomically) and return the path.

    Images are linked relative to ``path``'s folder and must exist; see :func:`render_report`.
    """
    path = Path(path)
    text = render_report(path.parent, title, summary_rows, sections, header=header)
    write_text(path, text)
    return path


# --- one report per run: stages ------------------------------------------------------------


def _section_to_json(sec: ReportSection, folder: Path) -> dict[str, Any]:
    images = [_image_src(im, folder) for im in sec.images]
    caps = [sec.caption(i, im) for i, im in enumerate(sec.images)]
    return {
        "title": sec.title, "images": images, "captions": caps, "text": sec.text,
        "rows": [[format_cell(c) for c in row] for row in sec.rows],
        "header": list(sec.header) if sec.header else None,
        "links": [[t, _href(h, folder)] for t, h in sec.links],
    }  # fmt: skip


def save_stage(
    run_dir: str | os.PathLike[str],
    stage: str,
    sections: Sequence[ReportSection],
    *,
    summary_rows: Sequence[Sequence[Any]] = (),
    header: Sequence[str] | None = None,
) -> Path:
    """Store one stage's sections (images must exist) in ``RUN/report/<stage>.json``.

    ``summary_rows`` / ``header``: a table shown at the top of the page (the evaluation's class
    table); the last stage that gives one wins. Call :func:`render_run_report` afterwards.
    """
    import json

    from particlegraph.atomic import write_json

    run_dir = Path(run_dir)
    doc = {
        "stage": stage,
        "sections": [_section_to_json(sec, run_dir) for sec in sections],
        "summary_rows": [[format_cell(c) for c in row] for row in summary_rows],
        "summary_header": list(header) if header else None,
    }
    json.dumps(doc)  # fail here, not half-way through the write, on a non-serialisable cell
    path = run_dir / STAGE_DIR / f"{stage}.json"
    write_json(path, doc)
    return path


def _load_stages(run_dir: Path) -> list[dict[str, Any]]:
    import json

    folder = run_dir / STAGE_DIR
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("sections"), list):
            found[path.stem] = doc
    order = [s for s in STAGES if s in found] + sorted(s for s in found if s not in STAGES)
    return [found[s] for s in order]


def render_run_report(run_dir: str | os.PathLike[str], title: str) -> Path:
    """Write ``RUN/index.html`` from every stored stage; return its path.

    Each stage is one ``<h2>`` part (Training, Evaluation, Explanation, in :data:`STAGES`
    order) with a table of contents on top. A stage whose images no longer exist is replaced
    by a one-line note instead of a broken link.
    """
    run_dir = Path(run_dir)
    esc = html.escape
    stages = _load_stages(run_dir)
    summary_rows: list[Any] = []
    header = None
    for doc in stages:
        if doc.get("summary_rows"):
            summary_rows, header = doc["summary_rows"], doc.get("summary_header")
    body: list[str] = []
    toc: list[str] = []
    for doc in stages:
        name = str(doc.get("stage", "stage"))
        heading = name.replace("_", " ").capitalize()
        toc.append(f'<a href="#stage-{esc(_anchor(name))}">{esc(heading)}</a>')
        body.append(f'<h2 class="stage" id="stage-{esc(_anchor(name))}">{esc(heading)}</h2>')
        try:
            sections = [
                ReportSection(
                    d["title"], d["images"], d.get("text", ""), d.get("rows", ()),
                    d.get("header"), d.get("captions", ()), [tuple(x) for x in d.get("links", ())],
                )
                for d in doc["sections"]
            ]  # fmt: skip
            body += _sections_html(sections, run_dir, level=3)
        except DataFileError:
            body.append(f"<p>(the {esc(name)} figures were removed; run this stage again)</p>")
    parts = _page_head(title)
    if toc:
        parts.append(f"<nav>{' '.join(toc)}</nav>")
    parts += _table(summary_rows, header)
    parts += body
    parts += ["</body>", "</html>", ""]
    path = run_dir / "index.html"
    write_text(path, "\n".join(parts))
    return path
