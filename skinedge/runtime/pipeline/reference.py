"""NumPy references of the CUDA kernels (``gpu/cu/*.cu``), with the same math.

The CPU path runs these; the GPU path runs the kernels; tests hold the two to
≤ 1 LSB. Conventions:

- frames are H×W×3 **uint8 BGR** (camera order); network tensors are float32
  **RGB NCHW**; the segmenter's mask lives at its own S×S resolution.
- coordinates use pixel centres (x + 0.5); sampling outside an image clamps to
  the edge pixel.
- a ROI is ``(x0, y0, w, h)`` in frame pixels.

Resampling for the segmenter is a triangle filter whose support widens with
the shrink factor (anti-aliased bilinear, like PIL's BILINEAR that training
used); the background up-scale and the projection use the bicubic kernel
(PIL's BICUBIC, the degradation's own). Taps come from :func:`resample_taps`:
the preprocess kernel reads its tables, the others compute the same weights.
"""

from __future__ import annotations

import math

import numpy as np

Roi = tuple[int, int, int, int]  # x0, y0, w, h


def cubic_weight(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = −0.5 (PIL's and MATLAB's bicubic), support [−2, 2]."""
    x = np.abs(x)
    a = -0.5
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((x - 5) * x + 8) * x * a - 4 * a, 0.0))


def resample_taps(in_size: int, out_size: int, kind: str = "triangle") -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the input indices and weights of a 1-D resize.

    ``kind``: ``triangle`` (anti-aliased bilinear, PIL's BILINEAR) or ``cubic`` (anti-aliased bicubic, PIL's
    BICUBIC: the degradation's own down-scaler and the smooth up-scale). The kernel's support widens with the
    shrink factor, as PIL does.

    Returns:
        (index int32 out×K, weight float32 out×K); rows sum to 1. Taps that fall
        outside the input get weight 0 (their index is clamped into range).
    """
    scale = in_size / out_size
    stretch = max(1.0, scale)
    support = stretch * (2.0 if kind == "cubic" else 1.0)  # half-width in input pixels
    k = int(math.ceil(support)) * 2 + 1
    centres = (np.arange(out_size) + 0.5) * scale  # in input pixel units
    first = np.floor(centres - support).astype(np.int64)
    taps = first[:, None] + np.arange(k)[None, :]
    x = (taps + 0.5 - centres[:, None]) / stretch
    if kind == "cubic":
        weights = cubic_weight(x)
    elif kind == "triangle":
        weights = np.maximum(0.0, 1.0 - np.abs(x))
    else:
        raise ValueError(f"unknown resampling kind {kind!r}: triangle or cubic")
    weights[(taps < 0) | (taps >= in_size)] = 0.0  # outside the image: dropped, the rest renormalised (as PIL)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(taps, 0, in_size - 1).astype(np.int32), weights.astype(np.float32)


def resample_axis(x: np.ndarray, out_size: int, axis: int, kind: str = "cubic", offset: int = 0,
                  total: int | None = None) -> np.ndarray:
    """Resize float32 ``x`` along ``axis`` to ``out_size`` (Σ_k w·x[index], taps in order, float32).

    ``offset``/``total``: the output is rows ``offset … offset+out_size`` of a resize to ``total`` (a window of
    a larger up-scale, as the composite's ROI view needs).
    """
    index, weight = resample_taps(x.shape[axis], total or out_size, kind)
    index, weight = index[offset:offset + out_size], weight[offset:offset + out_size]
    shape = [1] * x.ndim
    shape[axis] = out_size
    out = np.zeros(x.shape[:axis] + (out_size,) + x.shape[axis + 1:], np.float32)
    for k in range(index.shape[1]):
        out += weight[:, k].reshape(shape) * np.take(x, index[:, k], axis=axis)
    return out


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


def bilinear_coords(out_size: int, in_size: int, out_offset: int = 0, scale: float | None = None):
    """Source coordinate (i0, i1, frac) per output pixel for plain bilinear sampling with edge clamp."""
    scale = in_size / out_size if scale is None else scale
    src = (np.arange(out_size) + out_offset + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, in_size - 1.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def sample_bilinear(grid: np.ndarray, ys: tuple, xs: tuple) -> np.ndarray:
    """Bilinear sample of a 2-D (or 2-D × C) ``grid`` at separable coordinates from :func:`bilinear_coords`."""
    y0, y1, fy = ys
    x0, x1, fx = xs
    fy = fy.reshape((-1, 1) + (1,) * (grid.ndim - 2))
    fx = fx.reshape((1, -1) + (1,) * (grid.ndim - 2))
    g = grid.astype(np.float32)
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x1] * fx
    bottom = g[y1][:, x0] * (1 - fx) + g[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def roi_lesion(soft: np.ndarray, frame_shape: tuple[int, int], roi: Roi) -> np.ndarray:
    """h×w bool: the ROI's pixels whose feathered lesion mask, sampled bilinearly at the centre, is ≥ 0.5."""
    height, width = frame_shape
    s = soft.shape[0]
    x0, y0, w, h = roi
    return sample_bilinear(soft, bilinear_coords(h, s, y0, s / height), bilinear_coords(w, s, x0, s / width)) >= 0.5


def masked_roi(frame: np.ndarray, mask: np.ndarray, roi: Roi, surround: str = "frame") -> np.ndarray:
    """Kernel (b): the ROI of ``frame`` as the SR input.

    Args:
        frame: H×W×3 uint8 BGR.
        mask: S×S uint8 (0/1), the cleaned and dilated lesion mask at the segmenter's resolution.
        roi: (x0, y0, w, h) in frame pixels.
        surround: ``frame`` keeps the real image around the lesion (the generator sees what it was trained
            on, so no dark halo); ``black`` zeroes every pixel outside the mask (the paper's masking).
    Returns:
        float32 1×3×h×w RGB in [0, 1]: frame/255, and with ``black``, 0 where the mask, sampled bilinearly
        at the pixel's centre, is < 0.5.
    """
    x0, y0, w, h = roi
    crop = frame[y0:y0 + h, x0:x0 + w, ::-1].astype(np.float32) / 255.0
    if surround == "black":
        height, width = frame.shape[:2]
        s = mask.shape[0]
        keep = sample_bilinear(mask, bilinear_coords(h, s, y0, s / height),
                               bilinear_coords(w, s, x0, s / width)) >= 0.5
        crop = np.where(keep[:, :, None], crop, 0.0).astype(np.float32)
    elif surround != "frame":
        raise ValueError(f"surround must be frame or black, got {surround!r}")
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


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
        OH×OW×3 uint8 BGR: round(a·SR·255 + (1 − a)·bg), where bg is the frame's bicubic up-scale
        (:func:`resample_taps` ``cubic``, rows then columns: the same plain up-scale the projection and the
        bicubic baseline use, so outside the lesion the output *is* the baseline) and ``a`` the soft mask
        sampled bilinearly at the output pixel's centre (``a`` = 0 outside the ROI, where there is no SR).
    """
    height, width = frame.shape[:2]
    s = soft.shape[0]
    X0, Y0, OW, OH = out_rect
    rows = resample_axis(frame.astype(np.float32), OH, 0, "cubic", Y0, height * scale)
    bg = resample_axis(rows, OW, 1, "cubic", X0, width * scale)
    if sr is not None:
        x0, y0, w, h = roi  # the part of the output that has SR: a = 0 elsewhere, so out = bg there
        top, left = max(0, y0 * scale - Y0), max(0, x0 * scale - X0)
        bottom, right = min(OH, (y0 + h) * scale - Y0), min(OW, (x0 + w) * scale - X0)
        if bottom > top and right > left:
            a = _sample_separable(soft, bilinear_coords(bottom - top, s, Y0 + top, s / (height * scale)),
                                  bilinear_coords(right - left, s, X0 + left, s / (width * scale)))
            sy, sx = Y0 + top - y0 * scale, X0 + left - x0 * scale
            lesion = sr[0, ::-1, sy:sy + bottom - top, sx:sx + right - left].transpose(1, 2, 0) * 255.0
            out = _round(bg)
            out[top:bottom, left:right] = blend(lesion, bg[top:bottom, left:right], a)
            return out
    return _round(bg)


def blend(lesion: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The composite's one blending rule (paper §3.4 step 5): round(a·lesion + (1 − a)·background) → uint8.

    Args:
        lesion, background: H×W×3 in [0, 255] (uint8, or float32 before rounding), in the same channel order
            (BGR in the pipeline, RGB in ``skinedge eval``: the rule is per channel).
        alpha: H×W float32 in [0, 1], the feathered lesion mask (1: lesion, 0: background).
    Returns:
        H×W×3 uint8.
    """
    a = alpha[:, :, None]
    mixed = a * lesion.astype(np.float32) + (1.0 - a) * background.astype(np.float32)
    return _round(mixed.astype(np.float32, copy=False))  # rounded in float32, as the kernel does


def _round(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


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
