"""Keep glibc's heap from creeping on a run of days: two malloc arenas, and freed pages handed back once a minute.

Why: a live run frees and re-allocates frame-sized buffers all day from several threads (display, SR loop, the
capture thread, ONNX Runtime and OpenVINO workers). glibc gives each thread that meets contention an arena of its
own (up to 8 per core) and returns only the top of each heap, so RSS drifts and jumps by tens of MB through
fragmentation although nothing leaks: the drift and the noise hide a real leak in a soak. Two levers, both the
usual advice for long-running multi-threaded glibc services:

- ``M_ARENA_MAX`` = 2 (``mallopt``, as ``MALLOC_ARENA_MAX=2`` would), set before the run's threads start;
- ``malloc_trim(0)`` every minute, which also releases the free pages *inside* the heaps (glibc ≥ 2.8).

Both are no-ops where the C library is not glibc (musl, macOS): ``mallopt``/``malloc_trim`` are then missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

EVERY_S = 60.0
ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for the threads started from now on; True when the C library took it."""
    mallopt = getattr(_libc(), "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)


class HeapTrim:
    """``tick()`` from the loop; trims at most every ``every_s`` seconds."""

    def __init__(self, every_s: float = EVERY_S, clock=time.monotonic):
        self.every_s, self.clock = every_s, clock
        self.last = clock()
        self.trims = 0
        self._trim = getattr(_libc(), "malloc_trim", None)

    def tick(self) -> None:
        now = self.clock()
        if self._trim is not None and now - self.last >= self.every_s:
            self._trim(0)
            self.last, self.trims = now, self.trims + 1
