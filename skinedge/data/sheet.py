"""Contact sheets: a grid of a dataset's images with the mask outline drawn.

The quickest way to see whether a dataset (or the generator) is what you
think it is, and whether masks line up with the lesions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from skinedge.atomic import write_bytes_atomic
from skinedge.data.dataset import Dataset
from skinedge.data.imageio import encode_png
from skinedge.errors import DataError

OUTLINE_RGB = (40, 255, 90)


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels on the inner boundary of a bool mask, ``width`` pixels thick."""
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1, mode="edge")
        inner = (inner & padded[:-2, 1:-1] & padded[2:, 1:-1]
                 & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner


def _tile(image: np.ndarray, mask: np.ndarray | None, size: int) -> np.ndarray:
    """Centre-crop to square, resize to ``size``, draw the mask outline."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    tile = np.asarray(Image.fromarray(image[top:top + side, left:left + side])
                      .resize((size, size), Image.BILINEAR)).copy()
    if mask is not None:
        crop = mask[top:top + side, left:left + side].astype(np.uint8) * 255
        small = np.asarray(Image.fromarray(crop).resize((size, size), Image.NEAREST)) > 127
        tile[mask_outline(small, width=max(1, size // 128))] = OUTLINE_RGB
    return tile


def contact_sheet(dataset: Dataset, out: Path, count: int = 16, tile: int = 256,
                  columns: int = 4) -> list[str]:
    """Write a PNG grid of ``count`` evenly spaced items; returns the ids shown."""
    if len(dataset) == 0:
        raise DataError(f"{dataset.spec} has no items to show")
    count = min(count, len(dataset))
    picks = np.linspace(0, len(dataset) - 1, count).round().astype(int)
    rows = -(-count // columns)
    label_h = 14
    sheet = Image.new("RGB", (columns * tile, rows * (tile + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    shown = []
    for n, index in enumerate(picks):
        item = dataset[int(index)]
        x, y = (n % columns) * tile, (n // columns) * (tile + label_h)
        sheet.paste(Image.fromarray(_tile(item.image, item.mask, tile)), (x, y))
        draw.text((x + 4, y + tile + 1), item.id, fill=(220, 220, 220))
        shown.append(item.id)
    write_bytes_atomic(out, encode_png(np.asarray(sheet)))
    return shown
