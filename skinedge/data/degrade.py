"""Low-resolution inputs for super-resolution pairs (paper §4.1).

HR → [Gaussian blur] → bicubic ×1/scale → [Gaussian noise] → [JPEG] → LR.
``Degradation.bicubic_only()`` is the classic SR protocol (Set5/Set14 style);
the default adds mild blur, noise and JPEG, as the paper says it "applied
various degradation operations to simulate real-world conditions". Every random
choice comes from the seed, so a pair is reproducible.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from skinedge.errors import DataError
from skinedge.filters import filter_separable, gaussian_kernel1d


@dataclass(frozen=True)
class Degradation:
    """How LR images are made from HR ones.

    Attributes:
        scale: integer down-sampling factor (the SR factor; 4 in the paper).
        blur_sigma: (low, high) range of the Gaussian blur sigma in HR pixels,
            or None for no blur.
        noise_sigma: (low, high) range of additive Gaussian noise in 0..255
            units, or None.
        jpeg_quality: (low, high) JPEG quality range, or None for no JPEG.
    """

    scale: int = 4
    blur_sigma: tuple[float, float] | None = (0.2, 1.2)
    noise_sigma: tuple[float, float] | None = (0.0, 4.0)
    jpeg_quality: tuple[int, int] | None = (70, 95)

    @classmethod
    def bicubic_only(cls, scale: int = 4) -> "Degradation":
        return cls(scale=scale, blur_sigma=None, noise_sigma=None, jpeg_quality=None)

    @property
    def protocol(self) -> str:
        """``bicubic`` (the paper's LR, protocol a) or ``camera`` (blur, noise or JPEG: protocol b)."""
        plain = self.blur_sigma is None and self.noise_sigma is None and self.jpeg_quality is None
        return "bicubic" if plain else "camera"


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale`` (top-left kept), as SR protocols do."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def bicubic_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a uint8 H×W×C (or H×W) image with PIL (antialiased when shrinking).

    PIL's bicubic (a = -0.5, support widened by the factor when shrinking) is
    MATLAB ``imresize``'s kernel, the one SR benchmarks are made with.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"bicubic_resize expects uint8, got {image.dtype}")
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a bool mask bilinearly and threshold at one half (smoother than nearest)."""
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.BILINEAR)
    return np.asarray(resized) > 127


CAMERA_SIDE = 512  # a dermatoscope camera's frame (640×480 class): SR is trained, gated and judged at this scale


def fit_long_side(image: np.ndarray, mask: np.ndarray, side: int, scale: int = 4
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A photo at ≤ ``side`` px on the long side (Lanczos), mod-cropped to ``scale``, and its mask with it: the
    HR of ``train all``'s SR cache and of ``eval --models``."""
    h, w = image.shape[:2]
    if max(h, w) > side:
        f = side / max(h, w)
        size = (max(scale, round(w * f)), max(scale, round(h * f)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
        mask = resize_mask(mask, *size)
    image = mod_crop(image, scale)
    return np.ascontiguousarray(image), mask[: image.shape[0], : image.shape[1]].copy()


def bicubic_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: ``scale``× up-sampling of a uint8 image."""
    h, w = image.shape[:2]
    return bicubic_resize(image, w * scale, h * scale)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def degrade(hr: np.ndarray, how: Degradation = Degradation(), seed: int = 0,
            drawn: dict | None = None) -> np.ndarray:
    """Make the LR image of a HR uint8 RGB image.

    Args:
        hr: H×W×3 uint8 with H and W multiples of ``how.scale`` (see :func:`mod_crop`).
        how: the degradation.
        seed: all random draws (sigma, noise, quality) come from it.
        drawn: if given, receives what was drawn (``blur_sigma``, ``noise_sigma``, ``jpeg_quality``; absent steps
            are left out): analyses that need the truth a camera does not tell, e.g. the JPEG quality.
    Returns:
        (H/scale)×(W/scale)×3 uint8 RGB.
    """
    h, w = hr.shape[:2]
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        raise DataError(f"degrade expects H×W×3 uint8, got {hr.shape} {hr.dtype}")
    if h % how.scale or w % how.scale or h < how.scale or w < how.scale:
        raise DataError(f"HR size {w}×{h} is not a multiple of the scale {how.scale}; mod_crop it first")
    rng = np.random.default_rng(seed)
    image, record = hr, {} if drawn is None else drawn
    if how.blur_sigma is not None:
        sigma = record["blur_sigma"] = rng.uniform(*how.blur_sigma)
        taps = gaussian_kernel1d(sigma, max(1, int(np.ceil(3 * sigma))))
        image = np.clip(np.rint(filter_separable(image, taps, mode="reflect")), 0, 255).astype(np.uint8)
    image = bicubic_resize(image, w // how.scale, h // how.scale)
    if how.noise_sigma is not None:
        sigma = record["noise_sigma"] = rng.uniform(*how.noise_sigma)
        noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if how.jpeg_quality is not None:
        quality = record["jpeg_quality"] = int(rng.integers(how.jpeg_quality[0], how.jpeg_quality[1] + 1))
        image = _jpeg(image, quality)
    return image
