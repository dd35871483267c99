"""Progress counters for long work: a tqdm bar on a terminal, plain lines with an ETA in a pipe.

Used by the command line (``particlegraph.cli.common`` re-exports :func:`progress`) and by engine
code that runs for minutes on its own, such as the pile-up pool builder of ``sim/pileup.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO


class PlainProgress:
    """A tqdm-like counter that prints plain lines: ``desc: k/N unit (p%), r unit/s, ETA m:ss``.

    Args:
        iterable: optional iterable to wrap (its ``len`` is the total when ``total`` is None).
        total: expected count (None: unknown; no percentage or ETA then).
        desc: label at the start of each line.
        unit: unit of the count (``ev``, ``file``...).
        interval: seconds between lines; a job shorter than that prints nothing, a longer one
            ends with a final line.
        file: stream (default stderr).
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        interval: float = 10.0,
        file: TextIO | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.start = time.perf_counter()
        self._last = self.start  # the first line comes after `interval`: quick jobs stay quiet
        self._printed = False
        self._closed = False
        self._postfix = ""

    def line(self) -> str:
        """The current progress line (without a newline)."""
        elapsed = time.perf_counter() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.n}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.3g} {self.unit}/s, elapsed {_clock(elapsed)}"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {_clock((self.total - self.n) / rate)}"
        return text + (f", {self._postfix}" if self._postfix else "")

    def _emit(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= self.interval:
            self._last = now
            self._printed = True
            print(self.line(), file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        """Add ``n`` to the count; print a line when ``interval`` has passed."""
        self.n += n
        self._emit()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        """Text appended to the following lines (tqdm's API)."""
        self._postfix = text

    def write(self, text: str) -> None:
        """Print a message line (tqdm's API)."""
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        """Print the final line once (only when earlier lines were printed)."""
        if not self._closed:
            self._closed = True
            if self._printed:
                self._emit(force=True)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("PlainProgress was created without an iterable")
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if exc_type is None:
            self.close()


def _clock(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool | None = None,
    interval: float = 10.0,
    leave: bool = True,
) -> Any:
    """A progress counter: tqdm on a terminal, :class:`PlainProgress` lines otherwise.

    Args:
        enabled: ``True``/``None``: show progress (a bar on a terminal, lines in a pipe);
            ``False``: a silent counter.
        interval: seconds between plain lines.
        leave: keep the terminal bar when it closes (tqdm's ``leave``).

    Returns an object with tqdm's ``update``, ``close``, iteration and context-manager API.
    """
    from tqdm import tqdm

    if enabled is False:
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, interval=interval)
