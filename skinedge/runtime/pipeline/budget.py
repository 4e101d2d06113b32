"""The per-frame SR budget: how many LR pixels the generator may take so a frame fits a target frame rate.

SR costs ~4.4 MFLOP per LR pixel (paper-size generator), so without a cap the time per frame grows with the
lesion's area and no device stays real-time on large lesions. The default budget is *measured* on the
pipeline as opened (its backends, variants and threads, on this machine): one probe of the segmenter path
on a frame of the source's size, one of the ROI path (SR, projection, composite) on a square probe ROI;
what is left of the frame time after the segmenter path, at the ROI path's cost per LR pixel, is the budget.
The cost per pixel is not constant (fixed overheads weigh on small ROIs, caches on large ones), so the ROI
path is probed a second time at the size the first probe suggests, and that cost sets the budget. Each
probe runs the ROI path as a capped frame does (a larger ROI reduced to the probe's size first).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import MIN_BUDGET, Pipeline, reduced_size
from skinedge.runtime.pipeline.mask import LesionMask, feather

PROBE_SIDE = 80  # LR pixels: near the budgets a 2-core CPU ends up with
HEADROOM = 0.85  # the share of the frame time the pipeline may use (capture, viewers and the log take the rest)


@dataclass(frozen=True)
class Budget:
    """A derived SR budget and the measurements behind it."""

    pixels: int
    target_fps: float
    segment_ms: float
    roi_ms_per_px: float

    def describe(self) -> str:
        side = int(math.sqrt(self.pixels))
        return (f"SR budget {self.pixels} LR px (~{side}²) for {self.target_fps:g} frames/s: segmenter path "
                f"{self.segment_ms:.1f} ms, SR + projection + composite {self.roi_ms_per_px * 1000:.2f} ms per "
                f"1000 LR px, measured here")


def parse_budget(value: str | int | None) -> int | str | None:
    """``--sr-budget``: ``auto`` (derive it), ``none`` (no cap) or a number of LR pixels."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        pixels = int(text)
    except ValueError:
        raise SkinedgeError(f"--sr-budget must be auto, none or a number of LR pixels, got {value!r}") from None
    if pixels < MIN_BUDGET:
        raise SkinedgeError(f"--sr-budget must be at least {MIN_BUDGET} LR pixels, got {pixels}")
    return pixels


def _best_ms(run, repeats: int = 2) -> float:
    run()  # warm-up: first calls allocate
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def measure_budget(pipeline: Pipeline, target_fps: float, frame_shape: tuple[int, int] = (480, 640),
                   seed: int = 0) -> Budget:
    """Probe an entered host :class:`Pipeline` and derive its budget for ``target_fps``."""
    if target_fps <= 0:
        raise SkinedgeError(f"--target-fps must be positive, got {target_fps}")
    height, width = frame_shape
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
    seg_ms = _best_ms(lambda: pipeline.segment(frame, {}, time.perf_counter()))
    left_ms = 1000.0 * HEADROOM / target_fps - seg_ms
    per_px = _roi_ms_per_px(pipeline, frame, min(PROBE_SIDE, height, width))
    if left_ms > 0:  # again at the side the first probe suggests, where the budget will be spent
        side = min(height, width, max(int(math.sqrt(MIN_BUDGET)), int(math.sqrt(left_ms / per_px))))
        if side != min(PROBE_SIDE, height, width):
            per_px = _roi_ms_per_px(pipeline, frame, side)
    pixels = max(MIN_BUDGET, int(left_ms / per_px)) if left_ms > 0 else MIN_BUDGET
    return Budget(pixels, target_fps, round(seg_ms, 2), per_px)


def _roi_ms_per_px(pipeline: Pipeline, frame: np.ndarray, side: int) -> float:
    """ms per SR input pixel of the ROI path for ~side² pixels, *as a capped frame runs it*: a centred ROI
    1.5× the side, reduced to side² first (the reduction and the reduced composite are work an uncapped probe
    leaves out). Uncapped when the frame is too small for a larger ROI."""
    height, width = frame.shape[:2]
    big = min(height, width, math.ceil(side * 1.5))
    s = pipeline.size
    square = np.zeros((s, s), np.uint8)
    square[s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    roi = ((width - big) // 2, (height - big) // 2, big, big)
    probe = LesionMask(True, square, feather(square, 1.0), roi, 0.25)
    saved, pipeline.sr_budget = pipeline.sr_budget, (side * side if big > side else None)
    try:
        ms = _best_ms(lambda: pipeline.enhance(frame, probe, {}, time.perf_counter()))
        w, h = reduced_size(big, big, pipeline.sr_budget)
        return ms / (w * h)
    finally:
        pipeline.sr_budget = saved


def set_budget(pipeline: Pipeline, budget: int | str | None, target_fps: float,
               frame_shape: tuple[int, int] = (480, 640)) -> str:
    """Set an entered host pipeline's ``sr_budget`` from ``--sr-budget`` (``auto``: measured for
    ``target_fps`` on frames of ``frame_shape``); returns the line saying what was set and why."""
    return set_budget_measured(pipeline, budget, target_fps, frame_shape)[0]


def set_budget_measured(pipeline: Pipeline, budget: int | str | None, target_fps: float,
                        frame_shape: tuple[int, int] = (480, 640)) -> tuple[str, Budget | None]:
    """:func:`set_budget`, also returning the :class:`Budget` measured (None unless ``auto``)."""
    if budget == "auto":
        derived = measure_budget(pipeline, target_fps, frame_shape)
        pipeline.sr_budget = derived.pixels
        return derived.describe(), derived
    pipeline.sr_budget = budget
    return (f"SR budget {budget} LR px (asked for)" if budget else "SR budget: none (every ROI at full size)"), None


class BudgetControl:
    """Keeps an ``auto`` budget true while a live run goes: the probe runs on an idle machine, a live run
    shares it with the capture thread (decoding), the viewers and the recorder, so on this project's 2-core
    CPU a budget that fits the frame time when probed overran it by ~20 % live.

    After each frame whose ROI was capped and super-resolved, the budget is scaled by what the frame time
    left for the ROI path (after the measured segmenter path) over what that path took — at most −30 % or
    +10 % a step, never under :data:`MIN_BUDGET` nor over twice the probed budget. Frames under the budget
    anyway (small lesions) and reused frames teach it nothing.

    ``BudgetControl(pipeline, budget)(result)``; ``budget``: the :class:`Budget` ``set_budget`` measured.
    """

    def __init__(self, pipeline: Pipeline, budget: Budget):
        self.pipeline, self.high = pipeline, 2 * budget.pixels
        self.allowed_ms = 1000.0 * HEADROOM / budget.target_fps - budget.segment_ms
        self.lowest = self.highest = budget.pixels

    def __call__(self, result) -> None:
        if result.found and result.computed:
            t = result.timings_ms
            self.observe(t.get("sr", 0.0) + t.get("project", 0.0) + t.get("composite", 0.0),
                         result.sr_input_scale)

    def observe(self, roi_ms: float, input_scale: float | None) -> None:
        """One computed ROI: the time of its ROI path and the share of its side the generator saw."""
        budget = self.pipeline.sr_budget
        if budget is None or self.allowed_ms <= 0 or input_scale is None or input_scale >= 1.0 or roi_ms <= 0:
            return
        step = min(1.1, max(0.7, self.allowed_ms / roi_ms))
        self.pipeline.sr_budget = int(min(self.high, max(MIN_BUDGET, budget * step)))
        self.lowest, self.highest = min(self.lowest, self.pipeline.sr_budget), max(self.highest,
                                                                                   self.pipeline.sr_budget)

    def describe(self) -> str:
        return (f"SR budget kept to the frame time live: {self.pipeline.sr_budget} LR px at the end "
                f"(range {self.lowest}–{self.highest})")
