"""Training samples for both networks, deterministic per (seed, epoch, index).

Segmentation (paper §4.2.1): the image resized to S×S (256), random horizontal/
vertical flips and brightness/contrast changes, ImageNet normalisation.
SR (§4.2.2): HR crops of H×H (256) from the image, half of them centred on the
lesion when a mask exists (the runtime enhances lesions), flips, and the LR
made by :func:`skinedge.data.degrade.degrade`.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from skinedge.data.dataset import Dataset, Item
from skinedge.data.degrade import Degradation, degrade, resize_mask
from skinedge.errors import DataError
from skinedge.models import srgan

IMAGENET_MEAN = np.array(srgan.IMAGENET_MEAN, np.float32)
IMAGENET_STD = np.array(srgan.IMAGENET_STD, np.float32)
CACHE_BYTES = 1_500_000_000


class ItemCache:
    """Decoded (and possibly resized) items kept in memory up to a byte budget."""

    def __init__(self, dataset: Dataset, prepare=lambda item: item, budget: int = CACHE_BYTES):
        self.dataset, self.prepare, self.budget = dataset, prepare, budget
        self.items: dict[int, Item] = {}
        self.used = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Item:
        if index in self.items:
            return self.items[index]
        item = self.prepare(self.dataset[index])
        size = item.image.nbytes + (0 if item.mask is None else item.mask.nbytes)
        if self.used + size <= self.budget:
            self.items[index] = item
            self.used += size
        return item


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def _resize_item(item: Item, size: int) -> Item:
    image = np.asarray(Image.fromarray(item.image).resize((size, size), Image.BILINEAR))
    mask = None if item.mask is None else resize_mask(item.mask, size, size)
    return Item(item.id, image, mask, item.group, item.split, item.meta, item.notes)


def normalise_imagenet(images: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 RGB → N×3×H×W float32, ImageNet mean/std (the segmenter's input)."""
    x = (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def to_unit(images: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 RGB → N×3×H×W float32 in [0, 1] (the SR generator's input/output)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


class SegSamples:
    """Images and masks at ``size``² for the segmenter."""

    def __init__(self, dataset: Dataset, size: int = 256, augment: bool = True, seed: int = 0):
        if not dataset.has_masks:
            raise DataError(f"{dataset.spec} has no segmentation masks: the segmenter cannot be trained "
                            "on it (Derm7pt and mask-less folders are for SR training only)")
        without = [ref.id for ref in dataset.refs if ref.mask_path is None]
        if without:
            raise DataError(f"{len(without)} item(s) of {dataset.spec} have no mask, e.g. {without[0]}: "
                            f"run `skinedge data check {dataset.spec}`")
        self.items = ItemCache(dataset, lambda item: _resize_item(item, size))
        self.augment, self.seed, self.size = augment, seed, size

    def __len__(self) -> int:
        return len(self.items)

    def _sample(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.items[index]
        image, mask = item.image, item.mask
        if self.augment:
            rng = _rng(self.seed, epoch, index)
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if rng.random() < 0.5:
                image, mask = image[::-1], mask[::-1]
            brightness, contrast = rng.uniform(-0.2, 0.2), rng.uniform(0.8, 1.2)
            f = image.astype(np.float32)
            f = (f - f.mean()) * contrast + f.mean() + 255.0 * brightness
            image = np.clip(f, 0, 255).astype(np.uint8)
        return image, mask

    def batch(self, indices: list[int], epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×3×S×S normalised images, N×1×S×S float masks)."""
        pairs = [self._sample(i, epoch) for i in indices]
        images = normalise_imagenet(np.stack([p[0] for p in pairs]))
        masks = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None]
        return images, masks


class SRSamples:
    """(LR, HR) pairs: HR crops of ``hr_size``² and their degraded LR."""

    def __init__(self, dataset: Dataset, hr_size: int = 256, degradation: Degradation = Degradation(),
                 train: bool = True, seed: int = 0, lesion_focus: float = 0.5):
        if hr_size % degradation.scale:
            raise DataError(f"HR crop {hr_size} is not a multiple of the scale {degradation.scale}")
        self.items = ItemCache(dataset)
        self.hr_size, self.degradation, self.train = hr_size, degradation, train
        self.seed, self.lesion_focus = seed, lesion_focus

    def __len__(self) -> int:
        return len(self.items)

    def _centre(self, item: Item) -> tuple[int, int]:
        h, w = item.image.shape[:2]
        s = self.hr_size
        if h < s or w < s:
            raise DataError(f"{item.id} is {w}×{h}, smaller than the HR crop {s}×{s}: lower --hr-size")
        return (h - s) // 2, (w - s) // 2

    def lesion_mask(self, index: int) -> np.ndarray | None:
        """The lesion mask of validation crop ``index`` (None without a mask)."""
        item = self.items[index]
        if item.mask is None:
            return None
        top, left = self._centre(item)
        return item.mask[top:top + self.hr_size, left:left + self.hr_size]

    def _crop(self, item: Item, rng: np.random.Generator | None) -> np.ndarray:
        """The centre crop (validation, ``rng`` None) or a random, often lesion-centred, crop."""
        s = self.hr_size
        top, left = self._centre(item)  # also checks the size
        if rng is not None:
            h, w = item.image.shape[:2]
            if item.mask is not None and item.mask.any() and rng.random() < self.lesion_focus:
                ys, xs = np.nonzero(item.mask)
                k = rng.integers(len(ys))
                top = int(np.clip(ys[k] - s // 2, 0, h - s))
                left = int(np.clip(xs[k] - s // 2, 0, w - s))
            else:
                top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        return item.image[top:top + s, left:left + s]

    def pair(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) uint8 RGB arrays of one sample."""
        rng = _rng(self.seed, epoch, index) if self.train else None
        hr = self._crop(self.items[index], rng)
        if rng is not None:
            if rng.random() < 0.5:
                hr = hr[:, ::-1]
            if rng.random() < 0.5:
                hr = hr[::-1]
        hr = np.ascontiguousarray(hr)
        lr_seed = int(rng.integers(2**31)) if rng is not None else index
        return degrade(hr, self.degradation, seed=lr_seed), hr

    def batch(self, indices: list[int], epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×3×h×w LR, N×3×H×W HR), both float in [0, 1]."""
        pairs = [self.pair(i, epoch) for i in indices]
        return to_unit(np.stack([p[0] for p in pairs])), to_unit(np.stack([p[1] for p in pairs]))
