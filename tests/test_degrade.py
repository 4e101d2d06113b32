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


def test_drawn_records_what_the_seed_drew_without_changing_the_lr(hr):
    """The record is the truth behind the LR: re-made from it step by step, the LR is the same bytes."""
    drawn = {}
    lr = degrade(hr, Degradation(), seed=7, drawn=drawn)
    assert np.array_equal(lr, degrade(hr, Degradation(), seed=7))
    assert set(drawn) == {"blur_sigma", "noise_sigma", "jpeg_quality"}
    assert 70 <= drawn["jpeg_quality"] <= 95 and 0.0 <= drawn["noise_sigma"] <= 4.0
    fixed = Degradation(blur_sigma=(drawn["blur_sigma"],) * 2, noise_sigma=(drawn["noise_sigma"],) * 2,
                        jpeg_quality=(drawn["jpeg_quality"],) * 2)
    assert np.array_equal(degrade(hr, fixed, seed=7), lr)
    only_jpeg = {}
    degrade(hr, Degradation(blur_sigma=None, noise_sigma=None), seed=7, drawn=only_jpeg)
    assert set(only_jpeg) == {"jpeg_quality"}
