"""The paper's metrics, matching the references the field uses.

Segmentation follows the official ISIC scorer (``isic-challenge-scoring``):
per-image confusion counts, masks read as ``value > 128`` when 8-bit, per-image
scores averaged per image, thresholded Jaccard (0 below 0.65), and the same
"freebie" conventions for empty masks (an empty truth predicted empty scores
1.0). PSNR/SSIM follow BasicSR/skimage: SSIM is Wang et al.'s with an 11-tap
Gaussian window (sigma 1.5), population covariance, averaged over channels;
equal to ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)``. The Y channel is BT.601 studio
swing as BasicSR computes it. Colour fidelity is CIEDE2000 ΔE on CIELAB (sRGB, D65,
2° observer), equal to ``skimage.color.deltaE_ciede2000(rgb2lab(a), rgb2lab(b))``.
LPIPS needs torch and local backbone weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from skinedge.errors import MissingWeights
from skinedge.filters import filter_separable, gaussian_kernel1d

ISIC_JACCARD_THRESHOLD = 0.65
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5          # int(3.5 * 1.5 + 0.5): skimage's truncate=3.5 → 11×11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ---------------------------------------------------------------- segmentation
@dataclass(frozen=True)
class Confusion:
    """Pixel counts of one image's binary confusion matrix."""

    tp: int
    fp: int
    fn: int
    tn: int


def as_binary(mask: np.ndarray) -> np.ndarray:
    """bool as is; uint8 as ``> 128`` (ISIC scorer); floats/probabilities as ``>= 0.5``."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if mask.dtype == np.uint8:
        return mask > 128
    if mask.dtype.kind == "f":
        return mask >= 0.5
    if mask.dtype.kind in "iu" and mask.size and mask.max() <= 1:
        return mask.astype(bool)
    raise ValueError(f"mask of dtype {mask.dtype}: pass bool, uint8 0/255, 0/1 or probabilities")


def confusion(truth: np.ndarray, pred: np.ndarray) -> Confusion:
    """Confusion counts of two same-shaped masks (see :func:`as_binary`)."""
    t, p = as_binary(truth), as_binary(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return Confusion(tp, fp, fn, t.size - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    """num/den, or 1.0 when den is 0: the ISIC scorer's convention for undefined scores."""
    return 1.0 if den == 0 else num / den


def segmentation_scores(truth: np.ndarray, pred: np.ndarray,
                        jaccard_threshold: float = ISIC_JACCARD_THRESHOLD) -> dict[str, float]:
    """Per-image scores: dice, iou (Jaccard), threshold_jaccard, precision,
    recall (= sensitivity), specificity, accuracy; each in [0, 1]."""
    c = confusion(truth, pred)
    iou = _ratio(c.tp, c.tp + c.fp + c.fn)
    return {
        "dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "iou": iou,
        "threshold_jaccard": iou if iou >= jaccard_threshold else 0.0,
        "precision": _ratio(c.tp, c.tp + c.fp),
        "recall": _ratio(c.tp, c.tp + c.fn),
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "accuracy": (c.tp + c.tn) / (c.tp + c.fp + c.fn + c.tn),
    }


def mean_scores(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Average per image (macro average), ignoring NaN (undefined) entries per key."""
    rows = list(per_image)
    if not rows:
        return {}
    return {key: float(np.nanmean([row[key] for row in rows])) if not
            all(math.isnan(row[key]) for row in rows) else math.nan for key in rows[0]}


# ----------------------------------------------------------------- image quality
def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] of an RGB image in [0, 255] (BasicSR's ``bgr2ycbcr(y_only)``).

    Returns float64 H×W; no rounding, as BasicSR computes PSNR/SSIM on it.
    """
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects H×W×3, got {rgb.shape}")
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966]) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, data_range: float | None, border: int,
             y_channel: bool, mask: np.ndarray | None):
    """Common checks and conversions for PSNR/SSIM; returns float64 arrays and range."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if data_range is None:
        if a.dtype != np.uint8 or b.dtype != np.uint8:
            raise ValueError("data_range is required for non-uint8 images (e.g. 1.0 or 255.0)")
        data_range = 255.0
    if y_channel:
        if data_range != 255.0:
            raise ValueError("the Y channel is defined for RGB in [0, 255]: use data_range 255")
        a, b = rgb_to_y(a), rgb_to_y(b)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
        mask = None if mask is None else np.asarray(mask)[border:-border, border:-border]
    if mask is not None and np.asarray(mask).shape != a.shape[:2]:
        raise ValueError(f"mask {np.asarray(mask).shape} does not match image {a.shape[:2]}")
    return a, b, float(data_range), None if mask is None else as_binary(mask)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None, border: int = 0,
         y_channel: bool = False, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB.

    Args:
        a: an H×W or H×W×3 image (uint8, or float with ``data_range``).
        b: the other image, of ``a``'s shape.
        border: pixels cropped from each side first (the SR scale, by convention).
        y_channel: compare BT.601 Y instead of RGB.
        mask: optional H×W mask: the MSE is taken over the pixels inside it.
    Returns:
        ``inf`` for identical images; ``nan`` when ``mask`` is empty.
    """
    a, b, rng, m = _prepare(a, b, data_range, border, y_channel, mask)
    diff = (a - b) ** 2
    if m is not None:
        if not m.any():
            return math.nan
        diff = diff[m]
    mse = float(diff.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(rng * rng / mse)


def _ssim_map(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Per-pixel SSIM of two 2-D float64 images over the 'valid' window positions."""
    taps = gaussian_kernel1d(SSIM_SIGMA, SSIM_RADIUS)
    blur = lambda x: filter_separable(x, taps, mode="valid")  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None, border: int = 0,
         y_channel: bool = False, mask: np.ndarray | None = None) -> float:
    """Structural similarity (Wang et al. 2004), in [-1, 1].

    Same arguments as :func:`psnr`. Window positions within 5 px of the edge
    are left out, as skimage does; with ``mask`` the SSIM map is averaged over
    the mask's pixels that remain (``nan`` if none). Colour images: mean over
    channels. Needs at least 11×11 pixels after the border crop.
    """
    a, b, rng, m = _prepare(a, b, data_range, border, y_channel, mask)
    if min(a.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11×11 pixels, got {a.shape[1]}×{a.shape[0]}")
    channels = [(a, b)] if a.ndim == 2 else [(a[..., c], b[..., c]) for c in range(a.shape[2])]
    maps = [_ssim_map(x, y, rng) for x, y in channels]
    if m is None:
        return float(np.mean([s.mean() for s in maps]))
    inner = m[SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]
    if not inner.any():
        return math.nan
    return float(np.mean([s[inner].mean() for s in maps]))


# ----------------------------------------------------------------- colour (CIELAB, CIEDE2000)
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])  # sRGB primaries, D65 (skimage's matrix)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])  # 2° observer
BORDER_BAND_PX = 8


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """CIELAB (D65, 2°) of an sRGB image: uint8 in [0, 255] or float in [0, 1] → float64 H×W×3."""
    rgb = np.asarray(image)
    rgb = rgb / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ XYZ_FROM_RGB.T / D65_WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def _hue(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chroma and hue angle in [0, 2π)."""
    h = np.arctan2(b, a)
    return np.hypot(a, b), h + (h < 0) * 2 * np.pi


def delta_e_ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference (kL = kC = kH = 1) of two CIELAB arrays (…×3)."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c7 = (0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))) ** 7
    g = 1.0 + 0.5 * (1.0 - np.sqrt(c7 / (c7 + 25.0 ** 7)))
    C1, h1 = _hue(a1 * g, b1)
    C2, h2 = _hue(a2 * g, b2)
    l_mean = (0.5 * (L1 + L2) - 50.0) ** 2
    l_term = (L2 - L1) / (1.0 + 0.015 * l_mean / np.sqrt(20.0 + l_mean))
    c_mean = 0.5 * (C1 + C2)
    c_term = (C2 - C1) / (1.0 + 0.045 * c_mean)
    h_diff, h_sum, cc = h2 - h1, h1 + h2, C1 * C2
    dh = h_diff - 2 * np.pi * (h_diff > np.pi) + 2 * np.pi * (h_diff < -np.pi)
    dh = np.where(cc == 0.0, 0.0, dh)
    wrap = (cc != 0.0) & (np.abs(h_diff) > np.pi)
    h_bar = h_sum + 2 * np.pi * (wrap & (h_sum < 2 * np.pi)) - 2 * np.pi * (wrap & (h_sum >= 2 * np.pi))
    h_bar = np.where(cc == 0.0, h_bar * 2, h_bar) * 0.5
    t = (1 - 0.17 * np.cos(h_bar - np.radians(30)) + 0.24 * np.cos(2 * h_bar)
         + 0.32 * np.cos(3 * h_bar + np.radians(6)) - 0.20 * np.cos(4 * h_bar - np.radians(63)))
    h_term = 2 * np.sqrt(cc) * np.sin(dh / 2) / (1 + 0.015 * c_mean * t)
    c7 = c_mean ** 7
    rotation = -np.sin(2 * np.radians(30) * np.exp(-((np.degrees(h_bar) - 275) / 25) ** 2)) \
        * 2 * np.sqrt(c7 / (c7 + 25.0 ** 7)) * c_term * h_term
    return np.sqrt(np.maximum(l_term ** 2 + c_term ** 2 + h_term ** 2 + rotation, 0.0))


def mean_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, border: int = 0) -> float:
    """Mean CIEDE2000 ΔE of two RGB images (optionally inside ``mask``; ``nan`` when it is empty)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {np.shape(a)} vs {np.shape(b)}")
    de = delta_e_ciede2000(rgb_to_lab(a), rgb_to_lab(b))
    if border:
        de = de[border:-border, border:-border]
        mask = None if mask is None else np.asarray(mask)[border:-border, border:-border]
    if mask is None:
        return float(de.mean())
    m = as_binary(mask)
    return float(de[m].mean()) if m.any() else math.nan


def border_band(mask: np.ndarray, radius: int = BORDER_BAND_PX) -> np.ndarray:
    """The pixels within ``radius`` px (chessboard distance) of the mask's border, on both sides.

    Where a composite's seam or halo shows: dilation minus erosion of the lesion by a (2r+1)² square.
    """
    m = as_binary(mask)
    grown, shrunk = m.copy(), m.copy()
    for axis in (0, 1):  # a square structuring element is separable: a running max/min along each axis
        grown = _run(grown, radius, axis, np.logical_or)
        shrunk = _run(shrunk, radius, axis, np.logical_and, edge=True)
    return grown & ~shrunk


def _run(m: np.ndarray, radius: int, axis: int, op, edge: bool = False) -> np.ndarray:
    """OR (dilate) / AND (erode) of ``m`` over ±radius along ``axis``; outside the image counts as ``edge``."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    p = np.pad(m, pad, constant_values=edge)
    n = m.shape[axis]
    out = np.take(p, range(0, n), axis=axis)
    for shift in range(1, 2 * radius + 1):
        out = op(out, np.take(p, range(shift, shift + n), axis=axis))
    return out


def sr_scores(out: np.ndarray, hr: np.ndarray, scale: int, mask: np.ndarray | None = None) -> dict[str, float]:
    """The SR protocol's scores of one output: PSNR/SSIM on Y with a border of ``scale``,
    over the whole image and, given the lesion ``mask``, inside it (PSNR-Y, SSIM-Y, mean ΔE00) and in
    the ±8 px band around its border (PSNR-Y, mean ΔE00)."""
    kw = {"border": scale, "y_channel": True}
    row = {"psnr_y": psnr(out, hr, **kw), "ssim_y": ssim(out, hr, **kw)}
    if mask is not None:
        band = border_band(mask)
        row["lesion_psnr_y"] = psnr(out, hr, mask=mask, **kw)
        row["lesion_ssim_y"] = ssim(out, hr, mask=mask, **kw)
        row["lesion_delta_e"] = mean_delta_e(out, hr, mask, border=scale)
        row["border_psnr_y"] = psnr(out, hr, mask=band, **kw)
        row["border_delta_e"] = mean_delta_e(out, hr, band, border=scale)
    return row


# ------------------------------------------------------------------------ LPIPS
LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone (``$TORCH_HOME/hub/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[net]


@lru_cache(maxsize=3)
def _lpips_model(net: str):
    import lpips  # noqa: F401  (imported here: torch is a training dependency only)

    return lpips.LPIPS(net=net, verbose=False).eval()


def lpips_distance(a: np.ndarray, b: np.ndarray, net: str = "alex") -> float:
    """LPIPS perceptual distance (lower = more alike) of two uint8 RGB images.

    Raises:
        MissingWeights: torch/lpips absent, or the backbone file is not in
            ``$TORCH_HOME/hub/checkpoints`` (it cannot be downloaded offline);
            the message names the file and folder.
    """
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS net {net!r}; valid: {', '.join(LPIPS_BACKBONES)}")
    try:
        import lpips  # noqa: F401
        import torch
    except ImportError:
        raise MissingWeights("LPIPS needs torch and lpips: pip install 'skinedge[train]'") from None
    path = lpips_backbone_path(net)
    if not path.is_file():
        raise MissingWeights(f"LPIPS ({net}) needs its ImageNet backbone {path.name}, which cannot be "
                             f"downloaded here: copy it to {path.parent} (or set TORCH_HOME)")
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.uint8 or a.ndim != 3:
        raise ValueError(f"lpips_distance expects two equal H×W×3 uint8 images, got {a.shape}, {b.shape}")
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # noqa: E731
    with torch.no_grad():
        return float(_lpips_model(net)(to_tensor(a), to_tensor(b)).item())
