"""The presenter: finished frames shown on a thread of their own, each at its due time.

With the two-loop display the loop's thread holds no frame. It hands each finished frame to the presenter, which
waits until capture + the pacer's delay (:class:`~skinedge.runtime.live.display.Pacer`), then runs what a user
sees or a file keeps: the sinks, the recorder, the meter, the watchdog. They run in frame order, all on this one
thread, as they did on the loop's. Before, the hold and the sinks' work (JPEG for the viewer, muxing for the
recording) delayed the next frame's pick-up, so a frame was late whenever step + sinks outran the frame interval,
whatever the delay. Now a frame is late only when its own step outruns the delay.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

DEPTH = 3  # frames waiting to be shown: the delay is at most 1.5 frame intervals, so two wait at most


class Presenter:
    """``put(job)`` from the loop; jobs run in order on the presenter's thread. A job's exception stops the
    jobs after it and is raised in the loop's thread at its next ``put`` (or by ``close``)."""

    def __init__(self, depth: int = DEPTH):
        self.jobs: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="skinedge-present", daemon=True)
        self.thread.start()

    def put(self, job: Callable[[], None]) -> None:
        self.check()
        self.jobs.put(job)

    def check(self) -> None:
        """Raise (once) the exception a job raised."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self, timeout: float = 5.0) -> None:
        """Run what is queued, stop the thread, and raise a job's exception if one came."""
        self.jobs.put(None)
        self.thread.join(timeout)
        self.check()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread, raised there
                    self.error = exc
