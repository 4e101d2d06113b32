"""Hand freed heap memory back to the system once a minute, on glibc (``malloc_trim(0)``).

Why: a live run frees and re-allocates frame-sized buffers all day from several threads (display, SR loop,
ONNX Runtime and OpenVINO workers). glibc keeps freed memory in per-thread arenas and returns only the top of
each heap, so RSS creeps up through fragmentation although nothing leaks. ``malloc_trim(0)`` also releases the
free pages inside the heaps (glibc ≥ 2.8). A no-op elsewhere (musl, macOS), where ``malloc_trim`` does not exist.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

EVERY_S = 60.0


class HeapTrim:
    """``tick()`` from the loop; trims at most every ``every_s`` seconds."""

    def __init__(self, every_s: float = EVERY_S, clock=time.monotonic):
        self.every_s, self.clock = every_s, clock
        self.last = clock()
        self.trims = 0
        try:
            self._trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            self._trim = None

    def tick(self) -> None:
        now = self.clock()
        if self._trim is not None and now - self.last >= self.every_s:
            self._trim(0)
            self.last, self.trims = now, self.trims + 1
