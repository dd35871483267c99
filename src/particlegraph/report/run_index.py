"""``RUN/index.html`` of any task in one call: a stage's figures, tables and files, plus the config.

:mod:`particlegraph.report.html` stores each stage of a run (training, evaluation, explanation)
in ``RUN/report/<stage>.json`` and renders the page from every stage found. This module is the
small entry point a task calls at the end of a command::

    write_run_index(run_dir, "Tabular run: run1", "training",
                    [ReportSection("Training curves", ["training_curves.png"])],
                    config=cfg, files=["config.yaml", "history.json", "metrics.json"])

``config`` (a dataclass or a mapping) becomes a table of dotted keys; ``files`` become links in a
"Files" section (only the ones that exist, so an optional output may be listed); every other link
and image must exist, else :class:`~particlegraph.errors.DataFileError` is raised and nothing is
written. :func:`page_targets` / :func:`missing_targets` read a written page back, for tests and
for a user who wants to check one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from particlegraph.errors import DataFileError
from particlegraph.report.html import ReportSection, render_run_report, save_stage

PathLike = str | os.PathLike[str]

#: Scalars shown in a table cell as they are; anything else becomes its ``str``.
_SCALARS = (str, int, float, bool, type(None))


def flat_rows(values: Mapping[str, Any] | Any, *, max_list: int = 8) -> list[list[Any]]:
    """``[key, value]`` rows of a nested mapping or dataclass, keys dotted (``fit.lr``).

    Lists of at most ``max_list`` scalars are shown as one cell (``[0, 1, 2]``); longer lists
    and lists of mappings (per-epoch tables, scans) are left out: they belong in a figure or a
    linked JSON file, not in a summary table.
    """
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        values = dataclasses.asdict(values)
    rows: list[list[Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list | tuple):
            if len(value) <= max_list and all(isinstance(v, _SCALARS) for v in value):
                rows.append([prefix, str(list(value))])
        else:
            rows.append([prefix, value if isinstance(value, _SCALARS) else str(value)])

    walk("", values)
    return rows


def _is_local(target: str) -> bool:
    return "://" not in target and not target.startswith(("#", "mailto:"))


def _resolve(target: PathLike, folder: Path) -> Path:
    """A link target as :mod:`~particlegraph.report.html` resolves it (cwd first, then folder)."""
    path = Path(target)
    return path if path.is_absolute() or path.exists() else folder / path


def existing_files(folder: PathLike, names: Iterable[PathLike]) -> list[tuple[str, str]]:
    """``(text, path)`` links to those of ``names`` (relative to ``folder``) that exist."""
    folder = Path(folder)
    out = []
    for name in names:
        path = _resolve(name, folder)
        if path.exists():
            out.append((Path(name).as_posix(), str(path)))
    return out


def write_run_index(
    folder: PathLike,
    title: str,
    stage: str,
    sections: Sequence[ReportSection],
    *,
    config: Mapping[str, Any] | Any | None = None,
    files: Iterable[PathLike] = (),
    summary_rows: Sequence[Sequence[Any]] = (),
    header: Sequence[str] | None = None,
) -> Path:
    """Store ``stage`` of the run (or output folder) ``folder`` and write ``folder/index.html``.

    Args:
        folder: the run folder (or a command's output folder) the page lives in.
        title: page title (e.g. ``"Tracking run: run1"``).
        stage: which part of the page this is (``training``, ``evaluation``, ``explanation``,
            ...; see :data:`particlegraph.report.html.STAGES`); a stage written again replaces
            its own part only.
        sections: the stage's figures and tables; images and links are paths relative to the
            working directory or to ``folder`` and must exist.
        config: the resolved configuration, shown first as a ``key, value`` table.
        files: outputs to link (relative to ``folder``); the ones that do not exist are skipped.
        summary_rows, header: a table at the top of the page (the headline numbers).

    Returns:
        The path of ``index.html``.

    Raises:
        DataFileError: an image or a local link of ``sections`` does not exist (nothing written).
    """
    folder = Path(folder)
    for sec in sections:
        for _, target in sec.links:
            if _is_local(target) and not _resolve(target, folder).exists():
                raise DataFileError(
                    f"report link {target} does not exist; write it before the report"
                )
    parts: list[ReportSection] = []
    if config is not None:
        parts.append(
            ReportSection("Configuration", rows=flat_rows(config), header=["setting", "value"])
        )
    links = existing_files(folder, files)
    if links:
        parts.append(ReportSection("Files", links=links))
    save_stage(folder, stage, [*parts, *sections], summary_rows=summary_rows, header=header)
    return render_run_report(folder, title)


class _Targets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        key = {"img": "src", "a": "href"}.get(tag)
        for name, value in attrs:
            if name == key and value:
                self.targets.append(value)


def page_targets(page: PathLike) -> list[Path]:
    """Local files an HTML page links or shows (``<a href>``, ``<img src>``), resolved
    against the page's folder; URLs and in-page anchors are left out."""
    page = Path(page)
    parser = _Targets()
    parser.feed(page.read_text(encoding="utf-8"))
    return [page.parent / t for t in parser.targets if _is_local(t)]


def missing_targets(page: PathLike) -> list[Path]:
    """The local files :func:`page_targets` lists that do not exist (empty for a sound page)."""
    return [p for p in page_targets(page) if not p.exists()]
