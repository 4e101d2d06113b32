"""A capture thread that keeps only the newest frame, so a slow pipeline never falls behind a camera.

A camera produces frames at its own rate whether we keep up or not. Queueing
them would make the view lag further and further behind the patient; instead a
reader thread puts each frame into a one-slot buffer, replacing (and counting
as dropped) any frame the pipeline has not taken yet. The pipeline always gets
the newest frame, and the lag stays one frame.

Files and image folders are different: every frame is wanted, so by default
the reader waits until the slot is taken (no drops, the run takes as long as it
takes). ``realtime=True`` makes a file behave like a camera instead: it is read
at its own frame rate and frames the pipeline cannot keep up with are dropped —
what a live run on that hardware would show.

Live sources that stop giving frames (cable pulled, stream down) are reopened
with exponential back-off (0.5 s doubling to 8 s) until they come back or the
run stops; meanwhile ``signal`` is False so the viewers can say "no signal".

A frozen source (a paused server: the connection stays open, nothing comes) is
one state change, not a flicker: the last frame stays on screen as ``stale``
while the gap is shorter than ``stall_s``, then the source is ``no signal`` and
stays so until it has been reopened and gives frames again — a frame that
trickles out of the frozen connection (a decoder's buffered frame, a read that
returns at its timeout) does not bring the signal back, it starts the reconnect.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from skinedge.runtime.live.sources import Source

BACKOFF_S = (0.5, 8.0)  # first and longest wait between reconnect attempts
MISSES = 3  # consecutive empty reads before a live source counts as lost (one bad frame is not a lost camera)
STALL_S = 3.0  # a live source that blocks this long without a frame shows as "no signal", and is reopened
STALE_S = 1.0  # ... and before that, this long without a frame shows its last frame as "stale"
DEFAULT_FPS = 30.0  # pace of a real-time file or folder whose rate is unknown


class LatestFrame:
    """``with LatestFrame(source) as capture: frame, index = capture.get(0.5)``.

    Attributes (read by the consumer):
        dropped: frames read but replaced before the consumer took them.
        reconnects: times a lost live source came back; ``lost``: times it was lost.
        signal: False while a live source is lost or stalled; ``state``: "live", "stale" or "no signal".
        last_lost, last_reconnect: wall-clock (epoch) seconds of the latest loss and comeback, or None.
        ended: the source is finished (end of a file) or the reader stopped.
        stamp: ``time.perf_counter()`` when the frame last returned by ``get`` was read from the source
            (for a paced file or folder: when it was taken, since the reader reads ahead on purpose).
    """

    def __init__(self, source: Source, *, realtime: bool = False, log: Callable[[str], None] = print,
                 backoff: tuple[float, float] | None = None, misses: int = MISSES, stall_s: float = STALL_S):
        self.source, self.log, self.misses, self.stall_s = source, log, misses, stall_s
        self.backoff = backoff or BACKOFF_S
        self.paced = not source.live and not realtime  # wait for the consumer: no frame of a file is lost
        self.realtime = realtime and not source.live
        self.dropped = self.reconnects = self.lost = self.read_count = 0
        self.last_lost: float | None = None
        self.last_reconnect: float | None = None
        self.ended, self.stamp, self.error = False, 0.0, None
        self._signal, self._last = True, time.perf_counter()
        self._slot: tuple[np.ndarray, int, float] | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skinedge-capture", daemon=True)

    # ------------------------------------------------------------------ consumer side
    def start(self) -> "LatestFrame":
        self._last = time.perf_counter()
        self._thread.start()
        return self

    def __enter__(self) -> "LatestFrame":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def signal(self) -> bool:
        """False while a live source is lost, or has given nothing for ``stall_s`` (a read that blocks)."""
        return self.state != "no signal"

    @property
    def state(self) -> str:
        """"live"; "stale" while a live source has given nothing for ``STALE_S`` (the last frame still shown);
        "no signal" once it is lost or has given nothing for ``stall_s``, until it is back."""
        if not self.source.live:
            return "live"
        gap = time.perf_counter() - self._last
        if not self._signal or gap >= self.stall_s:
            return "no signal"
        return "stale" if gap >= STALE_S else "live"

    def frame_age(self) -> float:
        """Seconds since the source last gave a frame."""
        return time.perf_counter() - self._last

    def get(self, timeout: float) -> tuple[np.ndarray, int] | None:
        """The newest frame and its index in the source (0-based), or None after ``timeout`` s / at the end."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self.ended, timeout)
            if self._slot is None:
                return None
            frame, index, self.stamp = self._slot
            if self.paced:  # a prefetched file frame waits for us, not we for it: its latency starts now
                self.stamp = time.perf_counter()
            self._slot = None
            self._cond.notify_all()  # a paced reader waits for the slot to empty
            return frame, index

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the reader; True when it has finished (a camera read can block a while)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - the consumer must hear of it, not wait forever
            self.error = exc
            self.log(f"capture stopped: {type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _loop(self) -> None:
        misses, start = 0, time.perf_counter()
        fps = self.source.fps or DEFAULT_FPS
        while not self._stop.is_set():
            frame = self._read()
            stalled = self.source.live and time.perf_counter() - self._last >= self.stall_s
            if frame is None or stalled:
                if not self.source.live:
                    return
                misses += 1
                if stalled and frame is None:
                    self.log(f"{self.source.describe()}: no frame for {time.perf_counter() - self._last:.1f} s "
                             "(read timed out)")
                if misses >= self.misses or stalled:  # a stalled source is reopened, whatever it gives now
                    misses = 0
                    frame = self._reconnect()
                if frame is None:
                    continue
            misses = 0
            if self.realtime and self._stop.wait(max(0.0, start + self.read_count / fps - time.perf_counter())):
                return
            self._put(frame)

    def _read(self) -> np.ndarray | None:
        """One frame; an exception from the device or decoder counts as a missing frame."""
        try:
            return self.source.read()
        except Exception as exc:  # noqa: BLE001 - cv2.error, OSError...: a lost frame, not a crash
            if not self.source.live:
                self.log(f"{self.source.describe()}: stopped at frame {self.read_count}: {exc}")
            return None

    def _put(self, frame: np.ndarray) -> None:
        now = time.perf_counter()
        with self._cond:
            if self.paced:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
                if self._stop.is_set():
                    return
            if self._slot is not None:
                self.dropped += 1
            self._slot = (frame, self.read_count, now)
            self.read_count += 1
            self._last = now
            self._cond.notify_all()

    def _reconnect(self) -> np.ndarray | None:
        """Reopen a lost live source with exponential back-off; its first frame, or None when stopped."""
        self.lost += 1
        self.last_lost = time.time()
        self._signal = False
        name = self.source.describe()
        self.log(f"{name}: no signal; reconnecting (every {self.backoff[0]:g} s, up to {self.backoff[1]:g} s)")
        delay, tries = self.backoff[0], 0
        while not self._stop.wait(delay):
            tries += 1
            frame = self._try_reopen()
            if frame is not None:
                self.reconnects += 1
                self.last_reconnect = time.time()
                self._last = time.perf_counter()
                self._signal = True
                self.log(f"{name}: signal back after {tries} attempt(s)")
                return frame
            delay = min(delay * 2, self.backoff[1])
        return None

    def _try_reopen(self) -> np.ndarray | None:
        try:
            self.source.reopen()
            return self.source.read()
        except Exception:  # noqa: BLE001 - still gone (SkinedgeError, cv2.error, OSError): try again later
            return None
