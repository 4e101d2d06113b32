"""NumPy references of the three CUDA kernels (``kernels/*.cu``), with the same math.

The CPU path runs these; the GPU path runs the kernels; tests hold the two to
≤ 1 LSB. Conventions:

- frames are H×W×3 **uint8 BGR** (camera order); network tensors are float32
  **RGB NCHW**; the segmenter's mask lives at its own S×S resolution.
- coordinates use pixel centres (x + 0.5); sampling outside an image clamps to
  the edge pixel.
- a ROI is ``(x0, y0, w, h)`` in frame pixels.

Resampling is a triangle filter whose support widens with the shrink factor
(anti-aliased bilinear, like PIL's BILINEAR that training used) and plain
bilinear when enlarging. Its taps are precomputed per axis by
:func:`resample_taps`, and the kernel reads the same tables.
"""

from __future__ import annotations

import math

import numpy as np

Roi = tuple[int, int, int, int]  # x0, y0, w, h


def resample_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the input indices and weights of a 1-D resize.

    Returns:
        (index int32 out×K, weight float32 out×K); rows sum to 1. Taps that fall
        outside the input get weight 0 (their index is clamped into range).
    """
    scale = in_size / out_size
    support = max(1.0, scale)  # triangle half-width in input pixels
    k = int(math.ceil(support)) * 2 + 1
    centres = (np.arange(out_size) + 0.5) * scale  # in input pixel units
    first = np.floor(centres - support).astype(np.int64)
    taps = first[:, None] + np.arange(k)[None, :]
    weights = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - centres[:, None]) / support))
    weights[(taps < 0) | (taps >= in_size)] = 0.0  # outside the image: dropped, the rest renormalised (as PIL)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(taps, 0, in_size - 1).astype(np.int32), weights.astype(np.float32)


def preprocess(frame: np.ndarray, size: int, mean, std) -> np.ndarray:
    """Kernel (a): uint8 BGR H×W×3 → float32 1×3×size×size RGB, resized and normalised.

    out[c, y, x] = (Σ_i Σ_j wy[y,i]·wx[x,j]·frame[iy, jx, 2−c] / 255 − mean[c]) / std[c]
    """
    h, w = frame.shape[:2]
    wy, wx = resample_matrix(h, size), resample_matrix(w, size)
    rgb = frame[:, :, ::-1].astype(np.float32)
    out = np.stack([wy @ rgb[:, :, c] @ wx.T for c in range(3)])  # 3×size×size
    out = (out / 255.0 - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return np.ascontiguousarray(out[None], dtype=np.float32)


def resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The taps of :func:`resample_taps` as a dense out×in matrix (clamped taps add up)."""
    index, weight = resample_taps(in_size, out_size)
    dense = np.zeros((out_size, in_size), np.float32)
    np.add.at(dense, (np.repeat(np.arange(out_size), index.shape[1]), index.ravel()), weight.ravel())
    return dense


def _bilinear_coords(out_size: int, in_size: int, out_offset: int = 0, scale: float | None = None):
    """Source coordinate (i0, i1, frac) per output pixel for plain bilinear sampling with edge clamp."""
    scale = in_size / out_size if scale is None else scale
    src = (np.arange(out_size) + out_offset + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, in_size - 1.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def sample_bilinear(grid: np.ndarray, ys: tuple, xs: tuple) -> np.ndarray:
    """Bilinear sample of a 2-D (or 2-D × C) ``grid`` at separable coordinates from :func:`_bilinear_coords`."""
    y0, y1, fy = ys
    x0, x1, fx = xs
    fy = fy.reshape((-1, 1) + (1,) * (grid.ndim - 2))
    fx = fx.reshape((1, -1) + (1,) * (grid.ndim - 2))
    g = grid.astype(np.float32)
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x1] * fx
    bottom = g[y1][:, x0] * (1 - fx) + g[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def masked_roi(frame: np.ndarray, mask: np.ndarray, roi: Roi) -> np.ndarray:
    """Kernel (b): the ROI of ``frame`` with everything outside the lesion zeroed, as the SR input.

    Args:
        frame: H×W×3 uint8 BGR.
        mask: S×S uint8 (0/1), the cleaned and dilated lesion mask at the segmenter's resolution.
        roi: (x0, y0, w, h) in frame pixels.
    Returns:
        float32 1×3×h×w RGB in [0, 1]: frame/255 where the mask, sampled
        bilinearly at the pixel's centre, is ≥ 0.5; else 0.
    """
    height, width = frame.shape[:2]
    s = mask.shape[0]
    x0, y0, w, h = roi
    ys = _bilinear_coords(h, s, y0, s / height)
    xs = _bilinear_coords(w, s, x0, s / width)
    keep = sample_bilinear(mask, ys, xs) >= 0.5
    crop = frame[y0:y0 + h, x0:x0 + w, ::-1].astype(np.float32) / 255.0
    out = np.where(keep[:, :, None], crop, 0.0).astype(np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])


def composite(frame: np.ndarray, sr: np.ndarray | None, soft: np.ndarray, roi: Roi, scale: int,
              out_rect: Roi) -> np.ndarray:
    """Kernel (c): up-scaled frame as background, SR inside the feathered lesion mask → uint8 BGR.

    Args:
        frame: H×W×3 uint8 BGR (the LR frame).
        sr: float32 1×3×(h·scale)×(w·scale) RGB in [0, 1] for ``roi`` (None: no lesion, background only).
        soft: S×S float32 in [0, 1], the feathered lesion mask at the segmenter's resolution.
        roi: (x0, y0, w, h) of the SR input in frame pixels.
        out_rect: the output's (X0, Y0, OW, OH) in *up-scaled* frame pixels: ``roi``×scale
            for the ROI view, (0, 0, W·scale, H·scale) for the full frame.
    Returns:
        OH×OW×3 uint8 BGR: round(a·SR·255 + (1 − a)·bg), where bg is the frame sampled
        bilinearly and ``a`` the soft mask sampled bilinearly at the output pixel's centre
        (``a`` = 0 outside the ROI, where there is no SR).
    """
    height, width = frame.shape[:2]
    s = soft.shape[0]
    X0, Y0, OW, OH = out_rect
    bg = _sample_separable(frame, _bilinear_coords(OH, height, Y0, 1 / scale),
                           _bilinear_coords(OW, width, X0, 1 / scale))
    if sr is not None:
        x0, y0, w, h = roi  # the part of the output that has SR: a = 0 elsewhere, so out = bg there
        top, left = max(0, y0 * scale - Y0), max(0, x0 * scale - X0)
        bottom, right = min(OH, (y0 + h) * scale - Y0), min(OW, (x0 + w) * scale - X0)
        if bottom > top and right > left:
            a = _sample_separable(soft, _bilinear_coords(bottom - top, s, Y0 + top, s / (height * scale)),
                                  _bilinear_coords(right - left, s, X0 + left, s / (width * scale)))[:, :, None]
            sy, sx = Y0 + top - y0 * scale, X0 + left - x0 * scale
            lesion = sr[0, ::-1, sy:sy + bottom - top, sx:sx + right - left].transpose(1, 2, 0) * 255.0
            bg[top:bottom, left:right] = a * lesion + (1.0 - a) * bg[top:bottom, left:right]
    return np.clip(np.floor(bg + 0.5), 0, 255).astype(np.uint8)


def _sample_separable(grid: np.ndarray, ys: tuple, xs: tuple) -> np.ndarray:
    """:func:`sample_bilinear` interpolating rows first, then columns: the same weights, far fewer gathers
    (float32 rounding may differ from the kernel's order by < 1e-4, within its 1 LSB tolerance)."""
    y0, y1, fy = ys
    x0, x1, fx = xs
    g = grid.astype(np.float32)
    fy = fy.reshape((-1, 1) + (1,) * (g.ndim - 2))
    rows = g[y0] * (1 - fy) + g[y1] * fy
    fx = fx.reshape((1, -1) + (1,) * (g.ndim - 2))
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx
