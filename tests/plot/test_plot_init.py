"""plot.headless_backend and plot.save_figure: the backend is left alone at import time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.image import imread

from particlegraph.plot import DEFAULT_DPI, save_figure

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _backend_after(code: str, display: str | None, mplbackend: str | None = None) -> dict:
    """Run ``code`` in a fresh interpreter and return what it printed as JSON."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")
    }
    env["PYTHONPATH"] = SRC
    if display is not None:
        env["DISPLAY"] = display
    if mplbackend is not None:
        env["MPLBACKEND"] = mplbackend
    head = (
        "import json, matplotlib\nfrom particlegraph.plot import headless_backend\n"
        "def chosen():\n    b = matplotlib.rcParams._get_backend_or_none()\n"
        "    return None if b is None else b.lower()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", head + code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_plot_modules_keeps_the_backend_unchosen() -> None:
    """The plot modules used to call matplotlib.use("Agg") at import time (the tasks' plot
    modules are checked in tests/tasks/<task>/test_<task>_plots_backend.py)."""
    code = "import particlegraph.plot.explain\nprint(json.dumps({'b': chosen()}))"
    assert _backend_after(code, display=None) == {"b": None}


@pytest.mark.parametrize(
    ("display", "mplbackend", "before", "expected"),
    [
        (None, None, "", "agg"),  # headless, nothing chosen: Agg
        (":0", None, "", None),  # a display: matplotlib decides later, as usual
        (None, "svg", "", "svg"),  # MPLBACKEND (how Jupyter picks inline) wins
        (None, None, "matplotlib.use('pdf')\n", "pdf"),  # a user's explicit choice wins
        (None, None, "import matplotlib.pyplot as plt; plt.figure()\n", "agg"),  # resolved
    ],
)
def test_headless_backend_only_when_nothing_chose(display, mplbackend, before, expected) -> None:
    code = before + "headless_backend()\nprint(json.dumps({'b': chosen()}))"
    assert _backend_after(code, display, mplbackend) == {"b": expected}


def test_save_figure_default_dpi_suffix_and_close(tmp_path) -> None:
    assert DEFAULT_DPI == 150
    fig = plt.figure(figsize=(2.0, 1.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "sub" / "a.png")
    assert path == tmp_path / "sub" / "a.png"
    assert imread(path).shape[:2] == (150, 300)  # (height, width) = figsize * 150 dpi
    assert not plt.fignum_exists(fig.number)
    fig = plt.figure(figsize=(2.0, 1.0))
    assert imread(save_figure(fig, tmp_path / "b.png", dpi=40)).shape[:2] == (40, 80)
    fig = plt.figure(figsize=(2.0, 1.0))
    assert save_figure(fig, tmp_path / "c.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "c.pdf", "sub"]  # no temp files
