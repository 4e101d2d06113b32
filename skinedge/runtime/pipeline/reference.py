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

The kernels sum the taps one by one; here the same weights are cut into bands
(:func:`resample_bands`) and summed as small float32 BLAS products, another
summation order: a few ulps apart, within the tests' 1 LSB. The composite
computes its up-scale in fixed tiles, so its ROI view is the full frame's crop
to the bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

Roi = tuple[int, int, int, int]  # x0, y0, w, h
Band = tuple[int, int, int, int, np.ndarray]  # o0, o1, i0, i1, w: out[o0:o1] = w @ in[i0:i1]


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
    """Resize ``x`` along ``axis`` to ``out_size`` in float32: out[o] = Σ_k w[o,k]·x[index[o,k]].

    ``offset``/``total``: the output is rows ``offset … offset+out_size`` of a resize to ``total`` (a window of
    a larger up-scale). The sum runs as matrix products over the bands of :func:`resample_bands` (float32 in
    BLAS's summation order: within a few float32 ulps of summing the taps in order).
    """
    x = np.asarray(x, np.float32)
    axis %= x.ndim
    return _resample(x, _window(x.shape[axis], total or out_size, kind, offset, out_size), axis, out_size)


def preprocess(frame: np.ndarray, size: int, mean, std) -> np.ndarray:
    """Kernel (a): uint8 BGR H×W×3 → float32 1×3×size×size RGB, resized and normalised.

    out[c, y, x] = (Σ_i Σ_j wy[y,i]·wx[x,j]·frame[iy, jx, 2−c] / 255 − mean[c]) / std[c]

    (wy, wx: :func:`resample_matrix`; rows first, then columns, as products over :func:`resample_bands`.)
    """
    h, w = frame.shape[:2]
    rgb = np.ascontiguousarray(frame.transpose(2, 0, 1)[::-1], np.float32)  # 3×H×W, planar
    rows = _resample(rgb, resample_bands(h, size, "triangle"), 1, size)
    out = _resample(rows, resample_bands(w, size, "triangle"), 2, size)
    out = (out / 255.0 - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return np.ascontiguousarray(out[None], dtype=np.float32)


@functools.lru_cache(maxsize=64)
def resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The taps of :func:`resample_taps` as a dense out×in matrix (clamped taps add up). Cached: read-only."""
    index, weight = _taps(in_size, out_size, "triangle")
    dense = np.zeros((out_size, in_size), np.float32)
    np.add.at(dense, (np.repeat(np.arange(out_size), index.shape[1]), index.ravel()), weight.ravel())
    dense.flags.writeable = False
    return dense


BAND_ROWS_UP = 64  # output rows of a band when enlarging (×4 cubic: a 64×20 matrix)
BAND_SPAN_DOWN = 48  # when shrinking, the input span a band aims at (×¼ cubic: 8 rows × ~48 inputs)


@functools.lru_cache(maxsize=128)
def resample_bands(in_size: int, out_size: int, kind: str = "cubic") -> tuple[Band, ...]:
    """The taps of :func:`resample_taps` as dense matrix bands ``(o0, o1, i0, i1, w)``: out[o0:o1] = w @ in[i0:i1]
    (clamped taps add up, as in :func:`resample_matrix`).

    A band is a fixed run of output rows and the input span its taps reach, so a resize is a few small BLAS
    products that skip the zeros far from the diagonal (band sizes: ``BAND_ROWS_UP``, ``BAND_SPAN_DOWN``, tuned
    with ``benchmarks/pixel_stages.py``). Cached; the matrices are read-only.
    """
    index, weight = _taps(in_size, out_size, kind)
    k = index.shape[1]
    rows = BAND_ROWS_UP if out_size >= in_size else max(8, (BAND_SPAN_DOWN - k) * out_size // in_size)
    bands = []
    for o0 in range(0, out_size, rows):
        o1 = min(out_size, o0 + rows)
        i0, i1 = int(index[o0:o1].min()), int(index[o0:o1].max()) + 1
        dense = np.zeros((o1 - o0, i1 - i0), np.float32)
        np.add.at(dense, (np.repeat(np.arange(o1 - o0), k), index[o0:o1].ravel() - i0), weight[o0:o1].ravel())
        dense.flags.writeable = False
        bands.append((o0, o1, i0, i1, dense))
    return tuple(bands)


@functools.lru_cache(maxsize=128)
def _taps(in_size: int, out_size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resample_taps`, cached (read-only)."""
    index, weight = resample_taps(in_size, out_size, kind)
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


def _window(in_size: int, total: int, kind: str, offset: int, out_size: int) -> list:
    """The bands of a resize to ``total`` cut to its rows offset … offset+out_size (renumbered from 0)."""
    if offset == 0 and out_size == total:
        return list(resample_bands(in_size, total, kind))
    if offset < 0 or offset + out_size > total:
        raise ValueError(f"rows {offset}…{offset + out_size} lie outside a resize to {total}")
    cut = []
    for o0, o1, i0, i1, dense in resample_bands(in_size, total, kind):
        r0, r1 = max(o0, offset), min(o1, offset + out_size)
        if r1 > r0:
            cut.append((r0 - offset, r1 - offset, i0, i1, dense[r0 - o0:r1 - o0]))
    return cut


def _resample(x: np.ndarray, bands, axis: int, out_size: int) -> np.ndarray:
    """float32 ``x`` resized along ``axis`` by ``bands`` (from :func:`resample_bands`, or :func:`_window`)."""
    x = np.ascontiguousarray(x, np.float32)
    n = x.shape[axis]
    out = np.empty(x.shape[:axis] + (out_size,) + x.shape[axis + 1:], np.float32)
    if axis == x.ndim - 1:  # columns: (… × n) @ wᵀ per band, in runs of rows that keep each product small
        flat, result = x.reshape(-1, n), out.reshape(-1, out_size)
        for o0, o1, i0, i1, dense in bands:
            run = _run(flat.shape[0], dense.size)
            for m in range(0, flat.shape[0], run):
                np.matmul(flat[m:m + run, i0:i1], dense.T, out=result[m:m + run, o0:o1])
    else:  # rows: w @ (n × …) per band, batched over the leading axes, in runs of the trailing ones
        lead, trail = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
        flat, result = x.reshape(lead, n, trail), out.reshape(lead, out_size, trail)
        for o0, o1, i0, i1, dense in bands:
            run = _run(trail, dense.size)
            for m in range(0, trail, run):
                np.matmul(dense, flat[:, i0:i1, m:m + run], out=result[:, o0:o1, m:m + run])
    return out


MAX_PRODUCT = 1 << 18  # multiply-adds per BLAS call: OpenBLAS runs a product this small on the calling thread


def _run(length: int, band: int) -> int:
    """How much of the other dimension one product takes, so it stays under ``MAX_PRODUCT`` (larger products
    OpenBLAS splits over threads, whose wake-ups and spinning cost far more than they gain on a loaded CPU)."""
    return max(1, min(length, MAX_PRODUCT // max(1, band)))


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
    bg = _upscale_view(frame, scale, out_rect)  # 3×OH×OW float32, BGR
    if sr is not None:
        x0, y0, w, h = roi  # the part of the output that has SR: a = 0 elsewhere, so out = bg there
        top, left = max(0, y0 * scale - Y0), max(0, x0 * scale - X0)
        bottom, right = min(OH, (y0 + h) * scale - Y0), min(OW, (x0 + w) * scale - X0)
        if bottom > top and right > left:
            a = _sample_separable(soft, bilinear_coords(bottom - top, s, Y0 + top, s / (height * scale)),
                                  bilinear_coords(right - left, s, X0 + left, s / (width * scale)))
            sy, sx = Y0 + top - y0 * scale, X0 + left - x0 * scale
            # blend's arithmetic on the planes, in place: a·(SR·255) + (1 − a)·bg, then rounded below with bg
            mixed = (sr[0, ::-1, sy:sy + bottom - top, sx:sx + right - left] * 255.0).astype(np.float32, copy=False)
            mixed *= a
            region = bg[:, top:bottom, left:right]
            region *= 1.0 - a
            region += mixed
    bg += 0.5  # _round, in place
    np.floor(bg, out=bg)
    np.clip(bg, 0, 255, out=bg)
    out = np.empty((OH, OW, 3), np.uint8)
    for c in range(3):  # integral already: the cast is exact (a plane at a time: far faster than a transpose)
        out[:, :, c] = bg[c]
    return out


def _upscale_view(frame: np.ndarray, scale: int, out_rect: Roi) -> np.ndarray:
    """The composite's background: rows Y0… and columns X0… of the frame's bicubic ×scale up-scale, as float32
    3×OH×OW planes (the frame's channel order).

    Computed in tiles of one row band × one column band of :func:`resample_bands`, each tile the same two
    matrix products wherever the window lies (a tile the window cuts is computed whole, then cut): so a pixel
    has the same value in the ROI view as in the full frame, to the bit.
    """
    height, width = frame.shape[:2]
    X0, Y0, OW, OH = out_rect
    if min(X0, Y0, OW, OH) < 0 or X0 + OW > width * scale or Y0 + OH > height * scale:
        raise ValueError(f"out_rect {out_rect} is not inside the {width * scale}×{height * scale} up-scaled frame")
    rows = [b for b in resample_bands(height, height * scale, "cubic") if b[1] > Y0 and b[0] < Y0 + OH]
    cols = [b for b in resample_bands(width, width * scale, "cubic") if b[1] > X0 and b[0] < X0 + OW]
    bg = np.empty((3, OH, OW), np.float32)
    if not rows or not cols:
        return bg
    top, left = rows[0][2], cols[0][2]  # the frame pixels the window reads
    crop = frame[top:rows[-1][3], left:cols[-1][3]]
    planar = np.ascontiguousarray(crop.transpose(2, 0, 1), np.float32)  # 3×h×w
    for r0, r1, ri0, ri1, wr in rows:
        t0, t1 = max(r0, Y0) - Y0, min(r1, Y0 + OH) - Y0  # the band's rows in the window
        for c0, c1, ci0, ci1, wc in cols:
            l0, l1 = max(c0, X0) - X0, min(c1, X0 + OW) - X0
            tile = np.matmul(wr, planar[:, ri0 - top:ri1 - top, ci0 - left:ci1 - left])  # rows: 3×(r1−r0)×…
            if t1 - t0 == r1 - r0 and l1 - l0 == c1 - c0:
                np.matmul(tile, wc.T, out=bg[:, t0:t1, l0:l1])  # then columns
            else:
                bg[:, t0:t1, l0:l1] = np.matmul(tile, wc.T)[:, Y0 + t0 - r0:Y0 + t1 - r0, X0 + l0 - c0:X0 + l1 - c0]
    return bg


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
    out = np.take(rows, x0, axis=1)  # C-ordered (rows[:, x0] is not), in place: the same products and sum
    out *= 1 - fx
    right = np.take(rows, x1, axis=1)
    right *= fx
    out += right
    return out
