"""The MLPF plot modules leave matplotlib's backend unchosen at import time.

They used to call ``matplotlib.use("Agg")`` when imported, which took the choice away from a
notebook or a desktop session; the figures pick Agg only when they draw, and only when nothing
chose a backend (:func:`particlegraph.plot.headless_backend`, tested in tests/plot).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[3] / "src")

MODULES = (
    "particlegraph.tasks.mlpf.plots",
    "particlegraph.tasks.mlpf.plots_validation",
    "particlegraph.tasks.mlpf.evaluate_figures",
    "particlegraph.tasks.mlpf.evaluate_writer",
    "particlegraph.tasks.mlpf.explain_writer",
)


def backend_after_import(modules: tuple[str, ...], path: str = SRC) -> str:
    """matplotlib's chosen backend after importing ``modules`` in a fresh, headless interpreter
    whose ``PYTHONPATH`` is ``path`` (``"None"`` when nothing chose one)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")
    }
    env["PYTHONPATH"] = path
    code = (
        "import importlib, matplotlib\n"
        f"for name in {list(modules)!r}:\n    importlib.import_module(name)\n"
        "print(matplotlib.rcParams._get_backend_or_none())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_importing_the_mlpf_plot_modules_keeps_the_backend_unchosen() -> None:
    assert backend_after_import(MODULES) == "None"


def test_the_probe_sees_a_module_that_chooses(tmp_path: Path) -> None:
    """A module that calls ``matplotlib.use`` on import (as the plot modules once did) is seen."""
    (tmp_path / "chooser.py").write_text("import matplotlib\nmatplotlib.use('pdf')\n")
    path = os.pathsep.join([str(tmp_path), SRC])
    assert backend_after_import(("particlegraph.tasks.mlpf.plots", "chooser"), path) == "pdf"
