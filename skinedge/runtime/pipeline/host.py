"""One frame through the whole method (DESIGN.md §1), on any pair of runners.

preprocess → seg → mask (threshold, small-blob removal, context, ROI) →
the ROI at native resolution, with its real surround (never a black one: the
generator was not trained on it, and it draws a dark halo) → SR (tiled and
batched when large) → projection (SR made consistent with the camera's LR
ROI, :mod:`skinedge.runtime.pipeline.projection`) → composite (bicubic up-scale of the
background, feathered lesion blend). The pixel stages are the NumPy
references of the CUDA kernels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Runner
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.mask import LesionMask, MaskSettings, lesion_mask
from skinedge.runtime.pipeline.projection import Fidelity, project, residual
from skinedge.runtime.pipeline.reference import Roi
from skinedge.runtime.pipeline.tiling import super_resolve_tiled

MODES = ("roi", "full")
MIN_SIDE = 16  # smaller frames carry no lesion worth enhancing


@dataclass
class FrameResult:
    """The enhanced view and what the pipeline found.

    ``image`` is uint8 BGR: the lesion ROI ×scale (``roi`` mode) or the whole
    frame ×scale (``full`` mode, and whenever no lesion is found).
    """

    image: np.ndarray
    found: bool
    roi: Roi | None
    lesion_area: float
    mask: LesionMask
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""
    residual: float | None = None  # mean |down(SR) − LR| in the lesion, 0–255, before projection


class Pipeline:
    """``with Pipeline(seg_runner, sr_runner, manifest) as p: result = p(frame_bgr)``."""

    def __init__(self, seg: Runner, sr: Runner, manifest: dict, mode: str = "roi",
                 settings: MaskSettings = MaskSettings(), tile: int = 256, overlap: int = 8, max_batch: int = 4,
                 fidelity: Fidelity = Fidelity()):
        if mode not in MODES:
            raise SkinedgeError(f"unknown mode {mode!r}; choose roi or full")
        self.seg, self.sr, self.mode, self.settings, self.fidelity = seg, sr, mode, settings, fidelity
        self.tile, self.overlap, self.max_batch = tile, overlap, max_batch
        seg_net, sr_net = manifest["networks"]["seg"], manifest["networks"]["sr"]
        self.seg_in, self.seg_out = seg_net["input"]["name"], seg_net["output"]["name"]
        self.size = int(seg_net["input"]["shape"][2])
        self.mean, self.std = seg_net["input"]["mean"], seg_net["input"]["std"]
        self.sr_in, self.sr_out = sr_net["input"]["name"], sr_net["output"]["name"]
        self.scale = int(sr_net["scale"])

    def __enter__(self) -> "Pipeline":
        self.seg.activate()
        self.sr.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.seg.deactivate()
        self.sr.deactivate()

    def _sr(self, batch: np.ndarray) -> np.ndarray:
        return self.sr.infer({self.sr_in: batch})[self.sr_out]

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Enhance one uint8 BGR H×W×3 frame."""
        h, w = check_frame(frame)
        t = {}
        start = time.perf_counter()
        x = reference.preprocess(frame, self.size, self.mean, self.std)
        t["preprocess"] = _lap(start)
        logits = self.seg.infer({self.seg_in: x})[self.seg_out][0, 0]
        t["seg"] = _lap(start, t)
        lm = lesion_mask(logits, (h, w), self.settings)
        t["mask"] = _lap(start, t)
        full = (0, 0, w * self.scale, h * self.scale)
        if not lm.found:
            image = reference.composite(frame, None, lm.soft, (0, 0, 0, 0), self.scale, full)
            t["sr"] = t["project"] = 0.0
            t["composite"] = _lap(start, t)
            t["total"] = sum(t.values())
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only")
        lr = reference.masked_roi(frame, lm.mask, lm.roi, self.fidelity.surround)
        sr = super_resolve_tiled(self._sr, lr, self.scale, self.tile, self.overlap, self.max_batch)
        t["sr"] = _lap(start, t)
        camera = lr if self.fidelity.surround == "frame" else reference.masked_roi(frame, lm.mask, lm.roi, "frame")
        invented = residual(sr, camera, reference.roi_lesion(lm.soft, frame.shape[:2], lm.roi))
        invented = None if invented != invented else invented  # no lesion pixel inside the ROI: nothing to say
        sr = project(sr, camera, self.fidelity)
        t["project"] = _lap(start, t)
        x0, y0, rw, rh = lm.roi
        rect = full if self.mode == "full" else (x0 * self.scale, y0 * self.scale, rw * self.scale, rh * self.scale)
        image = reference.composite(frame, sr, lm.soft, lm.roi, self.scale, rect)
        t["composite"] = _lap(start, t)
        t["total"] = sum(t.values())
        return FrameResult(image, True, lm.roi, lm.area, lm, t, residual=invented)


def as_bgr(frame: np.ndarray | None) -> np.ndarray | None:
    """A camera frame as H×W×3 uint8 BGR: grey (H×W or H×W×1) and BGRA are converted, 16-bit frames scaled to
    8 bits; None or an empty frame gives None. Any other layout is a one-line SkinedgeError."""
    if frame is None or frame.size == 0:
        return None
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise SkinedgeError(f"a frame must be H×W×3 uint8 BGR, got {frame.shape} {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame[:, :, :3]) if frame.shape[2] == 4 else frame


def check_frame(frame: np.ndarray) -> tuple[int, int]:
    """(H, W) of a usable frame; a wrong layout or a too-small frame is a one-line SkinedgeError."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise SkinedgeError(f"a frame must be H×W×3 uint8 BGR, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise SkinedgeError(f"frame is {w}×{h}; skinedge needs at least {MIN_SIDE}×{MIN_SIDE} pixels")
    return h, w


def _lap(start: float, done: dict | None = None) -> float:
    """Milliseconds since ``start`` minus what earlier stages already took."""
    return (time.perf_counter() - start) * 1000 - sum((done or {}).values())
