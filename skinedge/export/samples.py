"""Real images for parity checks, calibration and accuracy gates, prepared as the runtime does.

No torch here: the segmenter's input is PIL-bilinear-resized and normalised with
the mean/std from ``models.json``; the SR generator gets lesion crops (bicubic
×scale LR of a lesion-centred window, with the real image around the lesion),
exactly what the pipeline feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from skinedge.data import open_dataset
from skinedge.data.dataset import Dataset, Item
from skinedge.data.degrade import CAMERA_SIDE, Degradation, degrade, fit_long_side, mod_crop
from skinedge.data.splits import recorded_or_new_split
from skinedge.errors import DataError
SR_LR_SIDE = 64  # LR crop side for the SR gates and calibration
SR_TIMING_SIDES = (64, 128)  # LR sides the runtime feeds the generator (live runs: ROIs reduced to the SR budget)


def dataset_parts(spec: str, recorded: dict | None) -> tuple[Dataset, dict[str, list[str]], str]:
    """The dataset and its train/val/test ids: the checkpoint's split when it was made for
    this dataset, else a seeded split of it (seed 0, as ``eval`` does)."""
    dataset = open_dataset(spec)
    split, path = recorded_or_new_split(dataset, recorded)
    source = f"the checkpoint's split {path}" if path else f"{split.strategy} split of {spec}, seed 0"
    return dataset, split.parts, source


def seg_input(image: np.ndarray, size: int, mean, std) -> np.ndarray:
    """uint8 H×W×3 RGB → 3×size×size float32, normalised (the segmenter's input)."""
    small = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), np.float32) / 255.0
    return np.ascontiguousarray(((small - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
                                .transpose(2, 0, 1))


def mask_from_logits(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A network-resolution logit map → bool lesion mask at an image's size (bilinear, logit > 0)."""
    return np.asarray(Image.fromarray(logits.astype(np.float32)).resize(shape[::-1], Image.BILINEAR)) > 0


@dataclass
class LesionCrop:
    """One SR sample: the LR crop the network sees, and the HR truth to score it."""

    id: str
    lr: np.ndarray  # h×w×3 uint8, the real surround kept (the runtime never feeds a black one)
    hr: np.ndarray  # (h·scale)×(w·scale)×3 uint8
    mask: np.ndarray  # (h·scale)×(w·scale) bool lesion mask (where quality is scored)
    protocol: str = "bicubic"  # how ``lr`` was made: ``bicubic`` ÷scale or the ``camera``'s (Degradation.protocol)


def at_camera_scale(item: Item, mask: np.ndarray, scale: int) -> tuple[Item, np.ndarray]:
    """The photo (and its mask) at ≤ ``CAMERA_SIDE`` px, the scale the runtime and ``train all`` run SR at:
    crops of a 1024-px photo hold smoother pixels than the camera's, and INT8 ranges calibrated on them clip
    real frames' lesion borders (seen: an INT8 generator 0.2 dB under FP32 on such crops, 2 dB in the border
    band of whole photos at 512 px)."""
    image, mask = fit_long_side(item.image, mask, CAMERA_SIDE, scale)
    return replace(item, image=image, mask=mask), mask


def whole_photo(item: Item, mask: np.ndarray, scale: int, degradation: Degradation | None = None,
                seed: int = 0) -> LesionCrop:
    """The whole photo as one SR sample (``item`` already at the camera's scale): borders and surround as the
    runtime's full mode sees them."""
    hr = mod_crop(item.image, scale)
    how = degradation or Degradation.bicubic_only(scale)
    return LesionCrop(item.id, degrade(hr, how, seed=seed), hr, mask[: hr.shape[0], : hr.shape[1]], how.protocol)


def _window(mask: np.ndarray | None, shape: tuple[int, int], side: int) -> tuple[int, int]:
    """Top-left of a side×side window centred on the lesion (image centre without one)."""
    h, w = shape
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    else:
        cy, cx = h // 2, w // 2
    return int(np.clip(cy - side // 2, 0, h - side)), int(np.clip(cx - side // 2, 0, w - side))


def lesion_crop(item: Item, mask: np.ndarray, scale: int, lr_side: int = SR_LR_SIDE,
                degradation: Degradation | None = None, seed: int = 0) -> LesionCrop:
    """Cut a lesion-centred HR window (≤ lr_side·scale) and degrade it: bicubically (protocol a), or with
    ``degradation`` (e.g. the camera's, protocol b) seeded by ``seed``."""
    image = mod_crop(item.image, scale)
    mask = mask[: image.shape[0], : image.shape[1]]
    side = min(lr_side * scale, image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale)
    if side < 4 * scale:
        raise DataError(f"{item.id} is {image.shape[1]}×{image.shape[0]}: too small for a ×{scale} crop")
    top, left = _window(mask, image.shape[:2], side)
    hr = np.ascontiguousarray(image[top:top + side, left:left + side])
    hr_mask = mask[top:top + side, left:left + side]
    how = degradation or Degradation.bicubic_only(scale)
    return LesionCrop(item.id, degrade(hr, how, seed=seed), hr, hr_mask, how.protocol)


def image_stats(item: Item, mask: np.ndarray) -> tuple[float, float]:
    """(lesion area fraction, lesion/background contrast in luminance/255): the strata keys."""
    y = item.image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    area = float(mask.mean())
    inside = y[mask].mean() if mask.any() else y.mean()
    outside = y[~mask].mean() if (~mask).any() else y.mean()
    return area, float(abs(inside - outside) / 255.0)


def stratified_pick(stats: dict[str, tuple[float, float]], count: int, seed: int = 0) -> list[str]:
    """Choose ``count`` ids spread over lesion size × contrast tertiles (3×3 strata), round-robin,
    so calibration sees small and large, faint and dark lesions, not just the common case."""
    ids = sorted(stats)
    if len(ids) <= count:
        return ids
    area = np.array([stats[i][0] for i in ids])
    contrast = np.array([stats[i][1] for i in ids])
    edges = lambda v: np.quantile(v, [1 / 3, 2 / 3])  # noqa: E731
    cell = np.digitize(area, edges(area)) * 3 + np.digitize(contrast, edges(contrast))
    rng = np.random.default_rng(seed)
    buckets = [list(rng.permutation([i for i, c in zip(ids, cell) if c == k])) for k in range(9)]
    chosen: list[str] = []
    while len(chosen) < count:
        for bucket in buckets:
            if bucket and len(chosen) < count:
                chosen.append(str(bucket.pop()))
    return sorted(chosen)
