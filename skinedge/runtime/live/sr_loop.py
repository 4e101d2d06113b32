"""The SR loop of the two-loop live view: segmenter and generator on their own thread, newest frame first.

The display loop hands it every frame (:meth:`SRLoop.submit` keeps only the newest; an older one still waiting
is dropped, never queued), and reads the newest finished result (:meth:`SRLoop.latest`) whenever it shows a
frame. So the generator's time sets how *old* the SR on screen is, never how often the screen changes.
The segmenter runs here too, on the frame the generator will enhance: the mask and the SR come from the same
frame, and the display loop's step has no network in it, so its time stays flat.

ONNX Runtime and OpenVINO release the GIL while they run, so the two loops share the cores for real; how
many threads each network gets here is set by :func:`set_threads` (the display loop's NumPy work is the rest).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import EarlierSR, Pipeline
from skinedge.runtime.pipeline.mask import LesionMask


@dataclass(frozen=True)
class Published:
    """One finished SR loop result: the mask of its frame and the generator's output for its ROI."""

    index: int  # the display loop's number of the frame it was made from
    at: float  # when the display loop handed that frame over (perf_counter seconds)
    lm: LesionMask
    earlier: EarlierSR | None  # None: no lesion in that frame
    seg_ms: float  # segmenter and mask
    sr_ms: float  # generator (0 with no lesion)


class SRLoop:
    """``with SRLoop(pipeline) as loop: loop.submit(frame, index, at); loop.latest()``.

    Args:
        pipeline: an entered :class:`Pipeline` (or :class:`~skinedge.runtime.gpu.pipeline.GpuPipeline`: its
            ``segment`` and ``generate_frame`` on its own CUDA stream); only this thread calls its networks.
        log: where one line goes if the thread fails (the display loop then shows bicubic, and says so).
        on_result: called on this thread with each result (e.g. to keep the SR budget to the loop's target).
    """

    def __init__(self, pipeline: Pipeline, log: Callable[[str], None] = print,
                 on_result: Callable[[Published], None] | None = None):
        self.pipeline, self.log, self.on_result = pipeline, log, on_result
        self._cond = threading.Condition()
        self._job: tuple[np.ndarray, int, float] | None = None
        self._latest: Published | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.counts = {"segmented": 0, "computed": 0}

    def __enter__(self) -> "SRLoop":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "SRLoop":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="skinedge-sr-loop", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, frame: np.ndarray, index: int, at: float) -> None:
        """The newest frame (the loop keeps a reference: the caller must not write into it afterwards)."""
        with self._cond:
            self._job = (frame, index, at)
            self._cond.notify()

    def latest(self) -> Published | None:
        with self._cond:
            return self._latest

    def _take(self) -> tuple[np.ndarray, int, float] | None:
        with self._cond:
            while self._job is None and not self._stop:
                self._cond.wait()
            job, self._job = self._job, None
            return None if self._stop else job

    def _run(self) -> None:
        try:
            while (job := self._take()) is not None:
                frame, index, at = job
                start = time.perf_counter()
                lm = self.pipeline.segment(frame, {}, start)
                seg_done = time.perf_counter()
                earlier = self.pipeline.generate_frame(frame, lm) if lm.found else None
                end = time.perf_counter()
                got = Published(index, at, lm, earlier, (seg_done - start) * 1000, (end - seg_done) * 1000)
                with self._cond:
                    self._latest = got
                    self.counts["segmented"] += 1
                    self.counts["computed"] += earlier is not None
                if self.on_result is not None:
                    self.on_result(got)
        except Exception as exc:  # noqa: BLE001 - a backend failing mid-run: the view goes on, and says why
            self.error = str(exc) if isinstance(exc, SkinedgeError) else f"{type(exc).__name__}: {exc}"
            self.log(f"SR loop stopped: {self.error}; the view shows the bicubic up-scale from here on")


def set_threads(pipeline: Pipeline, threads: int) -> bool:
    """Re-open both networks with ``threads`` intra-op threads each (ONNX Runtime, OpenVINO); False when the
    backend's loader has no such setting (TensorRT, a test double) and nothing changed."""
    runners = [pipeline.seg, pipeline.sr]
    if threads <= 0 or not all(hasattr(getattr(r, "loader", None), "threads") for r in runners):
        return False
    for runner in runners:
        if runner.loader.threads != threads:
            was_active = runner.active
            runner.deactivate()
            runner.loader.threads = threads
            if was_active:
                runner.activate()
    return True
