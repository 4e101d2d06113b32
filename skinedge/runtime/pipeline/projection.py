"""Data-consistency projection: make the SR output agree with what the camera saw (NumPy reference).

A generator may invent colour and low frequencies; the camera's LR frame is the one truth we have. After SR,
the output ``x`` is corrected so that down-scaling it gives back the LR input (iterative back-projection):

    x ← x + up(LR − down(x))        ``iterations`` times, then clipped to [0, 1]

with ``down`` the degradation's own down-scaler (anti-aliased bicubic, PIL's kernel, as ``degrade`` and
training use) and ``up`` the same bicubic kernel enlarging. What survives is detail whose down-scale is zero:
colour and anything visible at the camera's resolution come from the camera, not from the generator.

``chroma="camera"`` (before projecting) keeps only the generator's luma detail: ``x = up(LR) + Y(SR − up(LR))``
on all three channels (BT.601 weights), so no hue or saturation the camera did not see enters the lesion.

``noise="auto"`` knows that the camera's frame is not clean (the discrepancy principle, Morozov): the frame's
noise floor (mean |LR − down(scene)| that sensor noise and JPEG put there, :mod:`.noise`, estimated from the LR
alone) bounds how far fitting the LR makes sense. Each step then reads

    r = LR − down(x);  stop if mean |r| ≤ STOP·floor;  x ← x + up(shrink(r, THRESHOLD·floor))

with shrink(r, t) = sign(r)·max(|r| − t, 0): residuals the size of the noise are left alone, real departures of
colour or brightness are still corrected (less t). A clean frame has a floor of 0, and the steps are then exactly
the full projection's. ``noise="auto"`` is the default (a camera frame is never clean); ``noise="off"`` is the full
projection, what the CUDA twin computes: the GPU pipeline sets ``noise="off"`` and says so in its description.

An SR at about its LR's own size (under ``NOISE_AWARE_FROM`` = ×2: the live view that keeps the camera's pixels)
is projected fully, in one step, whatever ``noise`` says: there the camera's frame is the better estimate.

The consistency *residual*, mean |down(SR) − LR| over the lesion's LR pixels in 0–255 units, measured before
projection, is each frame's figure of how much the generator invents.

Layout: float32 1×3×h×w RGB in [0, 1] (the SR network's tensors). The CUDA twin is ``kernels/projection.cu``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skinedge.runtime.pipeline import noise as noise_level
from skinedge.runtime.pipeline.reference import resample_axis

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601, RGB
CHROMA = ("camera", "generator")
NOISE = ("off", "auto")
# The discrepancy principle's τ (stop once mean |r| ≤ STOP · floor) and the soft threshold t = THRESHOLD · floor.
# The floor counts sensor noise and JPEG, not the camera's blur, so a trained generator's output sits above 1·floor
# from the camera's frame while being nearer the scene: at (1, 1) the projection lowered the generator's lesion
# PSNR-Y on 10 of 40 validation photos (camera LR, mean −0.030 dB); at (3, 2) on 2 (+0.002 dB), with clean LR
# (floor 0) unchanged (+0.18 dB over the generator). benchmarks/projection_vs_generator.py; train all's 60-min run.
STOP = 3.0
THRESHOLD = 2.0
# Below this magnification over its LR (the live view that keeps the camera's pixels: the generator saw the ROI
# reduced ÷4 and gave back about the camera's own size) the SR only estimates pixels the camera already has, and
# the camera's frame is the better estimate: projected fully. At (3, 2) such views kept 2-3 noise floors of the
# generator's guesses: two loops lost 5-6 dB lesion PSNR-Y against the same views' camera pixels on the live clip
# (benchmarks/live_display.py, the demo's models). One step, not three: near ×1 it takes the residual to the LR from
# 3.5 to 1.3 grey levels (exactly 0 at ×1), two more reach 0.7 for 2.3× the time, which the display loop lacks.
NOISE_AWARE_FROM = 2.0


@dataclass(frozen=True)
class Fidelity:
    """How the runtime keeps SR faithful to the camera.

    Attributes:
        iterations: back-projection steps after SR (0: off).
        chroma: ``camera`` (colour from the smooth up-scale of the frame, luma detail from the generator) or
            ``generator`` (the generator's own colour, then projected).
        surround: what SR sees around the lesion inside its ROI: ``frame`` (the real image: no halo) or
            ``black`` (the paper's masked image; kept for reproducing it).
        noise: ``off`` (project fully onto the LR: today's projection, the CUDA kernel's) or ``auto`` (project
            only down to the LR's estimated noise floor: noisy, JPEG-compressed camera frames).
    """

    iterations: int = 3
    chroma: str = "camera"
    surround: str = "frame"
    noise: str = "auto"

    def __post_init__(self):
        if self.iterations < 0:
            raise ValueError(f"projection iterations must be ≥ 0, got {self.iterations}")
        if self.chroma not in CHROMA:
            raise ValueError(f"chroma must be camera or generator, got {self.chroma!r}")
        if self.surround not in ("frame", "black"):
            raise ValueError(f"surround must be frame or black, got {self.surround!r}")
        if self.noise not in NOISE:
            raise ValueError(f"noise must be off or auto, got {self.noise!r}")

    @property
    def active(self) -> bool:
        return self.iterations > 0 or self.chroma == "camera"

    def describe(self) -> str:
        if not self.active:
            return "projection off, generator's colour"
        auto = self.noise == "auto" and self.iterations > 0
        steps = f"{self.iterations} step(s)" + (" down to the LR's noise floor" if auto else "")
        return (f"projection {steps}, chroma from the "
                f"{'camera' if self.chroma == 'camera' else 'generator'}, {self.surround} surround")


OFF = Fidelity(iterations=0, chroma="generator", surround="frame")


def down(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """The degradation's down-scale of 1×3×H×W to 1×3×h×w (rows, then columns)."""
    return resample_axis(resample_axis(x, h, 2), w, 3)


def up(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic enlargement of 1×3×h×w to 1×3×H×W (rows, then columns)."""
    return resample_axis(resample_axis(x, height, 2), width, 3)


def keep_luma(sr: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """``smooth + Y(sr − smooth)`` per channel: the generator's luma detail on the camera's colour."""
    d = sr - smooth
    luma = LUMA[0] * d[:, 0] + LUMA[1] * d[:, 1] + LUMA[2] * d[:, 2]
    if d.dtype == np.float32:  # d is spent: the sum goes in its place
        return np.add(smooth, luma[:, None], out=d)
    return (smooth + luma[:, None]).astype(np.float32)


def residual(sr: np.ndarray, lr: np.ndarray, lesion: np.ndarray | None = None) -> float:
    """Mean |down(SR) − LR| in 0–255 units over the lesion's LR pixels (all pixels without a mask)."""
    d = np.abs(down(sr, lr.shape[2], lr.shape[3]) - lr)[0].mean(axis=0) * 255.0
    if lesion is not None:
        if not lesion.any():
            return float("nan")
        d = d[lesion]
    return float(d.mean())


def shrink(r: np.ndarray, t: float) -> np.ndarray:
    """Soft threshold sign(r)·max(|r| − t, 0), in place on ``r``."""
    mag = np.abs(r)
    np.subtract(mag, np.float32(t), out=mag)
    np.maximum(mag, 0.0, out=mag)
    return np.copysign(mag, r, out=r)


def project(sr: np.ndarray, lr: np.ndarray, fidelity: Fidelity = Fidelity(),
            level: noise_level.NoiseLevel | None = None) -> np.ndarray:
    """The SR output made consistent with its LR input (see the module docstring); float32 1×3×H×W.

    ``level``: the LR's noise (``noise="auto"``), when the caller has it already; estimated here otherwise.
    """
    if not fidelity.active:
        return sr
    _, _, height, width = sr.shape
    _, _, h, w = lr.shape
    floor, iterations = 0.0, fidelity.iterations
    if min(height / h, width / w) < NOISE_AWARE_FROM:  # about the LR's own size: one full step (see above)
        iterations = min(iterations, 1)
    elif fidelity.noise == "auto" and iterations:
        floor = (level or noise_level.estimate(lr)).floor / 255.0
    x = np.asarray(sr, np.float32)
    owned = x is not sr  # from here on, x's own buffer is updated in place (the same float32 operations)
    if fidelity.chroma == "camera":
        x, owned = keep_luma(x, up(lr, height, width)), True
    for _ in range(iterations):
        r = lr - down(x, h, w)
        if floor > 0.0:  # the discrepancy principle: fit the LR down to its noise, not into it
            if float(np.abs(r).mean()) <= STOP * floor:
                break
            r = shrink(r, THRESHOLD * floor)
        step = up(r, height, width)
        if owned:
            x += step
        else:
            x, owned = x + step, True
    return np.clip(x, 0.0, 1.0, out=x if owned else None)


def project_image(sr: np.ndarray, lr: np.ndarray, fidelity: Fidelity = Fidelity()) -> np.ndarray:
    """:func:`project` on H×W×3 float RGB images in [0, 1] (how eval and the gates hold pictures)."""
    planar = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1)[None], np.float32)  # noqa: E731
    return project(planar(sr), planar(lr), fidelity)[0].transpose(1, 2, 0)
