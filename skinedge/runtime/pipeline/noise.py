"""How much of the camera's LR frame is noise: the level the projection must not fit below (NumPy only).

The back-projection (:mod:`.projection`) pulls the SR output onto the LR frame. A camera frame is not the clean
down-scale of the scene: sensor noise and JPEG's 8×8 quantization sit in it, and a full projection puts them back
at full amplitude. The discrepancy principle (Morozov) says to stop fitting at the noise level; this module
estimates that level from the LR alone, cheaply enough for every frame (≈0.7 ms for 160×120 on one core).

- ``sigma``: Immerkær's fast noise estimator (J. Immerkær 1996, "Fast Noise Variance Estimation"): the mask
  [[1,−2,1],[−2,4,−2],[1,−2,1]] (two second differences: blind to planes, nearly so to smooth shading),
  σ = sqrt(π/2)/6 · mean |mask ⊛ x|, per 8×8 block from the LR's corner, channels averaged. σ is the 5th percentile
  of the blocks (the flattest: healthy skin) times ``PERCENTILE_BIAS``, which undoes the low bias of taking a low
  percentile of noisy block estimates (pure noise); so texture, hair and edges do not count as noise. Blocks with
  clipped pixels (0 or 255: the dermatoscope's black vignette) are left out, clipping hides noise. Taken off in
  quadrature: uint8 rounding (1/12) and the fine texture that the flattest blocks of a *clean* dermoscopy LR still
  hold (``TEXTURE_VAR``), so a clean frame reads ≈0.
- ``blockiness``: JPEG's own error, which also erases the noise of flat blocks (after JPEG, ``sigma`` reads ≈0):
  the mean |step| across the 8×8 grid's boundaries minus the mean |step| between neighbours inside the blocks,
  on luma, each step counted up to 4 grey levels, on the frame's grid (an ROI passes its ``origin``). Real
  128×96 LRs: ≤0.1 without JPEG, ≈0.7 at quality 70, ≈0.35 at 90, ≈0.2 at 95.
- ``floor``: both folded into one level in grey levels, sqrt((E|n|/σ · σ)² + (BLOCK_GAIN · blockiness)²): the
  mean |LR − down(scene)| per pixel and channel below which the residual is noise and compression. A floor under
  ``DEAD_ZONE`` (the mean |error| of uint8 rounding alone) reads 0: a clean frame, projected fully.

- ``grid``: JPEG's quantization seen in the DCT: the mean |high-frequency DCT coefficient| of the luma's 8×8 blocks on
  the frame's grid over that of the blocks shifted half a block (which straddle the grid). JPEG zeroes those
  coefficients in its own blocks only, so a JPEG'd LR reads well below 1 even where its steps are too weak to
  measure (small or textured LRs); noise, blur and texture raise or lower both alike. 128×96 ISIC LRs (57 validation
  photos of a ``train all`` split): clean 0.90–1.07; blur + noise + JPEG 70–95 0.17–0.89. Below ``JPEG_GRID`` the
  floor is at least ``JPEG_FLOOR``, a typical JPEG'd LR's (the median floor the steps gave on those photos).

Known blind spot, now narrowed: JPEG at quality ≳ 92 over noise (σ ≳ 2) keeps the noise only in textured blocks and
leaves little blockiness. The steps then read ≈0; the DCT grid catches most such frames, not all (a grid ratio
above ``JPEG_GRID``). Without the grid, 3 of 57 held-out camera LRs of a 25-min ``train all`` run read a floor
≤ 0.42 and were projected fully: −0.73, −0.13 and −0.09 dB lesion PSNR-Y against the generator alone.

Layout: the projection's float 1×3×h×w RGB in [0, 1]; results in grey levels (0–255 units).
Constants: see ``tests/test_projection_noise.py`` (synthetic) and ``benchmarks/projection_noise.py`` (real frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK = 8  # JPEG's grid: 8×8 LR pixels from the frame's top-left corner
PERCENTILE = 5.0  # the flattest 5 % of the blocks
PERCENTILE_BIAS = 1.18  # pure Gaussian noise: σ = 1.18 × the 5th percentile of the block estimates (32² to 320×240)
QUANT_VAR = 1.0 / 12.0  # grey levels²: uint8 rounding, not the camera's noise
TEXTURE_VAR = 2.0  # grey levels²: the flattest blocks of clean dermoscopy LRs read 0.94 (median), 1.38 (90th
# percentile), 2.0 (max) over 230 real 128×96 LRs; 1.41² leaves 93 % of them at σ = 0
STEP_CLIP = 4.0  # grey levels: a step counts at most this much in the blockiness
BLOCK_GAIN = 2.5  # JPEG's mean luma error per unit of blockiness (100 real LRs: 2.4 at quality 70 … 3.4 at 90)
DEAD_ZONE = 0.25  # grey levels: mean |uint8 rounding error| = 1/4
JPEG_GRID = 0.8  # grid ratio below which an LR was JPEG'd (clean LRs read ≥ 0.9; see the module docstring)
JPEG_FLOOR = 1.1  # grey levels: the median floor of JPEG'd 128×96 LRs whose steps could be measured (1.14)
MEAN_ABS = math.sqrt(2.0 / math.pi)  # E|n| / σ for Gaussian n
IMMERKAER = math.sqrt(math.pi / 2.0) / 6.0  # σ = IMMERKAER · mean |mask ⊛ x|
BT601 = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class NoiseLevel:
    """An LR frame's noise, in grey levels (0–255).

    Attributes:
        sigma: standard deviation of the additive noise per channel, seen in flat regions.
        blockiness: mean extra |step| across JPEG's 8×8 boundaries (≈0 without JPEG).
        floor: the residual level (mean |LR − down(scene)| per pixel and channel) due to both; 0 for a clean frame.
        grid: on-grid over half-block-shifted high-frequency DCT energy of the luma (1.0: too small to tell).
    """

    sigma: float
    blockiness: float
    floor: float
    grid: float = 1.0  # JPEG's DCT signature (:func:`grid_ratio`): ≈1 clean, below ``JPEG_GRID`` JPEG'd


def block_sigmas(x255: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Immerkær's σ per block of a C×h×w image (grey levels), channels averaged: hb×wb, NaN where not usable.

    Block (i, j) covers pixels [block·i, block·(i+1)) × [block·j, block·(j+1)); its mask responses are those centred
    on its pixels whose 3×3 neighbourhood lies in the frame. Blocks with a clipped pixel (0 or 255) are NaN.
    """
    c, h, w = x255.shape
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0 or h < 3 or w < 3:
        return np.full((hb, wb), np.nan, np.float32)
    rows = x255[:, :-2] - 2.0 * x255[:, 1:-1] + x255[:, 2:]
    full = np.zeros((c, h, w), np.float32)
    full[:, 1:-1, 1:-1] = np.abs(rows[:, :, :-2] - 2.0 * rows[:, :, 1:-1] + rows[:, :, 2:])
    count = np.zeros((h, w), np.float32)
    count[1:-1, 1:-1] = c
    hc, wc = hb * block, wb * block
    sums = full[:, :hc, :wc].reshape(c, hb, block, wb, block).sum(axis=(0, 2, 4))
    counts = count[:hc, :wc].reshape(hb, block, wb, block).sum(axis=(1, 3))
    x = x255[:, :hc, :wc]
    clipped = ((x < 0.5) | (x > 254.5)).reshape(c, hb, block, wb, block).any(axis=(0, 2, 4))
    sigma = IMMERKAER * sums / np.maximum(counts, 1.0)
    sigma[clipped | (counts < block * block * c / 2)] = np.nan
    return sigma


def blockiness(luma255: np.ndarray, origin: tuple[int, int] = (0, 0)) -> float:
    """JPEG's 8×8 steps in an h×w image: per axis, the mean |step| across the grid's boundaries minus elsewhere.

    ``origin``: the image's top-left pixel (y, x) in the frame that was JPEG-compressed, whose grid starts at 0.
    Steps count at most ``STEP_CLIP`` grey levels: JPEG's steps are small and sit in flat regions, while edges and
    strong texture would otherwise make the difference of two means wander.
    """
    found = []
    for axis in (0, 1):
        steps = np.minimum(np.abs(np.diff(luma255, axis=axis)), STEP_CLIP)  # step k: pixel k → k+1 along axis
        if steps.shape[1 - axis] == 0:
            continue
        per_step = steps.mean(axis=1 - axis)
        edge = (np.arange(per_step.size) + origin[axis]) % BLOCK == BLOCK - 1  # pixel 8m+7 → 8m+8 of the frame
        if edge.any() and not edge.all():
            found.append(float(per_step[edge].mean() - per_step[~edge].mean()))
    return max(0.0, sum(found) / len(found)) if found else 0.0


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    k = np.arange(n)
    c = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c.astype(np.float32)


DCT = _dct_matrix()
HIGH = np.add.outer(np.arange(BLOCK), np.arange(BLOCK)) >= BLOCK - 1  # the coefficients with u + v ≥ 7


def grid_ratio(luma255: np.ndarray, origin: tuple[int, int] = (0, 0)) -> float:
    """Mean |high-frequency DCT coefficient| of the 8×8 blocks on the frame's JPEG grid over that of the blocks
    shifted by half a block (see the module docstring); 1.0 when the image holds too few of either."""
    h, w = luma255.shape
    means = []
    for shift in (0, BLOCK // 2):
        y0, x0 = (shift - origin[0]) % BLOCK, (shift - origin[1]) % BLOCK
        hb, wb = (h - y0) // BLOCK, (w - x0) // BLOCK
        if hb < 1 or wb < 1 or hb * wb < 4:
            return 1.0
        blocks = luma255[y0:y0 + hb * BLOCK, x0:x0 + wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).transpose(0, 2, 1, 3)
        coefficients = DCT @ blocks.astype(np.float32) @ DCT.T
        means.append(float(np.abs(coefficients[:, :, HIGH]).mean()))
    return means[0] / means[1] if means[1] > 1e-6 else 1.0


def estimate(lr: np.ndarray, origin: tuple[int, int] = (0, 0)) -> NoiseLevel:
    """The noise level of an LR frame (float 1×3×h×w RGB in [0, 1]) from the frame alone.

    ``origin``: where the LR's top-left pixel (y, x) lies in the camera frame, when the LR is an ROI cut from it:
    JPEG's grid is the frame's (the caller knows the ROI; searching the grid's phase instead reads periodic
    texture of real images as JPEG).
    """
    x = np.asarray(lr, np.float32)[0] * np.float32(255.0)
    blocks = block_sigmas(x)
    flat = blocks[np.isfinite(blocks)]
    raw = float(np.percentile(flat, PERCENTILE)) * PERCENTILE_BIAS if flat.size else 0.0
    sigma = math.sqrt(max(raw * raw - QUANT_VAR - TEXTURE_VAR, 0.0))
    luma = BT601[0] * x[0] + BT601[1] * x[1] + BT601[2] * x[2]
    blk = blockiness(luma, origin)
    floor = math.hypot(MEAN_ABS * sigma, BLOCK_GAIN * blk)
    floor = floor if floor >= DEAD_ZONE else 0.0
    grid = grid_ratio(luma, origin)
    if grid < JPEG_GRID:  # JPEG'd, whatever its steps read: at least a typical JPEG'd LR's floor
        floor = max(floor, JPEG_FLOOR)
    return NoiseLevel(sigma, blk, floor, grid)
