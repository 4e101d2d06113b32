"""Small NumPy image filters shared by metrics and degradations (no SciPy needed).

Kept dependency-free so that SSIM in ``skinedge.metrics`` and the LR
degradation give the same numbers on a device install as in training.
"""

from __future__ import annotations

import numpy as np


def gaussian_kernel1d(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian taps over ``[-radius, radius]`` (float64)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _correlate_axis(img: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """'valid' correlation of ``img`` with ``taps`` along ``axis`` (sum of shifted slices)."""
    n = img.shape[axis] - taps.size + 1
    out = np.zeros(img.shape[:axis] + (n,) + img.shape[axis + 1:], dtype=np.float64)
    lead = (slice(None),) * axis
    for i, w in enumerate(taps):
        out += w * img[lead + (slice(i, i + n),)]  # a view: no gathered copy per tap
    return out


def filter_separable(img: np.ndarray, taps: np.ndarray, mode: str = "valid") -> np.ndarray:
    """Filter the first two axes of ``img`` with the separable kernel ``taps ⊗ taps``.

    Args:
        img: H×W or H×W×C array (any numeric dtype; computed in float64).
        taps: odd-length 1-D kernel.
        mode: ``valid`` (output shrinks by ``len(taps) - 1``) or ``reflect``
            (same size; edges mirrored without repeating the edge pixel,
            i.e. NumPy's ``symmetric`` = SciPy's ``reflect``).
    """
    img = np.asarray(img, dtype=np.float64)
    if mode == "reflect":
        r = taps.size // 2
        pad = [(r, r), (r, r)] + [(0, 0)] * (img.ndim - 2)
        img = np.pad(img, pad, mode="symmetric")
    elif mode != "valid":
        raise ValueError(f"mode must be 'valid' or 'reflect', got {mode!r}")
    return _correlate_axis(_correlate_axis(img, taps, 0), taps, 1)
