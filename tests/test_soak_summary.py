"""The soak's short-run leak check (``benchmarks/soak.py``): the peak-growth figure passes the heap's sawtooth that
made a two-minute least-squares slope fail a healthy run in CI, and still catches a leaked frame per frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # soak.py imports its neighbour streams.py
spec = importlib.util.spec_from_file_location("soak", BENCHMARKS / "soak.py")
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def samples(rss_mb: np.ndarray, every_s: float = 5.0) -> list[dict]:
    return [{"t_s": i * every_s, "rss_mb": float(r), "fds": 10, "threads": 14, "disk_mb": 20.0}
            for i, r in enumerate(rss_mb)]


def test_heap_sawtooth_is_no_leak_but_its_slope_says_otherwise():
    # CI's healthy run: 325-352 MB, heaps growing ~28 MB late in a 2-minute window after the warm-up
    rss = np.r_[np.full(12, 325.0), 331, 331, 331, 331, 339, 339, 325, 338, 338, 340, 340, 353, 340, 340, 340, 340, 353]
    summary = soak.summarize(samples(rss), warmup_s=60)
    assert summary["rss_mb"]["slope_per_10min"] > 20  # what failed CI
    assert summary["rss_mb"]["growth"] <= 60


def test_a_leaked_frame_per_frame_fails_the_peak_growth():
    t = np.arange(36) * 5.0
    rss = 330 + 320 * 240 * 3 * 15 * t / 1e6  # one 320x240 frame kept per frame at 15 fps
    summary = soak.summarize(samples(rss), warmup_s=60)
    assert summary["rss_mb"]["growth"] > 60
