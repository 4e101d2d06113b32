"""From segmenter logits to the lesion mask, its ROI and its feathered edge (NumPy, both paths).

All of this works at the segmenter's S×S resolution (256² at most, so it is
cheap on a CPU, and on the GPU path it is the one small host round trip a
frame needs), then maps the ROI to frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skinedge.filters import filter_separable, gaussian_kernel1d
from skinedge.runtime.pipeline.reference import Roi


@dataclass(frozen=True)
class MaskSettings:
    """How the raw segmentation becomes the mask the pipeline uses.

    Attributes:
        open_radius: small-blob removal: an opening (erode, then dilate) by this
            many mask pixels removes specks narrower than 2r+1.
        min_area: lesions smaller than this share of the frame count as none.
        context_px: frame pixels of image kept around the lesion for SR (the
            masking context of the evaluation protocol, docs/protocol.md).
        margin_px: extra frame pixels around the lesion's box in the ROI.
        feather_px: Gaussian sigma, in frame pixels, of the composite's edge.
        largest_only: keep only the largest connected blob (8-connected), as a dermoscopy frame centres one
            lesion: a stray blob (a sticker, a ruler mark, a dark corner) no longer widens the ROI. On 57 held-out
            ISIC photos it raised Dice 0.851 → 0.863 (``train all``'s 60-minute models). Needs OpenCV; without
            it every blob is kept.
    """

    open_radius: int = 1
    min_area: float = 0.0005
    context_px: int = 4
    margin_px: int = 8
    feather_px: float = 1.0
    largest_only: bool = True


@dataclass
class LesionMask:
    found: bool
    mask: np.ndarray  # S×S uint8 0/1, cleaned and dilated by the context (what SR sees)
    soft: np.ndarray  # S×S float32, feathered cleaned mask (where SR shows)
    roi: Roi | None  # frame pixels
    area: float  # lesion share of the frame (cleaned mask, before dilation)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)² square: lets SR see a little context past the border."""
    out = mask.copy()
    for _ in range(radius):
        p = np.pad(out, 1)
        out = (p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
               | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:])
    return out


def mask_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image multiplied by the binary mask: lesion kept, the rest black (step 3)."""
    return image * mask[:, :, None].astype(image.dtype)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A soft version of ``mask`` (Gaussian-blurred), so the composite shows no seam."""
    soft = mask.astype(np.float32)
    if sigma <= 0:
        return soft
    taps = gaussian_kernel1d(sigma, max(1, int(np.ceil(3 * sigma))))
    return filter_separable(soft, taps, mode="reflect").astype(np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected blob of a bool mask (the mask itself when OpenCV is missing or it has ≤ 1 blob)."""
    try:
        import cv2
    except ImportError:
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return ~dilate(~mask, radius)


def lesion_mask(logits: np.ndarray, frame_shape: tuple[int, int], settings: MaskSettings = MaskSettings()
                ) -> LesionMask:
    """Threshold (logit > 0), remove small blobs, keep the largest, dilate by the context, box it, feather it.

    Args:
        logits: S×S float32 segmenter output.
        frame_shape: (H, W) of the frame the ROI refers to.
    """
    s = logits.shape[0]
    h, w = frame_shape
    raw = logits > 0
    clean = dilate(erode(raw, settings.open_radius), settings.open_radius) if settings.open_radius else raw
    if settings.largest_only:
        clean = largest_component(clean)
    area = float(clean.mean())
    per_px = s / min(h, w)  # mask pixels per frame pixel (the larger of the two axes' densities)
    sigma = max(0.5, settings.feather_px * per_px)
    if area < settings.min_area:
        empty = np.zeros((s, s), np.uint8)
        return LesionMask(False, empty, np.zeros((s, s), np.float32), None, area)
    grown = dilate(clean, max(1, math.ceil(settings.context_px * per_px)))
    ys, xs = np.nonzero(grown)
    x0 = max(0, math.floor(xs.min() * w / s) - settings.margin_px)
    y0 = max(0, math.floor(ys.min() * h / s) - settings.margin_px)
    x1 = min(w, math.ceil((xs.max() + 1) * w / s) + settings.margin_px)
    y1 = min(h, math.ceil((ys.max() + 1) * h / s) + settings.margin_px)
    return LesionMask(True, grown.astype(np.uint8), feather(clean, sigma), (x0, y0, x1 - x0, y1 - y0), area)


def frame_mask(mask: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """An S×S 0/1 mask at frame resolution (bilinear ≥ 0.5, the masked-ROI kernel's rule)."""
    from skinedge.runtime.pipeline.reference import bilinear_coords, sample_bilinear

    h, w = frame_shape
    s = mask.shape[0]
    return sample_bilinear(mask, bilinear_coords(h, s), bilinear_coords(w, s)) >= 0.5
