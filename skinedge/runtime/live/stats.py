"""Live statistics in fixed memory: a run of days costs what a run of minutes does.

The live loop used to keep every frame's latency and stage times in lists (8 floats a frame: ~14 MB an hour at
15 fps, 2.3 GB a week on a device whose 8 GB the GPU shares). Here:

- :class:`Window`: the last ``size`` values, exact percentiles over them (what the overlay and ``/stats.json``
  show: "now");
- :class:`Histogram`: the whole run in log-spaced bins, 1 % wide, from 10 µs to 10⁵ s (~1,600 counters, fixed);
  its percentiles are within one bin (±1 %) of the exact ones (what the run's summary reports);
- :class:`Meter`: both, for the end-to-end latency, each stage and the age of the SR shown (two loops), plus fps
  over the last frames.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

WINDOW = 1024  # frames the "now" percentiles look at (~1 min at 15 fps)
FPS_WINDOW = 30  # fps is measured over the last ~30 finished frames


class Window:
    """The last ``size`` values; exact percentiles over them."""

    def __init__(self, size: int = WINDOW):
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.values, float), q)) if self.values else 0.0


class Histogram:
    """Counts of positive values in log-spaced bins (``ratio`` apart) between ``low`` and ``high``; values
    outside are counted in the end bins. Memory is fixed at construction."""

    def __init__(self, low: float = 1e-2, high: float = 1e8, ratio: float = 1.01):
        self.low, self.log_ratio = low, math.log(ratio)
        self.bins = int(math.ceil(math.log(high / low) / self.log_ratio)) + 1
        self.counts = np.zeros(self.bins, np.int64)
        self.total = 0
        self.sum = 0.0

    def _bin(self, value: float) -> int:
        if value <= self.low:
            return 0
        return min(self.bins - 1, int(math.log(value / self.low) / self.log_ratio))

    def add(self, value: float) -> None:
        self.counts[self._bin(value)] += 1
        self.total += 1
        self.sum += value

    def percentile(self, q: float) -> float:
        """The value at percentile ``q`` (0–100): the geometric middle of the bin it falls in."""
        if not self.total:
            return 0.0
        rank = q / 100.0 * (self.total - 1)
        index = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        index = min(index, self.bins - 1)
        return self.low * math.exp((index + 0.5) * self.log_ratio)

    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0


class Meter:
    """End-to-end latency (ms), per-stage times (ms) and fps of a live run, in fixed memory.

    Histograms are in milliseconds from 0.01 ms to 10⁸ ms (~28 h: longer is counted in the last bin).
    """

    def __init__(self, window: int = WINDOW):
        self.frames = 0
        self.window = window
        self.latency, self.latency_now = Histogram(), Window(window)
        self.stages: dict[str, Histogram] = {}
        self.sr_age, self.sr_age_now = Histogram(), Window(window)
        self.done: deque[float] = deque(maxlen=FPS_WINDOW)
        self.first = self.last = 0.0

    def add(self, timings_ms: dict[str, float], end_to_end_ms: float, sr_age_ms: float | None = None) -> None:
        now = time.perf_counter()
        if sr_age_ms is not None:
            self.sr_age.add(sr_age_ms)
            self.sr_age_now.add(sr_age_ms)
        self.first = self.first or now
        self.last = now
        self.frames += 1
        self.latency.add(end_to_end_ms)
        self.latency_now.add(end_to_end_ms)
        for stage, ms in timings_ms.items():
            if stage not in self.stages:
                if len(self.stages) >= 64:  # a fixed set of stage names; anything beyond is not kept
                    continue
                self.stages[stage] = Histogram()
            self.stages[stage].add(float(ms))
        self.done.append(now)

    def fps(self) -> float:
        if len(self.done) < 2:
            return 0.0
        return (len(self.done) - 1) / max(self.done[-1] - self.done[0], 1e-9)

    def summary(self) -> dict:
        """The whole run: latency percentiles (±1 %, from the histogram), mean fps, stage medians, the SR age's
        percentiles over the frames that showed an SR made from an earlier frame (``sr_shown`` of them); and the
        last ``window`` frames' exact latency percentiles (``*_now``)."""
        span = self.last - self.first
        pct = lambda h, q: round(h.percentile(q), 2) if h.total else 0.0  # noqa: E731
        return {"frames": self.frames,
                "latency_p50_ms": pct(self.latency, 50), "latency_p95_ms": pct(self.latency, 95),
                "latency_p99_ms": pct(self.latency, 99),
                "latency_now_p50_ms": round(self.latency_now.percentile(50), 2),
                "latency_now_p99_ms": round(self.latency_now.percentile(99), 2),
                "fps": round((self.frames - 1) / span, 2) if self.frames > 1 and span > 0 else 0.0,
                "stage_p50_ms": {k: pct(v, 50) for k, v in self.stages.items()},
                "sr_shown": self.sr_age.total, "sr_age_p50_ms": pct(self.sr_age, 50),
                "sr_age_p95_ms": pct(self.sr_age, 95)}
