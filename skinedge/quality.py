"""Two figures for the evaluation and the model card: SR checkerboard artefacts and skin tone (ITA).

Checkerboard: SR generators that up-sample by pixel shuffle can paint a faint 2-px-period pattern over flat
skin, detail the camera never saw. PSNR/SSIM barely move for a ±2 grey-level pattern, so it is measured
directly: the amplitude of the phase-coherent Nyquist (period-2) component of luma, read against the truth
(camera images have some of their own: Bayer demosaicking works on 2×2 cells).

Skin tone: the Individual Typology Angle (Chardon et al. 1991) of the healthy skin around the lesion, grouped
as Del Bino et al. 2006 do, so results can be reported per skin-tone group.
"""

from __future__ import annotations

import math

import numpy as np

from skinedge.filters import filter_separable
from skinedge.metrics import as_binary, rgb_to_lab, rgb_to_y

CHECKER_WINDOW = 16   # px: 8×8 cells of 2×2; an edge's response spans at most ~3 of a window's 8 cell columns
# Gain of "Y minus its 3×3 box mean" at the period-2 patterns (-1)^x, (-1)^y, (-1)^(x+y): 1+1/3, 1+1/3, 1-1/9.
_HIGHPASS_GAIN = {"x": 4.0 / 3.0, "y": 4.0 / 3.0, "xy": 8.0 / 9.0}


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation of a bool H×W mask by a (2r+1)² square (chessboard distance ≤ r), in O(1) per pixel (cumsums)."""
    out = mask
    for axis in (0, 1):
        n = out.shape[axis]
        counts = np.cumsum(out, axis=axis, dtype=np.int64)
        counts = np.concatenate([np.zeros_like(np.take(counts, [0], axis=axis)), counts], axis=axis)
        hi, lo = np.minimum(np.arange(n) + radius + 1, n), np.maximum(np.arange(n) - radius, 0)
        out = np.take(counts, hi, axis=axis) - np.take(counts, lo, axis=axis) > 0
    return out


def _image_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as bool H×W (all True when None), checked against the image's H×W."""
    if mask is None:
        return np.ones(shape[:2], dtype=bool)
    m = as_binary(mask)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask {m.shape} does not match image {tuple(shape[:2])}")
    return m


# ----------------------------------------------------------------- checkerboard (period-2 artefacts)
def checkerboard_energy(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared amplitude (Y grey levels², BT.601 studio swing) of the 2-px-period pattern in an image.

    ``image``: RGB H×W×3, uint8 (or float) in [0, 255]; ``mask``: optional H×W, where to measure.
    Definition: ``hp`` = Y minus its 3×3 box mean (removes the level and any linear gradient exactly).
    ``hp`` is demodulated by (-1)^x, (-1)^y and (-1)^(x+y) (image coordinates) and each result averaged over
    2×2 cells, which gives that cell's Hadamard coefficient and cancels the other two patterns exactly;
    dividing by the high-pass gain makes it the pattern's amplitude. In each 16×16 window (8×8 cells, tiled
    from pixel (1, 1)) the median over its 64 cells is taken per pattern, and the window scores the sum
    of the three squared medians; the result is the mean over the windows whose pixels and 3×3 support all lie
    in the mask (``nan`` when none does). Why the median: a pixel-shuffle checkerboard is phase-locked over the
    whole window, so every cell agrees, whereas an edge (a step leaves a ±dipole in ``hp``, strong at
    Nyquist) touches under half of the cells, so it does not move the median (a plain mean over 8×8 windows
    rated one 120-level step across a 128² image above a ±2-level checkerboard over all of it).
    A pure ±a pattern scores a².
    """
    y = rgb_to_y(image)
    inside = _image_mask(mask, y.shape)
    if min(y.shape) < CHECKER_WINDOW + 2:
        return math.nan
    hp = y[1:-1, 1:-1] - filter_separable(y, np.full(3, 1.0 / 3.0), mode="valid")
    inside = ~_dilate(~inside, 1)[1:-1, 1:-1]   # the 3×3 support of every measured pixel lies in the mask
    nh, nw = hp.shape[0] // CHECKER_WINDOW, hp.shape[1] // CHECKER_WINDOW
    h, w = nh * CHECKER_WINDOW, nw * CHECKER_WINDOW
    hp, inside = hp[:h, :w], inside[:h, :w]
    sign_x = 1.0 - 2.0 * (np.arange(1, w + 1) % 2)[None, :]   # (-1)^x in image coordinates (hp starts at 1)
    sign_y = 1.0 - 2.0 * (np.arange(1, h + 1) % 2)[:, None]
    cells = CHECKER_WINDOW // 2
    energy = np.zeros((nh, nw))
    for name, sign in (("x", sign_x), ("y", sign_y), ("xy", sign_x * sign_y)):
        coef = (hp * sign).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) / _HIGHPASS_GAIN[name]
        per_window = coef.reshape(nh, cells, nw, cells).transpose(0, 2, 1, 3).reshape(nh, nw, cells * cells)
        energy += np.median(per_window, axis=-1) ** 2
    valid = inside.reshape(nh, CHECKER_WINDOW, nw, CHECKER_WINDOW).all(axis=(1, 3))
    return float(energy[valid].mean()) if valid.any() else math.nan


def checkerboard_ratio(enhanced: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                       eps: float = 1e-6) -> float:
    """Checkerboard energy of the enhanced image against the truth's (≤ 1.5 is the project's target).

    Both images RGB H×W×3 in [0, 255] of equal shape; ``mask`` as in :func:`checkerboard_energy`. Both
    energies are floored at ``eps`` (Y levels²), so two images clean to the floor compare as 1.0, not 0.
    ``nan`` when no window fits the mask.
    """
    if np.shape(enhanced) != np.shape(truth):
        raise ValueError(f"images differ in shape: {np.shape(enhanced)} vs {np.shape(truth)}")
    e, t = checkerboard_energy(enhanced, mask), checkerboard_energy(truth, mask)
    if math.isnan(e) or math.isnan(t):
        return math.nan
    return max(e, eps) / max(t, eps)


# ----------------------------------------------------------------- skin tone (ITA)
# (name, low, high): a group holds low < ITA <= high (Del Bino et al. 2006), lightest first.
ITA_GROUPS: tuple[tuple[str, float, float], ...] = (
    ("very light", 55.0, math.inf),
    ("light", 41.0, 55.0),
    ("intermediate", 28.0, 41.0),
    ("tan", 10.0, 28.0),
    ("brown", -30.0, 10.0),
    ("dark", -math.inf, -30.0),
)
MIN_SKIN_L = 20.0   # L* below this is a dermoscope's vignette, hair or shadow, not skin
RING_INNER, RING_OUTER = 0.02, 0.10   # ring radii as fractions of the image's short side


def healthy_skin_ring(mask: np.ndarray, inner: int | None = None, outer: int | None = None) -> np.ndarray:
    """Bool H×W: the skin around the lesion, from ``inner`` to ``outer`` px (chessboard distance) off it.

    ``mask``: the lesion, H×W (see :func:`skinedge.metrics.as_binary`). The gap of ``inner`` px keeps the
    lesion's blurred or mis-segmented border out; ``outer`` keeps the estimate local (far corners are often
    vignetted or another body site). Defaults: 2% and 10% of the short side (at least 1 and ``inner + 1``).
    When the ring is empty (the lesion fills the image, or there is none) all non-lesion pixels are returned.
    """
    m = as_binary(mask)
    short = min(m.shape)
    inner = max(1, round(RING_INNER * short)) if inner is None else inner
    outer = max(inner + 1, round(RING_OUTER * short)) if outer is None else outer
    ring = _dilate(m, outer) & ~_dilate(m, inner) if m.any() else np.zeros_like(m)
    return ring if ring.any() else ~m


def ita_degrees(image: np.ndarray, lesion_mask: np.ndarray) -> float:
    """Individual Typology Angle in degrees of the healthy skin around the lesion (higher = lighter skin).

    ``image``: sRGB uint8 H×W×3; ``lesion_mask``: H×W. ITA = atan2(L* - 50, b*) on CIELAB (D65) from the
    median L* and median b* over :func:`healthy_skin_ring`, leaving out pixels with L* < ``MIN_SKIN_L``.
    atan2 rather than arctan((L* - 50)/b*): equal for skin (b* > 0), but it has no division by zero at
    b* = 0 (±90°) and keeps bluish pixels (b* < 0) on the side their lightness says (past ±90°) instead of
    flipping the sign. ``nan`` when no usable pixel is left.
    """
    lab = rgb_to_lab(image)
    if lab.shape[:2] != as_binary(lesion_mask).shape:
        raise ValueError(f"mask {np.shape(lesion_mask)} does not match image {lab.shape[:2]}")
    skin = lab[healthy_skin_ring(lesion_mask)]
    skin = skin[skin[:, 0] >= MIN_SKIN_L]
    if not len(skin):
        return math.nan
    lightness, b = float(np.median(skin[:, 0])), float(np.median(skin[:, 2]))
    return math.degrees(math.atan2(lightness - 50.0, b))


def ita_group(ita: float) -> str:
    """The skin-tone group of an ITA in degrees (see ``ITA_GROUPS``); ``"unknown"`` for nan."""
    if math.isnan(ita):
        return "unknown"
    return next(name for name, low, high in ITA_GROUPS if low < ita <= high)
