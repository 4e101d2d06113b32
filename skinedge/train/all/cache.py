"""Decoded-image cache: every photo is decoded and resized once, then training reads memory-mapped arrays.

Without it, each SR crop decoded a 1024-px JPEG (~15 ms) and each segmenter sample resized a photo again. The
cache holds, per usable item, the segmenter's input (size², RGB uint8) and mask, and the SR image at the run's
HR scale (long side ≤ ``sr_side``, a multiple of the scale) and its mask, in three flat files and an index.
Items that cannot be decoded are reported, one line each, and left out.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge.atomic import write_json_atomic
from skinedge.data import open_dataset
from skinedge.data.degrade import fit_long_side, resize_mask
from skinedge.errors import DataError
from skinedge.progress import progress_bar

INDEX = "index.json"


def _prepare(args: tuple) -> tuple:
    """(id, seg image, seg mask, SR image, SR mask) or (id, error message): runs in a worker process."""
    ref, seg_size, sr_side, scale = args
    try:
        item = ref.load()
    except DataError as exc:
        return ref.id, str(exc)
    image, mask = item.image, item.mask
    if mask is None:
        mask = np.zeros(image.shape[:2], bool)
    seg = np.asarray(Image.fromarray(image).resize((seg_size, seg_size), Image.BILINEAR))
    seg_mask = resize_mask(mask, seg_size, seg_size)
    return (ref.id, seg, seg_mask, *fit_long_side(image, mask, sr_side, scale))


def build_cache(spec: str, ids: list[str], folder: Path, seg_size: int, sr_side: int, scale: int = 4,
                workers: int = 2, log=print) -> dict:
    """Decode ``ids`` of ``spec`` into ``folder``; returns the index (also written as ``index.json``, last)."""
    folder.mkdir(parents=True, exist_ok=True)
    dataset = open_dataset(spec).subset(ids)
    n = len(dataset)
    seg_images = np.lib.format.open_memmap(folder / "seg_images.npy", "w+", np.uint8, (n, seg_size, seg_size, 3))
    seg_masks = np.lib.format.open_memmap(folder / "seg_masks.npy", "w+", np.bool_, (n, seg_size, seg_size))
    entries, offset, skipped = [], 0, []
    with open(folder / "sr_pixels.bin", "wb") as pixels, open(folder / "sr_masks.bin", "wb") as masks, \
            ProcessPoolExecutor(workers) as pool, progress_bar(n, "cache", True) as update:
        jobs = ((ref, seg_size, sr_side, scale) for ref in dataset.refs)
        for done, result in enumerate(pool.map(_prepare, jobs, chunksize=4), 1):
            if len(result) == 2:
                skipped.append(result[0])
                log(f"skipped {result[1]}")
            else:
                item_id, seg, seg_mask, image, mask = result
                row = len(entries)
                seg_images[row], seg_masks[row] = seg, seg_mask
                pixels.write(image.tobytes())
                masks.write(mask.tobytes())
                entries.append({"id": item_id, "shape": list(image.shape[:2]), "offset": offset,
                                "lesion": round(float(mask.mean()), 4)})
                offset += image.shape[0] * image.shape[1]
            update(done)
    seg_images.flush()
    seg_masks.flush()
    index = {"items": entries, "skipped": skipped, "seg_size": seg_size, "sr_side": sr_side, "scale": scale}
    write_json_atomic(folder / INDEX, index)
    return index


@dataclass
class Cache:
    """Read side of the cache: memory maps, so DataLoader workers share the pages."""

    folder: Path

    def __post_init__(self):
        self.index = json.loads((self.folder / INDEX).read_text())
        self.rows = {e["id"]: i for i, e in enumerate(self.index["items"])}
        self.seg_images = np.load(self.folder / "seg_images.npy", mmap_mode="r")
        self.seg_masks = np.load(self.folder / "seg_masks.npy", mmap_mode="r")
        self._pixels = np.memmap(self.folder / "sr_pixels.bin", np.uint8, "r")
        self._masks = np.memmap(self.folder / "sr_masks.bin", np.bool_, "r")

    def usable(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i in self.rows]

    def seg(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        row = self.rows[item_id]
        return self.seg_images[row], self.seg_masks[row]

    def sr(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(HR uint8 RGB H×W×3, lesion mask H×W bool) at the run's HR scale."""
        e = self.index["items"][self.rows[item_id]]
        h, w = e["shape"]
        o = e["offset"]
        return (self._pixels[o * 3:(o + h * w) * 3].reshape(h, w, 3), self._masks[o:o + h * w].reshape(h, w))
