"""Masking and compositing of the pipeline (paper §3.4 steps 3 and 5), in NumPy.

This is the reference the CUDA kernel is tested against, and what the CPU path
and the evaluation run. Conventions: images are H×W×3 uint8 RGB; masks H×W
bool; a "soft" mask is float32 in [0, 1].
"""

from __future__ import annotations

import numpy as np

from skinedge.filters import filter_separable, gaussian_kernel1d


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


def composite(lesion: np.ndarray, background: np.ndarray, soft_mask: np.ndarray) -> np.ndarray:
    """``soft_mask`` × lesion + (1 − ``soft_mask``) × background, rounded to uint8 (step 5)."""
    a = soft_mask[:, :, None]
    out = a * lesion.astype(np.float32) + (1.0 - a) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
