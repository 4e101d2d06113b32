from __future__ import annotations

import cv2
import numpy as np
import pytest

from skinedge.train import augment as A
from skinedge.train.augment import augment_dermoscopy, augment_geometry

SKIN = (205, 182, 172)  # skin and (grey) lesion unsaturated: after colour jitter only stickers are saturated


def ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


def scene(mask: np.ndarray, lesion=(100, 100, 100), seed: int = 0) -> np.ndarray:
    """Textured skin with the lesion painted exactly where the mask is."""
    noise = np.random.default_rng(seed).normal(0, 5, (*mask.shape, 3))
    image = np.clip(np.array(SKIN) + noise, 0, 255).astype(np.uint8)
    image[mask] = lesion
    return image


@pytest.fixture
def pair():
    mask = ellipse(256, 256, 120, 140, 60, 45)
    return scene(mask), mask


def saturated(image: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return (hsv[..., 1] > 150) & (hsv[..., 2] > 120)


@pytest.mark.parametrize("shape", [(256, 256), (96, 160), (161, 97)])
@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_shapes_dtypes_and_inputs_untouched(shape, strength):
    h, w = shape
    mask = ellipse(h, w, h / 2, w / 2, h / 4, w / 5)
    image = scene(mask)
    before = image.copy(), mask.copy()
    rng = np.random.default_rng(0)
    for _ in range(40):
        out, out_mask = augment_dermoscopy(image, mask, rng, strength)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert out_mask.shape == mask.shape and out_mask.dtype == np.bool_
    assert np.array_equal(image, before[0]) and np.array_equal(mask, before[1])


def test_strength_zero_is_identity(pair):
    image, mask = pair
    out, out_mask = augment_dermoscopy(image, mask, np.random.default_rng(5), strength=0.0)
    assert np.array_equal(out, image) and np.array_equal(out_mask, mask)
    assert not np.shares_memory(out, image) and not np.shares_memory(out_mask, mask)


def test_bad_inputs_are_refused(pair):
    image, mask = pair
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        augment_dermoscopy(image.astype(np.float32), mask, rng)
    with pytest.raises(ValueError):
        augment_dermoscopy(image, mask.astype(np.uint8), rng)
    with pytest.raises(ValueError):
        augment_dermoscopy(image, mask, rng, strength=-1.0)


def test_deterministic_per_seed_and_different_across_seeds(pair):
    image, mask = pair
    for seed in range(5):
        a = augment_dermoscopy(image, mask, np.random.default_rng(seed))
        b = augment_dermoscopy(image, mask, np.random.default_rng(seed))
        c = augment_dermoscopy(image, mask, np.random.default_rng(seed + 100))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("shape", [(256, 256), (128, 200)])
def test_geometry_moves_image_and_mask_together(shape):
    h, w = shape
    mask = ellipse(h, w, 0.35 * h, 0.6 * w, 0.15 * h, 0.1 * w)  # off-centre, so flips and turns move it
    image = scene(mask, lesion=(225, 30, 30))
    rng = np.random.default_rng(11)
    moved = 0
    for _ in range(60):
        out, out_mask = augment_geometry(image, mask, rng)
        blob = out[..., 0].astype(int) - out[..., 1] > 95  # the red blob, half-way between lesion and skin
        assert iou(blob, out_mask) > 0.9
        moved += iou(out_mask, mask) < 0.5
    assert moved > 20


def test_hair_ruler_and_stickers_leave_the_mask_alone(pair, monkeypatch):
    image, mask = pair
    for name in ("P_FLIP", "P_ROT90", "P_AFFINE", "P_VIGNETTE"):
        monkeypatch.setattr(A, name, 0.0)
    for name in ("P_HAIR", "P_RULER", "P_STICKERS"):
        monkeypatch.setattr(A, name, 1.0)
    rng = np.random.default_rng(2)
    for _ in range(30):
        out, out_mask = augment_dermoscopy(image, mask, rng)
        assert np.array_equal(out_mask, mask) and not np.array_equal(out, image)


def test_stickers_and_rulers_are_drawn_outside_the_lesion():
    mask = ellipse(256, 256, 60, 60, 100, 100)  # a large lesion in the top-left corner
    image = scene(mask)
    drawn = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        for draw in (A._stickers, A._ruler):
            changed = (draw(image.copy(), mask, rng, 1.0) != image).any(-1)
            assert not (changed & mask).any()
            drawn += changed.any()
    assert drawn > 150  # nearly always finds a place


def test_sticker_colours_never_fall_on_the_mask(monkeypatch):
    mask = ellipse(256, 256, 60, 60, 100, 100)
    image = scene(mask)
    monkeypatch.setattr(A, "P_STICKERS", 1.0)
    monkeypatch.setattr(A, "P_DEGRADE", 0.0)  # JPEG's chroma may bleed a block into the lesion
    rng = np.random.default_rng(3)
    seen = 0
    for _ in range(100):
        out, out_mask = augment_dermoscopy(image, mask, rng)
        sticker = saturated(out)
        assert not (sticker & out_mask).any()
        seen += sticker.sum() > 50
    assert seen > 30  # white stickers and failed placements aside, they are seen


def test_vignette_clears_the_mask_in_the_black_corners():
    image = np.full((200, 240, 3), 180, np.uint8)
    mask = np.ones((200, 240), bool)
    corners_black = 0
    for seed in range(200):
        out, out_mask = A._vignette(image, mask, np.random.default_rng(seed), 1.0)
        black = out.max(-1) < 20
        corners_black += black[0, 0] & black[0, -1] & black[-1, 0] & black[-1, -1]
        assert black.any() and not (black & out_mask).any()
        assert out_mask[100, 120] and out[100, 120].min() == 180
        assert 0.55 < out_mask.mean() < 1.0
    assert corners_black > 150


def test_mask_fraction_stays_reasonable_and_images_never_go_black(pair):
    image, mask = pair
    f0 = mask.mean()
    rng = np.random.default_rng(42)
    fractions = []
    for _ in range(200):
        out, out_mask = augment_dermoscopy(image, mask, rng)
        fractions.append(out_mask.mean())
        assert out.max() > 100 and out.mean() > 40
    fractions = np.array(fractions) / f0
    assert fractions.min() > 0.35 and fractions.max() < 2.0
    assert 0.8 < fractions.mean() < 1.2
