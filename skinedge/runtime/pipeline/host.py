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

import math
import time
from dataclasses import dataclass, field

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Runner
from skinedge.runtime.pipeline import noise as noise_level
from skinedge.runtime.pipeline.camera_plane import plane_value, sr_channels, with_plane
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.mask import LesionMask, MaskSettings, lesion_mask
from skinedge.runtime.pipeline.projection import Fidelity, down, project, residual, up
from skinedge.runtime.pipeline.reference import Roi
from skinedge.runtime.pipeline.tiling import super_resolve_tiled

MODES = ("roi", "full")
BICUBIC_NOTE = "SR too old or out of place: bicubic up-scale"  # a live frame shown without the SR loop's result
MIN_SIDE = 16  # smaller frames carry no lesion worth enhancing


@dataclass
class FrameResult:
    """The enhanced view and what the pipeline found.

    ``image`` is uint8 BGR: the lesion ROI ×scale (``roi`` mode; ×scale·``sr_input_scale`` when the SR budget
    reduced the ROI first) or the whole frame ×scale (``full`` mode, and whenever no lesion is found).
    ``segmented``/``computed`` say whether the segmenter and the generator ran on this frame or the live loop's
    temporal reuse carried the mask (tracked) or the SR result (reused) over from an earlier frame.
    ``sr_age_ms`` (the two-loop live view) is how much older than this frame the frame was whose SR is shown
    (None: no SR shown, or made from this very frame).
    """

    image: np.ndarray
    found: bool
    roi: Roi | None
    lesion_area: float
    mask: LesionMask
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""
    residual: float | None = None  # mean |down(SR) − LR| in the lesion, 0–255, before projection
    sr_input_scale: float = 1.0  # the share of the ROI's side the generator saw (< 1: reduced to the SR budget)
    segmented: bool = True
    computed: bool = True
    sr: np.ndarray | None = field(default=None, repr=False)  # the projected SR of the (reduced) ROI, for reuse
    sr_age_ms: float | None = None  # two-loop live view: how long before this frame the SR shown was made from


class Pipeline:
    """``with Pipeline(seg_runner, sr_runner, manifest) as p: result = p(frame_bgr)``.

    ``sr_budget`` caps the LR pixels the generator gets per frame: a larger ROI is first reduced (the
    degradation's own anti-aliased bicubic) to fit, so SR time is bounded whatever the lesion's size, and the
    ROI view comes out at ×scale·s instead of ×scale. None: no cap (stills, the paper's pipeline).
    """

    def __init__(self, seg: Runner, sr: Runner, manifest: dict, mode: str = "roi",
                 settings: MaskSettings = MaskSettings(), tile: int = 256, overlap: int = 8, max_batch: int = 4,
                 fidelity: Fidelity = Fidelity(), sr_budget: int | None = None):
        if mode not in MODES:
            raise SkinedgeError(f"unknown mode {mode!r}; choose roi or full")
        if sr_budget is not None and sr_budget < MIN_BUDGET:
            raise SkinedgeError(f"--sr-budget must be at least {MIN_BUDGET} LR pixels, got {sr_budget}")
        self.seg, self.sr, self.mode, self.settings, self.fidelity = seg, sr, mode, settings, fidelity
        self.tile, self.overlap, self.max_batch, self.sr_budget = tile, overlap, max_batch, sr_budget
        # the live SR loop's floor: the generator sees at least 1/scale of the ROI's side, so the view (×scale)
        # holds every camera pixel and is projected onto them (its time then sets the SR's age, not the fps)
        self.camera_resolution = False
        seg_net, sr_net = manifest["networks"]["seg"], manifest["networks"]["sr"]
        self.seg_in, self.seg_out = seg_net["input"]["name"], seg_net["output"]["name"]
        self.size = int(seg_net["input"]["shape"][2])
        self.mean, self.std = seg_net["input"]["mean"], seg_net["input"]["std"]
        self.sr_in, self.sr_out = sr_net["input"]["name"], sr_net["output"]["name"]
        self.scale, self.sr_channels = int(sr_net["scale"]), sr_channels(sr_net)

    def __enter__(self) -> "Pipeline":
        self.seg.activate()
        self.sr.activate()
        self.seg.check_names("seg", self.seg_in, self.seg_out)
        self.sr.check_names("sr", self.sr_in, self.sr_out)
        return self

    def __exit__(self, *exc) -> None:
        self.seg.deactivate()
        self.sr.deactivate()

    def _sr(self, batch: np.ndarray) -> np.ndarray:
        return self.sr.infer({self.sr_in: batch})[self.sr_out]

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Enhance one uint8 BGR H×W×3 frame."""
        check_frame(frame)
        t: dict[str, float] = {}
        start = time.perf_counter()
        return self.enhance(frame, self.segment(frame, t, start), t, start)

    def segment(self, frame: np.ndarray, t: dict[str, float], start: float) -> LesionMask:
        """Preprocess, segmenter and mask stages of one checked frame (timings into ``t``)."""
        x = reference.preprocess(frame, self.size, self.mean, self.std)
        t["preprocess"] = _lap(start)
        logits = self.seg.infer({self.seg_in: x})[self.seg_out][0, 0]
        t["seg"] = _lap(start, t)
        lm = lesion_mask(logits, frame.shape[:2], self.settings)
        t["mask"] = _lap(start, t)
        return lm

    def enhance(self, frame: np.ndarray, lm: LesionMask, t: dict[str, float], start: float,
                reuse: np.ndarray | None = None, earlier: "EarlierSR | None" = None) -> FrameResult:
        """SR, projection and composite of a frame whose mask is known.

        ``reuse``: an earlier frame's *projected* SR of a ROI of the same size, shown again as it is (temporal
        reuse). ``earlier``: the generator's output for this ROI made from an earlier frame (the live SR loop's,
        already moved to where the lesion is now), projected onto *this* frame's camera pixels instead of
        running the generator; with no SR in it (too old, or of another size), the ROI's bicubic up-scale.
        """
        h, w = frame.shape[:2]
        full = (0, 0, w * self.scale, h * self.scale)
        if not lm.found:
            image = reference.composite(frame, None, lm.soft, (0, 0, 0, 0), self.scale, full)
            t["sr"] = t["project"] = 0.0
            t["composite"] = _lap(start, t)
            t["total"] = sum(t.values())
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only")
        x0, y0, rw, rh = lm.roi
        camera = reference.masked_roi(frame, lm.mask, lm.roi, "frame")
        small = (earlier.size if earlier is not None else None) or self.sr_size(rw, rh)
        # what the shown ROI is made consistent with: the camera's own pixels whenever the view has at least as
        # many (a ROI reduced for the generator still shows ≥ what the camera saw); else the reduced ROI
        guide = camera if self._view_holds(small, rw) else _reduced(camera, small)
        invented, note = None, ""
        if reuse is not None and reuse.shape[2:] != (small[1] * self.scale, small[0] * self.scale):
            reuse = None  # the SR budget changed the reduced size since that SR was made: compute it anew
        if earlier is not None and not earlier.fits(small, self.scale):
            earlier = EarlierSR(None)  # made at another reduced size: nothing of it can be placed here
        if reuse is not None:
            sr = reuse
            t["sr"] = t["project"] = 0.0
        elif earlier is not None and earlier.sr is None:
            sr = up(guide, small[1] * self.scale, small[0] * self.scale)
            t["sr"] = t["project"] = 0.0
            note = BICUBIC_NOTE
        else:
            level = earlier.level if earlier is not None else None
            if self.fidelity.noise == "auto" and guide is camera and level is None:  # the frame's own JPEG grid
                level = noise_level.estimate(camera, origin=(y0, x0))
            if earlier is not None:
                sr = earlier.sr
                t["sr"] = 0.0
            else:
                sr = self.generate(_reduced(guide, small), lm, frame.shape[:2], small, level)
                t["sr"] = _lap(start, t)
            lesion = reference.roi_lesion(lm.soft, frame.shape[:2], lm.roi)
            if guide is not camera:
                lesion = reference.resample_axis(reference.resample_axis(
                    lesion[None].astype(np.float32), small[1], 1, "triangle"), small[0], 2, "triangle")[0] >= 0.5
            invented = residual(sr, guide, lesion)
            invented = None if invented != invented else invented  # no lesion pixel inside the ROI: nothing to say
            sr = project(sr, guide, self.fidelity, level=level)
            t["project"] = _lap(start, t)
        if small == (rw, rh):
            rect = full if self.mode == "full" else (x0 * self.scale, y0 * self.scale, rw * self.scale,
                                                     rh * self.scale)
            image = reference.composite(frame, sr, lm.soft, lm.roi, self.scale, rect)
        elif self.mode == "full":  # the reduced SR enlarged back to the ROI ×scale, then the usual composite
            image = reference.composite(frame, up(sr, rh * self.scale, rw * self.scale), lm.soft, lm.roi,
                                        self.scale, full)
        else:
            image = composite_reduced(guide, sr, lm.soft, frame.shape[:2], lm.roi)
        t["composite"] = _lap(start, t)
        t["total"] = sum(t.values())
        return FrameResult(image, True, lm.roi, lm.area, lm, t, note, residual=invented,
                           sr_input_scale=small[0] / rw, computed=reuse is None and earlier is None,
                           sr=sr if earlier is None or earlier.sr is not None else None)

    def generate(self, camera: np.ndarray, lm: LesionMask, frame_shape: tuple[int, int],
                 small: tuple[int, int], level: "noise_level.NoiseLevel | None" = None) -> np.ndarray:
        """The generator on the (reduced) camera ROI, with the surround the fidelity settings ask for.

        A generator with a camera plane is told whether this LR holds a camera's noise: ``level`` (measured on
        the ROI at full size) when the generator sees those pixels, else measured on the reduced LR it sees."""
        lr = camera if self.fidelity.surround == "frame" else np.where(
            _keep(lm, frame_shape, small), camera, 0.0).astype(np.float32)
        run = self._sr
        if self.sr_channels == 4:
            unreduced = small == tuple(lm.roi[2:])
            if level is None or not unreduced:  # a reduced LR has lost the frame's JPEG grid: no origin
                level = noise_level.estimate(camera, origin=(lm.roi[1], lm.roi[0]) if unreduced else (0, 0))
            value = plane_value(level)
            run = lambda batch: self._sr(with_plane(batch, value))  # noqa: E731
        return super_resolve_tiled(run, lr, self.scale, self.tile, self.overlap, self.max_batch)

    def sr_size(self, rw: int, rh: int) -> tuple[int, int]:
        """(w, h) the generator gets for a rw×rh ROI: reduced to the SR budget, but with ``camera_resolution``
        never below 1/scale of the ROI's side (so the view holds every camera pixel)."""
        small = reduced_size(rw, rh, self.sr_budget)
        if self.camera_resolution and small[0] * self.scale < rw:
            small = (min(rw, -(-rw // self.scale)), min(rh, -(-rh // self.scale)))
        return small

    def _view_holds(self, small: tuple[int, int], rw: int) -> bool:
        """Whether the SR of a ROI reduced to ``small`` has at least the camera ROI's pixels (then it is projected
        onto them at full resolution)."""
        return small[0] * self.scale >= rw

    def generate_frame(self, frame: np.ndarray, lm: LesionMask) -> "EarlierSR":
        """What the live SR loop publishes for one frame: the generator's output for its (reduced) ROI and the
        camera's noise level there, unprojected (each shown frame projects it onto its own pixels)."""
        camera = reference.masked_roi(frame, lm.mask, lm.roi, "frame")
        rw, rh = lm.roi[2:]
        small = self.sr_size(rw, rh)  # the budget read once: the size travels with the SR
        level = None
        if self.fidelity.noise == "auto" and self._view_holds(small, rw):
            level = noise_level.estimate(camera, origin=(lm.roi[1], lm.roi[0]))
        sr = self.generate(_reduced(camera, small), lm, frame.shape[:2], small, level)
        return EarlierSR(sr, level, small)


@dataclass(frozen=True)
class EarlierSR:
    """The generator's output for a ROI of an earlier frame (``sr`` None: show the bicubic up-scale instead)."""

    sr: np.ndarray | None
    level: "noise_level.NoiseLevel | None" = None
    size: tuple[int, int] | None = None  # (w, h) of the LR the generator saw

    def fits(self, small: tuple[int, int], scale: int) -> bool:
        return self.sr is None or self.sr.shape[2:] == (small[1] * scale, small[0] * scale)


MIN_BUDGET = 32 * 32  # below this the generator sees too little of a lesion to be worth running


def reduced_size(w: int, h: int, budget: int | None) -> tuple[int, int]:
    """(w, h) of a w×h ROI reduced, aspect kept, to at most ``budget`` pixels (unchanged when it fits); of the
    sizes one pixel either side of that, one whose area is no multiple of 32, which OpenVINO runs up to 2.6×
    faster (OpenVINO also pads to its own grid: :func:`skinedge.runtime.backends.openvino.fast_side_sizes`)."""
    if budget is None or w * h <= budget:
        return w, h
    s = math.sqrt(budget / (w * h))
    rw, rh = max(8, min(w, math.floor(w * s))), max(8, min(h, math.floor(h * s)))
    for dw, dh in ((0, 0), (1, 0), (0, 1), (1, 1)):  # a size whose area is no multiple of 32: see fast_side_sizes
        if ((rw - dw) * (rh - dh)) % 32:
            return rw - dw, rh - dh
    return rw, rh


def _reduced(camera: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    """The 1×3×h×w camera ROI at the generator's (w, h): itself, or reduced as a lower-resolution camera sees it."""
    return camera if camera.shape[2:] == (small[1], small[0]) else down(camera, small[1], small[0])


def _keep(lm: LesionMask, frame_shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """1×1×h×w bool: the dilated mask (what SR sees) over the ROI at ``size``, for the paper's black surround."""
    height, width = frame_shape
    s = lm.mask.shape[0]
    x0, y0, w, h = lm.roi
    ys = reference.bilinear_coords(size[1], s, y0 * size[1] / h, h * s / (size[1] * height))
    xs = reference.bilinear_coords(size[0], s, x0 * size[0] / w, w * s / (size[0] * width))
    return (reference.sample_bilinear(lm.mask, ys, xs) >= 0.5)[None, None]


def composite_reduced(camera: np.ndarray, sr: np.ndarray, soft: np.ndarray, frame_shape: tuple[int, int],
                      roi: Roi) -> np.ndarray:
    """The ROI view when SR ran on the reduced ROI: the camera ROI's bicubic up-scale (``camera``: the ROI at the
    camera's resolution when the view holds it, else reduced) as background, SR inside the feathered mask
    (sampled at each output pixel's centre), by the composite's blending rule."""
    height, width = frame_shape
    x0, y0, w, h = roi
    _, _, oh, ow = sr.shape
    s = soft.shape[0]
    bg = up(camera, oh, ow)[0, ::-1].transpose(1, 2, 0) * 255.0
    a = reference.sample_bilinear(soft, reference.bilinear_coords(oh, s, y0 * oh / h, h * s / (oh * height)),
                                  reference.bilinear_coords(ow, s, x0 * ow / w, w * s / (ow * width)))
    return reference.blend(sr[0, ::-1].transpose(1, 2, 0) * 255.0, bg, a.astype(np.float32))


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
