"""Super-resolve a large ROI in overlapping tiles, blended with feathered weights (no seams).

Tiles all have one size (so they batch): on each axis the fewest tiles of at most
the engine's tile size that overlap by at least ``overlap``, each only as long as
that count needs (:func:`tile_side`), spread evenly from edge to edge. In every overlap the
weights ramp linearly from one tile to the other; the image border keeps
weight 1, so a single-tile ROI is passed through unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis covering ``size`` with tiles of ``tile`` (≤ size)."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / max(1, tile - overlap))  # fewest tiles with at least ``overlap``
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]  # spread evenly


def tile_side(size: int, tile: int, overlap: int) -> int:
    """The shortest side (≤ ``tile``) that still covers ``size`` with the fewest tiles of ``tile``.

    A 321-px side with 256-px tiles needs two tiles either way; two of 165 px do 35 % less SR work on that axis
    than two of 256 px that mostly overlap each other (2.4× less when both axes are like that). SR time is
    about proportional to pixels: a 321×268 ROI took 3.4 s instead of 9.8 s on this project's CPU."""
    if size <= tile:
        return size
    count = math.ceil((size - overlap) / max(1, tile - overlap))
    return min(tile, math.ceil((size + (count - 1) * overlap) / count))


def _ramp(length: int, start: int, total: int, overlap: int) -> np.ndarray:
    """1-D weights of a tile: linear ramps where it overlaps a neighbour, 1 at the image border."""
    w = np.ones(length, np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap if overlap else np.zeros(0, np.float32)
    if start > 0 and overlap:
        w[:overlap] = ramp
    if start + length < total and overlap:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def super_resolve_tiled(run: Callable[[np.ndarray], np.ndarray], lr: np.ndarray, scale: int, tile: int,
                        overlap: int, max_batch: int = 4) -> np.ndarray:
    """SR of a 1×3×h×w float32 array through ``run`` (N×3×t×t → N×3×t·s×t·s), tiled when larger than ``tile``."""
    _, c, h, w = lr.shape
    if h <= tile and w <= tile:
        return run(lr)
    th, tw = tile_side(h, tile, overlap), tile_side(w, tile, overlap)
    overlap = min(overlap, th // 2, tw // 2)
    boxes = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    out = np.zeros((1, c, h * scale, w * scale), np.float32)
    weight = np.zeros((h * scale, w * scale), np.float32)
    for i in range(0, len(boxes), max_batch):
        chunk = boxes[i:i + max_batch]
        batch = np.concatenate([lr[:, :, y:y + th, x:x + tw] for y, x in chunk])
        result = run(np.ascontiguousarray(batch))
        for (y, x), tile_out in zip(chunk, result):
            wy = _ramp(th * scale, y * scale, h * scale, overlap * scale)
            wx = _ramp(tw * scale, x * scale, w * scale, overlap * scale)
            wgt = wy[:, None] * wx[None, :]
            out[0, :, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] += tile_out * wgt
            weight[y * scale:(y + th) * scale, x * scale:(x + tw) * scale] += wgt
    return out / weight
