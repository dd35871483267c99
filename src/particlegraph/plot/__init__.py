"""Figures: functions take keyword-only ax=None and return their artists.

Shared helpers for every task's figures:

- :func:`headless_backend` picks matplotlib's non-interactive Agg backend when nothing can be
  shown (no display) and nobody chose a backend yet. Plotting functions and workflows call it
  before their first figure; importing a plot module never changes the backend, so a notebook
  user keeps theirs.
- :func:`save_figure` writes a figure atomically (format from the suffix, 150 dpi by default)
  and closes it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from particlegraph.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Resolution of saved figures unless a caller asks for another (dots per inch).
DEFAULT_DPI = 150


def has_display() -> bool:
    """True on macOS and Windows, and on other systems when ``DISPLAY`` or ``WAYLAND_DISPLAY``
    is set (the test matplotlib itself uses to decide that a session is headless)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def headless_backend() -> None:
    """Switch matplotlib to Agg only when no display is available and no backend was chosen.

    Leaves the backend alone when ``MPLBACKEND`` is set (Jupyter's inline backend is chosen that
    way), when a backend is already in use or was chosen (``matplotlib.use``, matplotlibrc,
    ``%matplotlib ...``; pyplot imported with an interactive backend counts), or when a display
    is available. Otherwise matplotlib would probe GUI toolkits before falling back to Agg;
    choosing Agg directly skips that. Cheap enough to call before every figure.
    """
    if os.environ.get("MPLBACKEND") or has_display():
        return
    import matplotlib

    # None while the backend is still matplotlib's "pick one automatically" placeholder; a
    # matplotlib without this (private, >= 3.7) method keeps its own headless fallback
    chosen = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if chosen is None or chosen() is not None:
        return
    matplotlib.use("Agg")


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    dpi: int = DEFAULT_DPI,
    tight: bool = False,
) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix: .png, .pdf, .svg), close it.

    ``dpi`` dots per inch (raster formats). ``tight=True`` crops to the drawn artists, which
    renders the figure twice; figures with fixed margins do not need it. Returns ``path``.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path
