"""keep_freed_memory: a no-op-safe call that says whether it applied, and keeps freed blocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from particlegraph import allocator

SRC = str(Path(allocator.__file__).resolve().parents[1])

# Allocate 64 MB (above glibc's mmap threshold by default), free it, and print how much of it
# the heap still holds as free blocks (mallinfo2().fordblks, bytes) and the mmapped bytes.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    sys.path.insert(0, {src!r})
    from particlegraph.allocator import keep_freed_memory
    class MI2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MI2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    p = libc.malloc(64 << 20)
    ctypes.memset(p, 1, 64 << 20)
    mapped = libc.mallinfo2().hblkhd
    libc.free(p)
    print(applied, mapped, libc.mallinfo2().fordblks)
    """
)


def _probe(mode: str) -> list[str]:
    code = PROBE.format(src=SRC)
    out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    return out.stdout.split()


def test_returns_false_and_changes_nothing_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(allocator, "glibc", lambda: False)
    assert allocator.keep_freed_memory() is False
    assert allocator._applied is False


def test_returns_false_when_mallopt_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def __init__(self, _: object) -> None:
            self.mallopt = lambda param, value: 0

    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(allocator, "glibc", lambda: True)
    monkeypatch.setattr(allocator.ctypes, "CDLL", Refusing)
    assert allocator.keep_freed_memory() is False
    assert allocator._applied is False


@pytest.mark.skipif(not allocator.glibc(), reason="mallopt settings exist on glibc only")
def test_freed_block_stays_in_the_heap_only_when_applied() -> None:
    # in a child process: the setting is process-wide and would outlive this test
    applied, mapped, free_after = _probe("keep")
    assert applied == "True"
    assert int(mapped) < 64 << 20  # served from the heap, not a mapping of its own
    assert int(free_after) >= 64 << 20  # the freed 64 MB wait in the heap for reuse
    applied, mapped, free_after = _probe("default")
    assert applied == "None"
    assert int(mapped) >= 64 << 20  # glibc's default: a mapping of its own ...
    assert int(free_after) < 64 << 20  # ... returned to the kernel at free


@pytest.mark.skipif(not allocator.glibc(), reason="mallopt settings exist on glibc only")
def test_repeated_call_reports_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_applied", True)  # as after a first successful call
    assert allocator.keep_freed_memory() is True
