"""Augmentations that teach a segmenter trained from scratch to read real dermoscopy photographs.

Clean training images teach it that anything coloured is lesion: on real photographs it then segments
calibration stickers and rulers, and its mask spills into hair, black field-of-view corners and
illumination gradients. :func:`augment_dermoscopy` adds exactly those nuisances, each with its own
probability, all randomness from the caller's ``rng`` (deterministic per rng state), NumPy + OpenCV only
(about 2 ms per 256² image on one core). Objects drawn over the skin (stickers, rulers, hair) never change
the mask; only geometry and the vignette's black corners do.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["augment_dermoscopy", "augment_geometry"]

# Each transform's probability at strength 1 (scaled by strength, capped at 1).
P_FLIP, P_ROT90, P_AFFINE = 0.5, 0.5, 0.6
P_STICKERS, P_RULER, P_HAIR = 0.2, 0.15, 0.35
P_COLOUR, P_ILLUMINATION, P_VIGNETTE, P_DEGRADE = 0.8, 0.4, 0.3, 0.35

# Calibration sticker colours (RGB): blue, green, yellow, red, white.
_STICKER_RGB = np.array([(30, 90, 220), (40, 170, 70), (235, 205, 40), (215, 40, 40), (245, 245, 245)], np.float64)
_AA = cv2.LINE_AA
_SHIFT = 3  # sub-pixel bits for cv2 drawing: points are multiplied by 2**_SHIFT


def _hit(rng: np.random.Generator, p: float, s: float) -> bool:
    return bool(rng.random() < min(1.0, p * s))


def _strength(strength: float) -> float:
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a finite number >= 0, not {strength}")
    return min(float(strength), 2.0)


def _points(xy: np.ndarray) -> np.ndarray:
    return np.round(xy * (1 << _SHIFT)).astype(np.int32)


def _check(image: np.ndarray, mask: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 H×W×3 RGB, not {image.dtype} {image.shape}")
    if mask.dtype != np.bool_ or mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be bool {image.shape[:2]}, not {mask.dtype} {mask.shape}")


def augment_geometry(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                     strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Flips, 90° turns (square images; 180° otherwise) and an affine: any angle, scale 0.75–1.25, ±6 % shift.

    A dermatoscope is held at any angle and distance, so lesions have no up, no left and no fixed size;
    the image and the mask move together (mask warped linearly and thresholded at 0.5, both reflected at
    the border). Always returns fresh contiguous arrays.
    """
    _check(image, mask)
    s = _strength(strength)
    h, w = mask.shape
    if _hit(rng, P_FLIP, s):
        image, mask = image[:, ::-1], mask[:, ::-1]
    if _hit(rng, P_FLIP, s):
        image, mask = image[::-1], mask[::-1]
    if _hit(rng, P_ROT90, s):
        k = int(rng.integers(1, 4)) if h == w else 2
        image, mask = np.rot90(image, k), np.rot90(mask, k)
    if not _hit(rng, P_AFFINE, s):
        return image.copy(), mask.copy()
    angle = rng.uniform(-180.0, 180.0) * min(s, 1.0)
    scale = math.exp(rng.uniform(math.log(0.75), math.log(1.25)) * s)
    m = np.array(cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale), np.float64)
    m[:, 2] += rng.uniform(-0.06, 0.06, 2) * s * (w, h)
    border = cv2.BORDER_REFLECT_101
    image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    soft = cv2.warpAffine(mask.astype(np.uint8) * 255, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    return image, soft > 127


def _stickers(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """1–2 calibration stickers (saturated discs or rounded rectangles) outside the lesion, in place.

    Clinics stick colour/size calibration dots next to the lesion; being the most saturated thing in
    the photograph, an untrained segmenter calls them lesion. A sticker is never lesion: the mask keeps
    them out, and a sticker whose box (+2 px anti-aliasing) would touch the lesion is moved or skipped.
    """
    h, w = mask.shape
    for _ in range(int(rng.integers(1, 3))):
        r = rng.uniform(0.04, 0.1) * min(h, w)
        rect = rng.random() < 0.4
        a, b = (r * rng.uniform(0.8, 1.6), r * rng.uniform(0.6, 1.0)) if rect else (r, r)
        colour = tuple(float(c) for c in np.clip(_STICKER_RGB[rng.integers(len(_STICKER_RGB))]
                                                 + rng.normal(0, 12, 3), 0, 255))
        for _ in range(8):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            x0, x1 = max(int(cx - a) - 2, 0), max(int(cx + a) + 3, 0)
            y0, y1 = max(int(cy - b) - 2, 0), max(int(cy + b) + 3, 0)
            if mask[y0:y1, x0:x1].any():
                continue
            if not rect:
                cv2.circle(image, (round(cx), round(cy)), round(r), colour, -1, _AA)
                break
            c = min(a, b) * rng.uniform(0.2, 0.6)  # corner radius
            for (u0, v0), (u1, v1) in (((-a + c, -b), (a - c, b)), ((-a, -b + c), (a, b - c))):
                cv2.rectangle(image, (round(cx + u0), round(cy + v0)), (round(cx + u1), round(cy + v1)), colour, -1)
            for u, v in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
                cv2.circle(image, (round(cx + u * (a - c)), round(cy + v * (b - c))), round(c), colour, -1, _AA)
            break
    return image


def _ruler(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """A ruler scale (black or white ticks, every 5th long, maybe a base line) along one edge, in place.

    Dermoscopes and clinicians put millimetre scales in the frame; their regular dark ticks look like
    pigment network. Drawn along the edge whose band holds the least lesion; the mask is unchanged.
    """
    h, w = mask.shape
    band = max(6, int(0.12 * min(h, w)))
    overlap = np.array([mask[:band].sum(), mask[-band:].sum(), mask[:, :band].sum(), mask[:, -band:].sum()])
    edge = int(np.argmin(overlap + rng.random(4)))  # top, bottom, left, right; ties broken at random
    length = w if edge < 2 else h
    step, short = rng.uniform(4.0, 9.0), rng.uniform(2.0, max(0.25 * band, 2.0))
    base = rng.uniform(1.0, max(band - 2 * short, 1.5))
    start = rng.uniform(0.0, 0.3) * length
    along = np.arange(start, min(start + rng.uniform(0.5, 1.0) * length, length - 1), step)
    tick = np.where(np.arange(len(along)) % 5 == 0, 2 * short, short)
    pairs = [np.stack([along, along], 1), np.stack([np.full_like(along, base), base + tick], 1)]
    if rng.random() < 0.5 and len(along) > 1:  # the scale's base line
        pairs = [np.vstack([pairs[0], [[along[0], along[-1]]]]), np.vstack([pairs[1], [[base, base]]])]
    u, v = pairs
    x, y = [(u, v), (u, v), (v, u), (v, u)][edge]
    if edge == 1:
        y = h - 1 - y
    elif edge == 3:
        x = w - 1 - x
    grey = rng.uniform(5, 40) if rng.random() < 0.6 else rng.uniform(215, 250)
    cv2.polylines(image, list(_points(np.stack([x, y], -1))), False, (grey, grey, grey), 1, _AA, _SHIFT)
    return image


def _hair(image: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """1–12 thin dark curved hairs (quadratic Bézier curves, 1–2 px, anti-aliased), in place.

    Hair crosses most lesions on real skin; a dark thin curve is neither lesion border nor background.
    Hair over a lesion is still lesion, so the mask is unchanged.
    """
    h, w = image.shape[:2]
    n = int(rng.integers(1, max(1, round(12 * min(s, 1.0))) + 1))
    p0 = rng.uniform((0, 0), (w, h), (n, 1, 2))
    theta, length = rng.uniform(0, 2 * np.pi, (n, 1, 1)), rng.uniform(0.15, 0.6, (n, 1, 1)) * min(h, w)
    p2 = p0 + length * np.concatenate([np.cos(theta), np.sin(theta)], -1)
    p1 = (p0 + p2) / 2 + rng.normal(0.0, 1.0, (n, 1, 2)) * 0.15 * length
    t = np.linspace(0.0, 1.0, 16)[None, :, None]
    curves = _points((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2)  # n × 16 × (x, y)
    dark = rng.uniform(8, 70, (n, 1)) * np.hstack([np.ones((n, 1)), rng.uniform((0.6, 0.4), (0.9, 0.75), (n, 2))])
    for curve, colour, width in zip(curves, dark.tolist(), rng.integers(1, 3, n).tolist()):
        cv2.polylines(image, [curve], False, colour, width, _AA, _SHIFT)  # black to dark brown, 1–2 px
    return image


def _colour(image: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """White balance (±10 % per channel), contrast ±25 %, brightness ±10 %, gamma 0.7–1.4, saturation ±25 %.

    Cameras, light sources (LED, halogen, polarised or not) and clinics' processing differ, so absolute
    colour says little; the lesion is what differs from its own surrounding skin.
    """
    gain = 1.0 + rng.uniform(-0.1, 0.1, 3) * s
    contrast, brightness = 1.0 + rng.uniform(-0.25, 0.25) * s, rng.uniform(-0.1, 0.1) * s * 255
    gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.4)) * s)
    saturation = 1.0 + rng.uniform(-0.25, 0.25) * s
    pivot = np.array(cv2.mean(image)[:3]) * gain
    v = (np.arange(256.0)[:, None] * gain - pivot) * contrast + pivot + brightness
    lut = 255.0 * (np.clip(v, 0, 255) / 255.0) ** gamma
    image = cv2.LUT(image, np.round(lut).astype(np.uint8).reshape(256, 1, 3))
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(image, saturation, grey, 1.0 - saturation, 0.0)


def _illumination(image: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Multiply by a smooth quadratic field spanning about 0.75–1.15 across the image.

    Ring lights, lenses pressed at an angle and curved skin light the field of view unevenly: the dim
    side of a photograph must not read as lesion.
    """
    h, w = image.shape[:2]
    y, x = np.linspace(-1, 1, h, dtype=np.float32)[:, None], np.linspace(-1, 1, w, dtype=np.float32)[None]
    c = [float(v) for v in rng.normal(size=5)]
    field = (c[0] * x + c[2] * x * x) + (c[1] * y + c[3] * y * y) + c[4] * (x * y)
    lo, hi = float(field.min()), float(field.max())
    low, high = 1.0 - rng.uniform(0.05, 0.25) * s, 1.0 + rng.uniform(0.0, 0.15) * s
    field = (field - lo) * np.float32((high - low) / max(hi - lo, 1e-6)) + np.float32(low)
    return cv2.multiply(image, cv2.merge([field, field, field]), dtype=cv2.CV_8U)


def _vignette(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              s: float) -> tuple[np.ndarray, np.ndarray]:
    """Black corners: the dermatoscope's circular field of view, radius 0.68–0.95 × the half diagonal.

    Many dermoscopy photographs show the round lens as a black frame; dark is not lesion, so the mask
    is cleared outside the circle (where the 2–6 px soft edge is past half-way to black).
    """
    h, w = mask.shape
    r = 0.5 * math.hypot(h, w) * (1.0 - rng.uniform(0.05, 0.32) * min(s, 1.0))
    cy, cx = (h - 1) / 2 + rng.uniform(-0.05, 0.05) * h, (w - 1) / 2 + rng.uniform(-0.05, 0.05) * w
    edge, black = rng.uniform(2.0, 6.0), rng.uniform(0.0, 12.0)
    y, x = np.arange(h, dtype=np.float32)[:, None] - cy, np.arange(w, dtype=np.float32)[None] - cx
    d = np.sqrt(y * y + x * x)
    alpha = np.clip((r - d) / np.float32(edge), 0, 1)
    floor = (black * (1 - alpha) + 0.5).astype(np.uint8)
    out = cv2.add(cv2.multiply(image, cv2.merge([alpha, alpha, alpha]), dtype=cv2.CV_8U), cv2.merge([floor] * 3))
    return out, mask & (alpha > 0.5)


def _degrade(image: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Mild Gaussian blur (σ 0.3–1.1) or JPEG re-compression (quality 50–95).

    Archive photographs are often slightly out of focus and compressed several times; the segmenter must
    not depend on sharp edges or rely on compression-free texture.
    """
    if rng.random() < 0.4:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.1))
    quality = round(95 - rng.uniform(0.0, 45.0) * min(s, 1.0))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    return image if decoded is None else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def augment_dermoscopy(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                       strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """An augmented (uint8 H×W×3 RGB image, bool H×W lesion mask) pair of the same shapes; inputs untouched.

    In order: geometry, stickers, ruler, hair, colour, illumination, vignette, blur/JPEG, each with its
    own probability (``P_*`` × ``strength``, capped at 1); ``strength`` also scales the magnitudes
    (0: identity, 1: the ranges in the docstrings, at most 2).
    """
    _check(image, mask)
    s = _strength(strength)
    if s == 0:
        return image.copy(), mask.copy()
    image, mask = augment_geometry(image, mask, rng, s)
    for p, transform in ((P_STICKERS, _stickers), (P_RULER, _ruler)):  # drawn in place, mask unchanged
        if _hit(rng, p, s):
            image = transform(image, mask, rng, s)
    for p, change in ((P_HAIR, _hair), (P_COLOUR, _colour), (P_ILLUMINATION, _illumination)):
        if _hit(rng, p, s):
            image = change(image, rng, s)
    if _hit(rng, P_VIGNETTE, s):
        image, mask = _vignette(image, mask, rng, s)
    if _hit(rng, P_DEGRADE, s):
        image = _degrade(image, rng, s)
    return image, mask
