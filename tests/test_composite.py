"""The NumPy masking and the composite's blending rule (the reference the CUDA kernel is tested against)."""

from __future__ import annotations

import numpy as np

from skinedge.runtime.pipeline.mask import dilate, feather, mask_image
from skinedge.runtime.pipeline.reference import blend


def test_dilate_grows_a_pixel_into_a_square():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert dilate(mask, 2).sum() == 25 and dilate(mask, 2)[2:7, 2:7].all()
    assert np.array_equal(dilate(mask, 0), mask)


def test_mask_image_blacks_out_the_background():
    image = np.full((4, 4, 3), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    out = mask_image(image, mask)
    assert out.dtype == np.uint8 and out[mask].min() == 200 and out[~mask].max() == 0


def test_feather_keeps_mass_and_composite_blends_between_inputs():
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    soft = feather(mask, sigma=2.0)
    assert soft.dtype == np.float32 and 0.0 <= soft.min() and soft.max() <= 1.0
    assert abs(soft.sum() - mask.sum()) < 1e-3 * mask.sum()
    lesion, background = np.full((32, 32, 3), 250, np.uint8), np.full((32, 32, 3), 10, np.uint8)
    out = blend(lesion, background, soft)
    assert out[16, 16].tolist() == [250] * 3 and out[0, 0].tolist() == [10] * 3
    edge = out[16, 8, 0]
    assert 10 < edge < 250  # a gradual seam, no hard step
    hard = np.where(mask[..., None], lesion, background)
    assert np.array_equal(blend(lesion, background, feather(mask, 0)), hard)
