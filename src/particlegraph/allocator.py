"""Keep freed large blocks in the C heap (glibc ``mallopt``), for inference on big graphs.

Why: glibc serves every allocation above its mmap threshold (dynamic, at most 32 MB on 64-bit
Linux) with a fresh ``mmap`` and returns it to the kernel at ``free``. Graph networks at high
pile-up allocate and free one (E, 32) float32 temporary after another (about 470-770 MB each at
3.7-6 million edges), so every one of them is page-faulted in again: at pile-up 200 the
process spent as much system time as user time (29 M minor page faults in one scaling job) and
the interaction network ran 2.5-3.5x slower than with the memory kept (docs/tracking.md,
"Inference time at mu = 200").

What :func:`keep_freed_memory` does, on Linux with glibc only: ``M_MMAP_THRESHOLD`` = 2 GiB - 1
(blocks below that come from the heap, so a freed one is reused by the next allocation of its
size) and ``M_TRIM_THRESHOLD`` = -1 (glibc never gives the heap's free top back to the
kernel). It is the in-process form of ``MALLOC_MMAP_THRESHOLD_=... MALLOC_TRIM_THRESHOLD_=...``
and, like them, acts on the allocations that follow the call.

Memory cost: the process keeps its peak heap for the rest of its life (freed memory is reused,
not returned), and a heap fragments more than separate mappings, so the peak itself can grow
(measured at pile-up 200: 4.9 GB instead of 3.6 GB in one scaling job). Call it in processes
that do inference on large events (evaluation commands, benchmarks), not in a library import.
Elsewhere (macOS, Windows, musl) it does nothing and says so by returning ``False``.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size [bytes] come from the heap (the largest ``int`` mallopt takes).
MMAP_THRESHOLD = 2**31 - 1
#: -1 as glibc's size_t: never trim the heap's free top.
TRIM_THRESHOLD = -1

_applied = False


def glibc() -> bool:
    """Whether this process runs on Linux with glibc (where ``mallopt`` has these meanings)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed blocks (up to 2 GiB) in the heap; returns whether it applied.

    Idempotent and safe anywhere: ``False`` (nothing changed) off glibc or when ``mallopt``
    refuses a setting; ``True`` when both settings are in force (also on a repeated call).
    """
    global _applied
    if _applied:
        return True
    if not glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no symbol table of the process: nothing to set
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = int(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) == 1
    ok = ok and int(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) == 1
    _applied = ok
    log.debug("glibc mallopt: keep freed memory %s", "on" if ok else "refused")
    return ok
