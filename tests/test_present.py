"""The presenter shows frames in order on its own thread, drains on close, and hands a sink's error back."""

import threading
import time

import pytest

from skinedge.runtime.live.present import Presenter


def test_jobs_run_in_order_on_one_other_thread_and_close_drains_them():
    seen, threads = [], set()
    presenter = Presenter(depth=2)

    def job(k):
        def run():
            time.sleep(0.01)
            seen.append(k)
            threads.add(threading.current_thread().name)
        return run

    started = time.perf_counter()
    for k in range(3):
        presenter.put(job(k))
    handed = time.perf_counter() - started
    presenter.close()
    assert seen == [0, 1, 2]
    assert threads == {"skinedge-present"}
    assert handed < 0.03  # the loop was not held for every job: at most one wait for a free slot


def test_a_jobs_error_stops_later_jobs_and_is_raised_in_the_loops_thread():
    seen = []
    presenter = Presenter()

    def broken():
        raise OSError("window gone")

    presenter.put(broken)
    presenter.put(lambda: seen.append("after"))
    time.sleep(0.05)
    with pytest.raises(OSError, match="window gone"):
        presenter.put(lambda: seen.append("later"))
    presenter.close()
    assert seen == []
