"""Live statistics in fixed memory: percentiles stay right and nothing grows with the number of frames."""

from __future__ import annotations

import sys

import numpy as np

from skinedge.runtime.live.stats import Histogram, Meter, Window


def test_histogram_percentiles_are_within_one_bin_of_the_exact_ones():
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(80.0), 0.3, 20000)  # latencies around 80 ms
    h = Histogram()
    for v in values:
        h.add(float(v))
    for q in (1, 50, 95, 99):
        exact = float(np.percentile(values, q))
        assert abs(h.percentile(q) / exact - 1) < 0.011, q
    assert np.isclose(h.mean(), values.mean(), rtol=1e-9)


def test_window_is_exact_over_its_last_values():
    w = Window(100)
    for v in range(1000):
        w.add(v)
    assert len(w.values) == 100 and w.percentile(50) == float(np.percentile(np.arange(900, 1000), 50))


def test_meter_memory_is_fixed_whatever_the_run_length():
    m = Meter(window=256)
    timings = {"seg": 7.0, "sr": 30.0, "project": 4.0, "composite": 5.0, "total": 46.0}

    def size() -> int:
        return (sys.getsizeof(m.latency_now.values) + sum(h.counts.nbytes for h in m.stages.values())
                + m.latency.counts.nbytes + len(m.stages))

    for _ in range(300):
        m.add(timings, 50.0)
    before = size()
    for i in range(20000):
        m.add({**timings, "sr": 30.0 + i % 7}, 50.0 + i % 13)
    assert size() == before and m.frames == 20300
    summary = m.summary()
    assert abs(summary["latency_p50_ms"] - float(np.median([50.0 + i % 13 for i in range(20000)]))) < 0.6
    assert set(summary["stage_p50_ms"]) == set(timings)


def test_the_sr_age_is_summarised_over_the_frames_that_showed_an_earlier_sr_only():
    m = Meter(window=64)
    for i in range(1000):
        m.add({"total": 10.0}, 12.0, None if i % 4 == 0 else 40.0 + i % 100)
    ages = [40.0 + i % 100 for i in range(1000) if i % 4]
    summary = m.summary()
    assert summary["sr_shown"] == len(ages) and len(m.sr_age_now.values) == 64
    assert abs(summary["sr_age_p50_ms"] - float(np.median(ages))) <= 0.01 * float(np.median(ages))
    assert abs(summary["sr_age_p95_ms"] - float(np.percentile(ages, 95))) <= 0.01 * float(np.percentile(ages, 95))
    assert Meter().summary()["sr_shown"] == 0
