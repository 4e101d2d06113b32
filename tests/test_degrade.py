from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from layouts import sample
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade, mod_crop
from skinedge.errors import DataError
from skinedge.metrics import psnr


@pytest.fixture
def hr():
    return sample(5, size=128).image


def test_bicubic_only_is_the_classic_protocol(hr):
    lr = degrade(hr, Degradation.bicubic_only(4), seed=123)
    expected = np.asarray(Image.fromarray(hr).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(lr, expected)
    assert np.array_equal(lr, degrade(hr, Degradation.bicubic_only(4), seed=999))  # no randomness


def test_default_degradation_is_seeded_and_worse_than_bicubic(hr):
    a = degrade(hr, Degradation(), seed=1)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, degrade(hr, Degradation(), seed=1))
    assert not np.array_equal(a, degrade(hr, Degradation(), seed=2))
    clean = degrade(hr, Degradation.bicubic_only(), seed=1)
    assert psnr(bicubic_upscale(a, 4), hr) < psnr(bicubic_upscale(clean, 4), hr)


def test_each_step_changes_the_output(hr):
    base = degrade(hr, Degradation.bicubic_only(), seed=3)
    for step in (dict(blur_sigma=(1.0, 1.0)), dict(noise_sigma=(5.0, 5.0)), dict(jpeg_quality=(50, 50))):
        how = Degradation(**{**dict(blur_sigma=None, noise_sigma=None, jpeg_quality=None), **step})
        assert not np.array_equal(degrade(hr, how, seed=3), base), step


def test_scale_two_and_mod_crop(hr):
    odd = hr[:127, :126]
    with pytest.raises(DataError, match="not a multiple of the scale"):
        degrade(odd, Degradation(scale=4))
    cropped = mod_crop(odd, 4)
    assert cropped.shape == (124, 124, 3)
    assert degrade(cropped, Degradation(scale=2), seed=0).shape == (62, 62, 3)
