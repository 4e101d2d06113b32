"""Checkerboard (period-2 SR artefact) energy and skin tone by Individual Typology Angle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layouts import mask_u8, sample
from skinedge.filters import filter_separable, gaussian_kernel1d
from skinedge.metrics import rgb_to_lab
from skinedge.quality import (ITA_GROUPS, MIN_SKIN_L, checkerboard_energy, checkerboard_ratio,
                              healthy_skin_ring, ita_degrees, ita_group)

N = 128
YY, XX = np.indices((N, N))
PATTERNS = {"x": XX, "y": YY, "xy": XX + YY}
AMPLITUDE_Y2 = (2 * 219 / 255) ** 2   # ±2 RGB levels on all channels = ±2·219/255 in studio-swing Y


def rgb(grey: np.ndarray) -> np.ndarray:
    """A brownish uint8 RGB image from a grey-level map."""
    return np.clip(np.round(np.stack([grey, 0.8 * grey, 0.6 * grey], axis=-1)), 0, 255).astype(np.uint8)


def checkered(image: np.ndarray, pattern: str = "xy", where: np.ndarray | None = None) -> np.ndarray:
    """``image`` plus a ±2 grey-level period-2 pattern (where ``where`` is True)."""
    sign = np.where(PATTERNS[pattern] % 2, -2, 2)
    if where is not None:
        sign = sign * where
    return np.clip(image.astype(int) + sign[..., None], 0, 255).astype(np.uint8)


GRADIENT = rgb(60 + 100 * XX / N + 30 * YY / N)


# ----------------------------------------------------------------- checkerboard
def test_smooth_gradient_scores_about_zero():
    assert checkerboard_energy(GRADIENT) < 0.01 * AMPLITUDE_Y2


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_faint_checkerboard_is_measured_as_its_squared_amplitude(pattern):
    flat = np.full((N, N, 3), 128, dtype=np.uint8)
    assert checkerboard_energy(checkered(flat, pattern)) == pytest.approx(AMPLITUDE_Y2, rel=1e-9)
    dirty = checkered(GRADIENT, pattern)   # the gradient's own rounding moves it a little
    assert checkerboard_energy(dirty) == pytest.approx(AMPLITUDE_Y2, rel=0.02)
    assert checkerboard_ratio(dirty, GRADIENT) > 10
    assert checkerboard_ratio(GRADIENT, dirty) < 0.1


EDGES = {
    **{f"vertical@{c}": XX >= c for c in (61, 62, 63, 64)},
    "horizontal": YY >= 70,
    "diagonal": XX + YY >= 127,
    "steep": 2 * XX + YY >= 190,
    "soft": np.clip((XX - 60) / 3, 0, 1),   # a 3-px ramp
}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_sharp_edge_alone_scores_far_below_the_faint_checkerboard(edge):
    image = rgb(60 + 120 * EDGES[edge])
    alone = checkerboard_energy(image)
    assert alone < 0.05 * checkerboard_energy(checkered(image))
    assert checkerboard_energy(checkered(image)) == pytest.approx(AMPLITUDE_Y2, rel=0.05)


def test_mask_restricts_the_measurement():
    left = XX < N // 2
    dirty = checkered(GRADIENT, where=~left)
    assert checkerboard_energy(dirty, left) < 0.01 * AMPLITUDE_Y2
    assert checkerboard_energy(dirty, mask_u8(left)) == checkerboard_energy(dirty, left)   # uint8 0/255 too
    assert checkerboard_energy(dirty, ~left) == pytest.approx(AMPLITUDE_Y2, rel=1e-3)
    assert checkerboard_ratio(dirty, GRADIENT, mask=left) < 2
    assert checkerboard_ratio(dirty, GRADIENT, mask=~left) > 10


def test_nan_when_no_window_fits_and_shape_errors():
    tiny = np.zeros((N, N), dtype=bool)
    tiny[10:30, 10:30] = True          # 20 px: no 16×16 window plus its 1-px support on the tiling grid
    assert math.isnan(checkerboard_energy(GRADIENT, tiny))
    assert math.isnan(checkerboard_ratio(GRADIENT, GRADIENT, tiny))
    assert math.isnan(checkerboard_energy(GRADIENT[:12, :12]))
    with pytest.raises(ValueError):
        checkerboard_energy(GRADIENT, tiny[:64])
    with pytest.raises(ValueError):
        checkerboard_ratio(GRADIENT, GRADIENT[:64])


def test_equal_images_give_ratio_one():
    assert checkerboard_ratio(GRADIENT, GRADIENT.copy()) == 1.0   # clean: both at the eps floor
    dirty = checkered(GRADIENT)
    assert checkerboard_ratio(dirty, dirty.copy()) == 1.0


def test_realistic_image_blurred_passes_target_checkered_fails():
    truth = sample(11, size=N).image
    blurred = filter_separable(truth, gaussian_kernel1d(0.8, 2), mode="reflect")
    blurred = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    assert checkerboard_ratio(blurred, truth) <= 1.5
    assert checkerboard_ratio(checkered(truth), truth) > 1.5


# ----------------------------------------------------------------- skin tone (ITA)
SKIN, LESION = (224, 180, 150), (90, 55, 40)


def hand_ita(colour: tuple[int, int, int]) -> float:
    """ITA from the colour's CIELAB with the textbook arctan (b* > 0 for skin)."""
    L, _, b = rgb_to_lab(np.array([[colour]], dtype=np.uint8))[0, 0]
    assert b > 0
    return math.degrees(math.atan((L - 50) / b))


def lesion_image(size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = SKIN
    mask = np.zeros((size, size), dtype=bool)
    mask[70:130, 60:140] = True
    image[mask] = LESION
    return image, mask


def test_ita_of_known_skin_colour():
    image, mask = lesion_image()
    assert ita_degrees(image, mask) == pytest.approx(hand_ita(SKIN), abs=1e-9)
    assert ita_group(ita_degrees(image, mask)) == ita_group(hand_ita(SKIN))


def test_lesion_and_its_border_colour_are_ignored():
    image, mask = lesion_image()
    ring = healthy_skin_ring(mask)
    halo = healthy_skin_ring(mask, inner=0, outer=3) & ~ring   # a dark rim just outside the mask
    other = image.copy()
    other[mask] = (20, 10, 200)
    other[halo] = (60, 30, 20)
    assert halo.any() and not (ring & mask).any()
    assert ita_degrees(other, mask) == ita_degrees(image, mask)


def test_dark_vignette_and_hair_are_ignored():
    image, mask = lesion_image()
    ring = healthy_skin_ring(mask)
    yy, xx = np.indices(mask.shape)
    dark = np.hypot(yy - 100, xx - 100) > 50         # the dermoscope's vignette
    dark |= xx % 4 == 0                              # hair: a dark line every 4 columns
    dark &= ~mask
    image[dark] = (15, 10, 10)
    assert rgb_to_lab(np.array([[(15, 10, 10)]], dtype=np.uint8))[0, 0, 0] < MIN_SKIN_L
    assert (dark & ring).sum() > 0.5 * ring.sum()     # so a plain median over the ring would be dark
    assert ita_degrees(image, mask) == pytest.approx(hand_ita(SKIN), abs=1e-9)
    image[~mask] = (15, 10, 10)
    assert math.isnan(ita_degrees(image, mask))


def test_ring_geometry_and_fallbacks():
    mask = np.zeros((100, 100), dtype=bool)
    mask[40:60, 40:60] = True
    ring = healthy_skin_ring(mask)                      # defaults: 2 and 10 px
    assert ring.sum() == 40 * 40 - 24 * 24
    assert ring[30, 30] and ring[37, 50] and not ring[38, 50] and not ring[29, 50]
    assert healthy_skin_ring(mask, inner=5, outer=6).sum() == 32 * 32 - 30 * 30
    almost_all = np.ones((100, 100), dtype=bool)
    almost_all[:, :2] = False                            # the 2-px strip lies inside the inner gap
    assert (healthy_skin_ring(almost_all) == ~almost_all).all()
    assert healthy_skin_ring(np.zeros((100, 100), dtype=bool)).all()   # no lesion: all the skin
    image, _ = lesion_image(100)
    assert math.isnan(ita_degrees(image, np.ones((100, 100), dtype=bool)))   # the lesion fills the image
    with pytest.raises(ValueError):
        ita_degrees(image, mask[:50])


@pytest.mark.parametrize("ita, group", [
    (90.0, "very light"), (55.001, "very light"), (55.0, "light"), (41.001, "light"), (41.0, "intermediate"),
    (28.001, "intermediate"), (28.0, "tan"), (10.001, "tan"), (10.0, "brown"), (-29.999, "brown"),
    (-30.0, "dark"), (-179.0, "dark"), (150.0, "very light"), (math.nan, "unknown"),
])
def test_ita_groups_at_boundaries(ita, group):
    assert ita_group(ita) == group


def test_ita_groups_tile_the_angle_lightest_first():
    assert [g[0] for g in ITA_GROUPS] == ["very light", "light", "intermediate", "tan", "brown", "dark"]
    assert ITA_GROUPS[0][2] == math.inf and ITA_GROUPS[-1][1] == -math.inf
    assert all(hi_group[1] == lo_group[2] for hi_group, lo_group in zip(ITA_GROUPS, ITA_GROUPS[1:]))


def test_arctan2_keeps_bluish_and_neutral_skin_on_its_lightness_side():
    white, black = np.full((40, 40, 3), 240, np.uint8), np.full((40, 40, 3), 90, np.uint8)   # b* ≈ 0
    none = np.zeros((40, 40), dtype=bool)
    assert ita_degrees(white, none) == pytest.approx(90, abs=1) and ita_group(ita_degrees(white, none)) == "very light"
    assert ita_degrees(black, none) == pytest.approx(-90, abs=1) and ita_group(ita_degrees(black, none)) == "dark"
    bluish = np.full((40, 40, 3), (200, 210, 245), np.uint8)
    assert ita_degrees(bluish, none) > 90
