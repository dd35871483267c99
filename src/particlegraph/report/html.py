"""A small, self-contained HTML report: title, summary table, sections of images.

The page embeds its own CSS and links PNGs by paths relative to the HTML file, so the run
directory can be copied or zipped and opened in any browser. Every linked image must exist
when the report is written; a missing one raises :class:`DataFileError`.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from particlegraph.atomic import write_text
from particlegraph.errors import DataFileError


class ReportSection(NamedTuple):
    """One section of the report.

    Attributes:
        title: heading.
        images: PNG paths, absolute or relative to the report's folder; captioned by file name.
        text: paragraph under the heading (plain text, escaped).
        rows: an optional table of this section (cells formatted with :func:`format_cell`).
        header: column names of that table.
    """

    title: str
    images: Sequence[str | os.PathLike[str]] = ()
    text: str = ""
    rows: Sequence[Sequence[Any]] = ()
    header: Sequence[str] | None = None


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
.meta { color: #777; font-size: .85em; }
"""


def format_cell(value: Any) -> str:
    """Text of one table cell: floats with 4 significant digits, None as an en dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
    esc = html.escape
    parts = [
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
    parts += _table(summary_rows, header)
    for raw in sections:
        sec = raw if isinstance(raw, ReportSection) else ReportSection(*raw)
        anchor = "".join(ch if ch.isalnum() else "-" for ch in sec.title.lower())
        parts.append(f'<h2 id="{esc(anchor)}">{esc(sec.title)}</h2>')
        if sec.text:
            parts.append(f"<p>{esc(sec.text)}</p>")
        parts += _table(sec.rows, sec.header)
        if sec.images:
            parts.append('<div class="figures">')
            for image in sec.images:
                src = _image_src(image, folder)
                name = Path(src).name
                parts.append(
                    f'<figure><a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(name)}"></a>'
                    f"<figcaption>{esc(name)}</figcaption></figure>"
                )
            parts.append("</div>")
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
