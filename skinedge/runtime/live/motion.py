"""Camera motion between live frames, and a lesion mask moved with it (both live strategies use these).

A dermatoscope moves over skin mostly by translation between two frames at 30 fps, so the motion is one
shift, found by phase correlation of small grey copies (~1 ms at 640×480), and a mask from an earlier frame is
moved by the sum of the shifts since.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import replace

import numpy as np

from skinedge.runtime.pipeline.mask import LesionMask

MOTION_SIDE = 160  # width of the grey copy motion is measured on
MIN_RESPONSE = 0.05  # phase correlation peak below this: motion unsure


def grey_small(frame: np.ndarray) -> np.ndarray:
    """A ``MOTION_SIDE``-wide float32 grey copy of a BGR frame."""
    import cv2

    h, w = frame.shape[:2]
    small = cv2.resize(frame, (MOTION_SIDE, max(8, round(h * MOTION_SIDE / w))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)


def phase_shift(before: np.ndarray | None, now: np.ndarray, frame_width: int) -> tuple[float, float] | None:
    """(dx, dy) in frame pixels from ``before`` to ``now`` (grey copies of one size), or None when unsure."""
    import cv2

    if before is None or before.shape != now.shape:
        return None
    (dx, dy), response = cv2.phaseCorrelate(before.copy(), now.copy(), _hanning(now.shape))  # windows in place
    if response < MIN_RESPONSE:
        return None
    k = frame_width / now.shape[1]
    return dx * k, dy * k


@functools.lru_cache(maxsize=4)
def _hanning(shape: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.createHanningWindow(shape[::-1], cv2.CV_32F)


def _shift_grid(grid: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``grid`` moved by (dy, dx) cells, zeros where nothing moved in."""
    out = np.zeros_like(grid)
    h, w = grid.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = grid[ys, xs]
    return out


def shift_mask(lm: LesionMask, move: tuple[int, int], frame_shape: tuple[int, int]) -> LesionMask | None:
    """``lm`` moved by ``move`` = (dx, dy) frame pixels, or None when its ROI would leave the frame."""
    if not lm.found:
        return lm
    dx, dy = move
    if not dx and not dy:
        return lm
    h, w = frame_shape
    x0, y0, rw, rh = lm.roi
    if not (0 <= x0 + dx and x0 + dx + rw <= w and 0 <= y0 + dy and y0 + dy + rh <= h):
        return None
    s = lm.mask.shape[0]
    gy, gx = round(dy * s / h), round(dx * s / w)
    return replace(lm, mask=_shift_grid(lm.mask, gy, gx), soft=_shift_grid(lm.soft, gy, gx),
                   roi=(x0 + dx, y0 + dy, rw, rh))


class Track:
    """The camera's path over the last ``size`` frames: where frame *i* sits relative to the newest.

    Shifts are summed as measured (sub-pixel), so rounding does not drift; an unsure step breaks the path, and
    no frame before it can be placed any more.
    """

    def __init__(self, size: int = 64):
        self.path: deque[tuple[int, float, float, int]] = deque(maxlen=size)  # (index, x, y, unbroken stretch)
        self.stretch = 0

    def add(self, index: int, move: tuple[float, float] | None) -> None:
        if not self.path or move is None:
            self.stretch += move is None
            self.path.append((index, 0.0, 0.0, self.stretch))
            return
        _, x, y, _ = self.path[-1]
        self.path.append((index, x + move[0], y + move[1], self.stretch))

    def since(self, index: int) -> tuple[int, int] | None:
        """(dx, dy), rounded, that moves what frame ``index`` saw to where it is in the newest frame; None when
        that frame is no longer in the path or the motion since could not be measured."""
        if not self.path:
            return None
        _, x, y, stretch = self.path[-1]
        for i, xi, yi, si in reversed(self.path):
            if i == index:
                return (round(x - xi), round(y - yi)) if si == stretch else None
            if i < index:
                break
        return None
