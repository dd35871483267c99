"""The tabular plot module leaves matplotlib's backend unchosen at import time (it used to call
``matplotlib.use("Agg")``); it picks Agg only when it draws, through
:func:`particlegraph.plot.headless_backend`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_importing_the_tabular_plots_keeps_the_backend_unchosen() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")
    }
    env["PYTHONPATH"] = SRC
    code = (
        "import matplotlib, particlegraph.tasks.tabular.plots\n"
        "print(matplotlib.rcParams._get_backend_or_none())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "None"
