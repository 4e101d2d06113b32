"""The live loop hands freed heap memory back once a minute (glibc malloc_trim), and never more often."""

from __future__ import annotations

from skinedge.runtime.live.heap import HeapTrim


def test_trims_at_most_once_per_interval():
    now = [100.0]
    heap = HeapTrim(every_s=60.0, clock=lambda: now[0])
    calls = []
    heap._trim = lambda pad: calls.append(pad) or 1
    for t in (100.0, 130.0, 159.9, 160.0, 161.0, 220.5):
        now[0] = t
        heap.tick()
    assert calls == [0, 0] and heap.trims == 2


def test_without_malloc_trim_it_does_nothing():
    heap = HeapTrim(every_s=0.0)
    heap._trim = None
    heap.tick()
    assert heap.trims == 0


def test_the_arena_cap_is_taken_by_glibc():
    import platform

    from skinedge.runtime.live.heap import limit_arenas

    took = limit_arenas()
    assert took == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
