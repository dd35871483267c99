"""A refused command, checked as a user sees it: exit 2, one ``error:`` line, nothing changed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from particlegraph.cli.main import app


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: relative path -> (size, mtime in ns)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def refused(args: list[str], root: Path, match: str) -> None:
    """``particlegraph ARGS`` exits 2 with one ``error:`` line containing ``match`` and leaves
    every file under ``root`` as it was."""
    before = tree(root)
    res = CliRunner().invoke(app, args)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert match in lines[0], lines[0]
    assert tree(root) == before
