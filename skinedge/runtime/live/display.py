"""The display loop's step of the two-loop live view: one per camera frame, with no network in it.

Per frame, in the loop's thread:

1. the camera's motion since the last frame (phase correlation, :mod:`skinedge.runtime.live.motion`);
2. the frame goes to the SR loop (:class:`~skinedge.runtime.live.sr_loop.SRLoop`: segmenter + generator on
   its own thread, newest frame first);
3. the SR loop's newest result, its mask and SR moved by the motion summed since its frame;
4. that SR projected onto *this* frame's camera pixels (:func:`~skinedge.runtime.pipeline.projection.project`):
   what is shown agrees with what the camera sees now, not with what it saw then;
5. the composite, as the one-loop pipeline makes it.

When the newest SR is older than ``max_age_ms``, or the motion since its frame could not be measured, or it
would land outside the frame, the ROI shows the bicubic up-scale of this frame: never a stale SR out of place.
Every result carries ``sr_age_ms``: how much older than the frame shown the SR's frame was.
"""

from __future__ import annotations

import time

import numpy as np

from skinedge.runtime.live.motion import Track, grey_small, phase_shift, shift_mask
from skinedge.runtime.live.sr_loop import Published, SRLoop
from skinedge.runtime.live.stats import Window
from skinedge.runtime.pipeline.host import BICUBIC_NOTE, EarlierSR, FrameResult, Pipeline, check_frame
from skinedge.runtime.pipeline.mask import LesionMask

MAX_AGE_MS = 250.0  # an SR older than this is not shown: ~8 frames at 30 fps, where tracking still holds
HOLD_WINDOW = 300  # frames whose processing latency sets the presentation delay (~10 s at 30 fps)
HOLD_FLOOR_MS = 5.0
HOLD_INTERVALS = 0.95  # the presentation delay's ceiling, in camera frame intervals
NO_LESION = LesionMask(False, np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.float32), None, 0.0)


class Pacer:
    """Shows every frame a constant delay after its capture, as a video player's jitter buffer does: the step's
    own time jitters with what the SR loop and the decoder do on the shared cores, the shown frames do not.

    The delay is the 99th percentile of the last ``HOLD_WINDOW`` frames' ready-latency (capture → composite
    done), at least ``HOLD_FLOOR_MS`` and at most ``ceiling_ms`` (below the camera's frame interval, so holding
    never makes the loop miss the next frame). A frame later than the delay is shown at once.
    """

    def __init__(self, ceiling_ms: float, clock=time.perf_counter, sleep=time.sleep):
        self.ceiling_ms, self.clock, self.sleep = ceiling_ms, clock, sleep
        self.ready = Window(HOLD_WINDOW)
        self.delay_ms = HOLD_FLOOR_MS

    def hold(self, captured: float) -> None:
        """Wait until ``captured`` + the delay (``clock`` seconds), learning from this frame's ready-latency."""
        self.ready.add((self.clock() - captured) * 1000)
        self.delay_ms = min(self.ceiling_ms, max(HOLD_FLOOR_MS, self.ready.percentile(99)))
        wait = captured + self.delay_ms / 1000 - self.clock()
        if wait > 0:
            self.sleep(wait)


class TwoLoopDisplay:
    """``TwoLoopDisplay(pipeline, sr_loop)(frame) -> FrameResult``, in constant time per frame.

    Args:
        pipeline: the entered :class:`Pipeline` the SR loop runs (its projection and composite are used here;
            a GpuPipeline does them on a second CUDA stream, :mod:`skinedge.runtime.gpu.two_loops`).
        sr_loop: the started SR loop.
        max_age_ms: the oldest SR shown (older: bicubic).
        clock: time source (seconds); the age is measured between two of its readings in this loop.
    """

    def __init__(self, pipeline: Pipeline, sr_loop: SRLoop, max_age_ms: float = MAX_AGE_MS,
                 clock=time.perf_counter):
        if not max_age_ms > 0:
            raise ValueError(f"max_age_ms must be positive, got {max_age_ms}")
        self.pipeline, self.sr_loop, self.max_age_ms, self.clock = pipeline, sr_loop, max_age_ms, clock
        self.track = Track()
        self.grey: np.ndarray | None = None
        self.index = -1
        self.counts = {"frames": 0, "sr": 0, "bicubic": 0, "no_lesion": 0}
        self.hold_intervals = HOLD_INTERVALS  # results shown at a constant delay up to this (:class:`Pacer`)
        self.control = None  # the SR budget's live control, when ``run`` set one (its summary line)

    def __call__(self, frame: np.ndarray) -> FrameResult:
        h, w = check_frame(frame)
        t: dict[str, float] = {}
        start = self.clock()
        self.index += 1
        grey = grey_small(frame)
        self.track.add(self.index, phase_shift(self.grey, grey, w))
        self.grey = grey
        self.sr_loop.submit(frame, self.index, start)
        lm, earlier, age = self.place(self.sr_loop.latest(), (h, w), start)
        t["preprocess"] = t["seg"] = 0.0
        t["mask"] = (self.clock() - start) * 1000
        result = self.pipeline.enhance(frame, lm, t, start, earlier=earlier)
        result.segmented = result.computed = False
        # the GPU display can still fall back to bicubic (the SR loop reused the result's slot meanwhile)
        shown = result.found and earlier is not None and earlier.sr is not None and result.note != BICUBIC_NOTE
        result.sr_age_ms = age if shown else None
        if result.found and not shown:
            result.note = result.note or BICUBIC_NOTE
        self.counts["frames"] += 1
        self.counts["sr" if shown else "bicubic" if result.found else "no_lesion"] += 1
        return result

    def place(self, got: Published | None, frame_shape: tuple[int, int], now: float
              ) -> tuple[LesionMask, EarlierSR | None, float | None]:
        """(mask, SR to project, its age in ms) for this frame from the SR loop's newest result."""
        if got is None or not got.lm.found:
            return (NO_LESION if got is None else got.lm), None, None
        age = (now - got.at) * 1000
        move = self.track.since(got.index)
        lm = shift_mask(got.lm, move, frame_shape) if move is not None else None
        if lm is None:  # the motion since is unknown, or the lesion left the frame there: bicubic where it was
            return got.lm, EarlierSR(None), age
        if age > self.max_age_ms or got.earlier is None:
            return lm, EarlierSR(None), age
        return lm, got.earlier, age
