"""What a recording may hold on disk: ``--record-keep SIZE|DURATION`` and the free space a new segment needs.

A device that records from morning to night fills any disk. ``--record-keep`` names how much of the past to
keep (``50MB``, ``2GB``, ``12h``, ``7d``); the recorder deletes the oldest *closed* segments first, so what
is kept is always complete and playable. A full disk is not an error of the run: recording pauses, the live
view goes on, and recording resumes once :func:`free_bytes` says a segment fits again.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from skinedge.errors import SkinedgeError

_SIZES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_TIMES = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_KEEP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
MIN_RESERVE = 8 * 2**20  # free bytes a new segment needs at least (more once segments have a known size)


@dataclass(frozen=True)
class Keep:
    """Keep closed segments up to ``max_bytes`` in all, or those that ended within ``max_seconds``."""

    max_bytes: int | None = None
    max_seconds: float | None = None

    def describe(self) -> str:
        if self.max_bytes is not None:
            return f"--record-keep {human_bytes(self.max_bytes)}"
        return f"--record-keep {self.max_seconds:g} s"

    def over(self, kept: list[dict], now_wall: float) -> list[dict]:
        """The oldest entries of ``kept`` (segments.jsonl lines, oldest first) to delete now."""
        if self.max_seconds is not None:
            return [e for e in kept if e["start"] + e["seconds"] < now_wall - self.max_seconds]
        total, drop = sum(e["bytes"] for e in kept), []
        for entry in kept:
            if total <= self.max_bytes:
                break
            drop.append(entry)
            total -= entry["bytes"]
        return drop


def parse_keep(text: str | None) -> Keep | None:
    """``50MB`` / ``1.5GiB`` (bytes, decimal or binary units) or ``90s`` / ``30min`` / ``12h`` / ``7d``.

    Raises:
        SkinedgeError: anything else, or a value that is not positive.
    """
    if text is None:
        return None
    match = _KEEP.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or (unit not in _SIZES and unit not in _TIMES) or not float(match.group(1)) > 0:
        raise SkinedgeError(f"--record-keep {text!r}: give a size (50MB, 2GB, 500MiB) or a duration (90s, 30min, "
                            "12h, 7d), greater than 0")
    value = float(match.group(1))
    if unit in _SIZES:
        return Keep(max_bytes=int(value * _SIZES[unit]))
    return Keep(max_seconds=value * _TIMES[unit])


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s file system."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def disk_full(exc: BaseException) -> bool:
    """Whether a write failed because the file system is full (or the user's quota is)."""
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


def human_bytes(n: float) -> str:
    """``52428800`` → ``52.4 MB`` (decimal units, as ``df -H`` and the --record-keep sizes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
