"""Odd and broken files: converted when they can be, a specific message when not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from layouts import sample, save
from skinedge.data.imageio import read_mask, read_rgb
from skinedge.errors import DataError


@pytest.fixture
def rgb():
    return sample(0).image


def test_rgb_roundtrip_is_exact(tmp_path, rgb):
    save(tmp_path / "a.png", rgb)
    image, notes = read_rgb(tmp_path / "a.png")
    assert np.array_equal(image, rgb) and notes == []


def test_sixteen_bit_grayscale_png_is_scaled_to_8_bit_rgb(tmp_path):
    gray16 = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    image, notes = read_rgb(tmp_path / "g16.png")
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert np.array_equal(image[..., 0], np.rint(gray16 / 65535 * 255).astype(np.uint8))
    assert any("8-bit" in n for n in notes) and "grayscale → RGB" in notes


def test_sixteen_bit_rgb_png_is_read(tmp_path, rgb):
    cv2 = pytest.importorskip("cv2")
    rgb16 = rgb.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])
    image, _ = read_rgb(tmp_path / "c16.png")
    assert image.shape == rgb.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - rgb).max() <= 1


def test_grayscale_palette_and_rgba_are_converted(tmp_path, rgb):
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.jpg")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    gray, notes = read_rgb(tmp_path / "gray.jpg")
    assert gray.shape == rgb.shape and "grayscale → RGB" in notes
    assert read_rgb(tmp_path / "pal.png")[0].shape == rgb.shape
    image, notes = read_rgb(tmp_path / "rgba.png")
    assert np.array_equal(image, rgb) and "RGBA → RGB (alpha dropped)" in notes


def test_truncated_jpeg(tmp_path, rgb):
    save(tmp_path / "full.jpg", rgb, "JPEG")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.jpg: cannot decode: truncated or corrupt"):
        read_rgb(tmp_path / "cut.jpg")


def test_png_that_is_really_text(tmp_path):
    (tmp_path / "fake.png").write_text("<html>404 Not Found</html>\n")
    with pytest.raises(DataError, match=r"fake.png: not an image: it is a text file"):
        read_rgb(tmp_path / "fake.png")


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_rgb(tmp_path / "empty.png")
    with pytest.raises(DataError, match="file not found"):
        read_rgb(tmp_path / "nope.png")


def test_binary_mask_conventions(tmp_path):
    mask = sample(1).mask
    save(tmp_path / "m255.png", mask.astype(np.uint8) * 255)
    save(tmp_path / "m1.png", mask.astype(np.uint8))
    grey = mask.astype(np.uint8) * 255
    grey[0, :4] = [1, 100, 128, 200]
    save(tmp_path / "grey.png", grey)
    read, notes = read_mask(tmp_path / "m255.png")
    assert np.array_equal(read, mask) and notes == []
    read, notes = read_mask(tmp_path / "m1.png")
    assert np.array_equal(read, mask) and "non-binary mask: values {0, 1}" in notes[0]
    read, notes = read_mask(tmp_path / "grey.png")
    assert read[0, :4].tolist() == [False, False, True, True]
    assert "binarised at 128" in notes[0]


def test_rgb_mask_is_reduced_to_one_channel(tmp_path):
    mask = sample(2).mask
    save(tmp_path / "rgbmask.png", np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2))
    read, notes = read_mask(tmp_path / "rgbmask.png")
    assert np.array_equal(read, mask) and "single channel" in notes[0]
