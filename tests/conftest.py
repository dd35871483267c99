"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_pixels: int = 100) -> None:
    """Assert that ``path`` is a decodable PNG of a drawn figure: the PNG signature, at least
    ``min_pixels`` pixels per side, and more than one colour (a blank canvas fails)."""
    import matplotlib.image

    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    img = matplotlib.image.imread(path)
    assert min(img.shape[:2]) >= min_pixels, f"{path}: {img.shape[:2]} pixels"
    flat = img.reshape(-1, img.shape[-1]) if img.ndim == 3 else img.reshape(-1, 1)
    assert len(np.unique(flat[:: max(1, len(flat) // 20000)], axis=0)) > 2, f"{path} is blank"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids oversubscription on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def assert_png() -> Callable[[Path], None]:
    """``assert_png(path)``: the file is a decodable, non-blank PNG figure."""
    return check_png
