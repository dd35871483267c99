"""Engine tests do not import a task: the engine is tested on its own (mirrors import-linter)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: Test files outside tests/tasks that still drive the engine through a task (none left: the
#: LRP tests run on a toy GNN, tests/explain/lrp_toy.py, the MLPF adapter checks live under
#: tests/tasks/mlpf). Nothing may join this list.
STILL_USING_MLPF: set[str] = set()
#: Whole-project tests (the wheel, the command line) import every task on purpose.
PROJECT_WIDE = ("packaging/", "cli/", "tasks/")


def _imports_a_task(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]  # code run in a subprocess: "import particlegraph.tasks..."
        if any("particlegraph.tasks" in n for n in names):
            return True
    return False


def test_engine_tests_import_no_task() -> None:
    engine = [
        p
        for p in TESTS.rglob("test_*.py")
        if not str(p.relative_to(TESTS)).startswith(PROJECT_WIDE)
    ]
    offenders = {str(p.relative_to(TESTS)) for p in engine if _imports_a_task(p)}
    assert offenders - STILL_USING_MLPF == set(), "engine tests must not import a task"
    assert STILL_USING_MLPF - offenders == set(), "split done: remove it from STILL_USING_MLPF"


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def f():\n    from particlegraph.tasks.mlpf import model\n")
    (tmp_path / "u.py").write_text("import particlegraph.io.limits\n")
    assert _imports_a_task(tmp_path / "t.py") and not _imports_a_task(tmp_path / "u.py")
