"""Temporal reuse for live runs: skip work the last frames already did.

A dermatoscope is held still over a lesion for seconds at a time, and between two frames at 30 fps the
lesion moves a few pixels at most. So, per frame:

1. **Camera motion**: the translation since the last frame, by phase correlation of small grey copies
   (~1 ms at 640×480).
2. **Segmenter at a lower rate**: it runs every ``seg_every`` frames (and whenever the motion is large or
   unsure); in between, the last mask and ROI follow the camera (shifted by the motion).
3. **SR reuse**: when the ROI keeps its size and its LR pixels differ from the last *enhanced* ROI's (at the
   tracked place) by less than ``still`` grey levels on average, the last projected SR is shown again on the
   current frame's background instead of running the generator; at most ``max_reuse`` frames in a row, so a
   slow drift below the threshold cannot freeze the view.

Each :class:`~skinedge.runtime.pipeline.host.FrameResult` says what happened (``segmented``, ``computed``).
"""

from __future__ import annotations

import time

import numpy as np

from skinedge.runtime.live.motion import grey_small, phase_shift, shift_mask
from skinedge.runtime.pipeline.host import FrameResult, Pipeline, check_frame
from skinedge.runtime.pipeline.mask import LesionMask

MAX_TRACK = 0.1  # a motion larger than this share of the frame's width re-runs the segmenter


def roi_change(now: np.ndarray, before: np.ndarray) -> float:
    """Mean |Δ| (grey levels) of two equal-sized BGR crops at half resolution (2×2 means): camera noise halves,
    a moving edge or new detail does not, so the still test tells a held camera from a moving one."""
    h, w = (now.shape[0] // 2) * 2, (now.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return float(np.abs(now.astype(np.int16) - before.astype(np.int16)).mean())
    pool = lambda a: a[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))  # noqa: E731
    return float(np.abs(pool(now) - pool(before)).mean())


class TemporalReuse:
    """``TemporalReuse(pipeline)(frame) -> FrameResult``: an entered host pipeline with reuse across frames.

    Args:
        pipeline: an entered :class:`Pipeline`.
        seg_every: run the segmenter at least every N frames (1: every frame).
        still: mean |Δ| (grey levels, 0–255, at half resolution: :func:`roi_change`) of the ROI's LR pixels
            under which the last SR is reused (0: never reuse). 1.5 sits above the noise of a held camera
            (σ ≈ 1.5 gives ~0.85) and below a lesion edge moving by a pixel.
        max_reuse: frames in a row that may show one SR result.
    """

    def __init__(self, pipeline: Pipeline, seg_every: int = 3, still: float = 1.5, max_reuse: int = 15):
        self.pipeline, self.seg_every, self.still, self.max_reuse = pipeline, max(1, seg_every), still, max_reuse
        self.grey: np.ndarray | None = None
        self.lm: LesionMask | None = None
        self.since_seg = 0
        self.last: FrameResult | None = None  # the last frame whose SR was computed
        self.last_frame: np.ndarray | None = None
        self.reused = 0
        self.counts = {"frames": 0, "segmented": 0, "computed": 0}

    def motion(self, grey: np.ndarray, frame_shape: tuple[int, int]) -> tuple[int, int] | None:
        """(dx, dy) in frame pixels since the last frame, or None when unsure."""
        move = phase_shift(self.grey, grey, frame_shape[1])
        return None if move is None else (round(move[0]), round(move[1]))

    def _track(self, move: tuple[int, int], frame_shape: tuple[int, int]) -> LesionMask | None:
        """The last mask shifted by the camera's motion, or None when it cannot follow (ROI leaves the frame)."""
        if self.lm is None or max(abs(move[0]), abs(move[1])) > MAX_TRACK * frame_shape[1]:
            return None
        return shift_mask(self.lm, move, frame_shape)

    def _still(self, frame: np.ndarray, lm: LesionMask) -> bool:
        """The ROI's LR pixels barely changed since the last computed SR (and it may still be reused)."""
        last = self.last
        if (self.still <= 0 or last is None or not lm.found or last.roi is None or self.reused >= self.max_reuse
                or last.roi[2:] != lm.roi[2:] or self.last_frame.shape != frame.shape):
            return False
        x0, y0, w, h = lm.roi
        a, b, *_ = last.roi
        return roi_change(frame[y0:y0 + h, x0:x0 + w], self.last_frame[b:b + h, a:a + w]) < self.still

    def __call__(self, frame: np.ndarray) -> FrameResult:
        check_frame(frame)
        t: dict[str, float] = {}
        start = time.perf_counter()
        grey = grey_small(frame)
        move = self.motion(grey, frame.shape[:2])
        self.grey = grey
        lm = self._track(move, frame.shape[:2]) if move is not None and self.since_seg < self.seg_every - 1 \
            else None
        segmented = lm is None
        if segmented:
            lm = self.pipeline.segment(frame, t, start)
            self.since_seg = 0
        else:
            t["preprocess"] = t["seg"] = 0.0
            t["mask"] = (time.perf_counter() - start) * 1000
            self.since_seg += 1
        self.lm = lm
        reuse = self.last.sr if self._still(frame, lm) else None
        result = self.pipeline.enhance(frame, lm, t, start, reuse)
        result.segmented = segmented
        if result.found and result.computed:
            self.last, self.last_frame, self.reused = result, frame, 0
        elif result.found:
            self.reused += 1
        self.counts["frames"] += 1
        self.counts["segmented"] += segmented
        self.counts["computed"] += bool(result.found and result.computed)
        return result
