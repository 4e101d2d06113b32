"""The noise-aware projection (discrepancy principle) and the LR noise estimate it stands on.

All on generated arrays (no real data): skin-like frames with smooth shading, a darker lesion disc and fine
correlated texture, made at HR and down-scaled with the projection's own bicubic, as uint8 frames are.
Layout: float32 1×3×h×w RGB in [0, 1], as :mod:`skinedge.runtime.pipeline.projection` takes them.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from skinedge.runtime.pipeline import noise, projection
from skinedge.runtime.pipeline.noise import NoiseLevel, estimate
from skinedge.runtime.pipeline.projection import Fidelity, down, keep_luma, project, shrink, up

SCALE = 4


def _blur(a: np.ndarray, passes: int) -> np.ndarray:
    """A cheap low-pass of an H×W array: ``passes`` 3×3 box filters (edges wrap; fine for texture)."""
    for _ in range(passes):
        a = sum(np.roll(np.roll(a, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return a


def skin_hr(h: int, w: int, seed: int, skin: float = 2.4, lesion: float = 8.0) -> np.ndarray:
    """A float32 1×3×h×w HR frame in [0, 1]: shaded skin, a lesion disc with a soft edge, correlated texture.

    ``skin``/``lesion``: the texture's standard deviation in grey levels at HR on the skin and in the lesion. The
    default skin's flattest LR blocks read ≈0.9 grey levels (Immerkær), like the real clean dermoscopy LRs (0.4 to
    1.7, mean 0.8); 4.8 is above all of them.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    shade = 20.0 * (xx - 0.5) + 12.0 * (yy - 0.5) ** 2
    cy, cx, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3)
    disc = 1.0 / (1.0 + np.exp((np.hypot(yy - cy, xx - cx) - r) * 60.0))
    tex = _blur(rng.normal(0.0, 1.0, (h, w)), 2)
    grey = shade + tex / tex.std() * (skin * (1 - disc) + lesion * disc)  # the pigment network: the lesion's own
    skin_rgb, lesion_rgb = np.array([205.0, 160.0, 140.0]), np.array([110.0, 70.0, 55.0])
    colour = skin_rgb[:, None, None] * (1 - disc) + lesion_rgb[:, None, None] * disc
    rgb = colour + grey * np.array([1.0, 0.9, 0.8])[:, None, None]
    return (np.clip(rgb, 0, 255) / 255.0).astype(np.float32)[None]


def to_uint8_levels(x: np.ndarray, sigma: float = 0.0, seed: int = 0) -> np.ndarray:
    """``x`` plus Gaussian noise of ``sigma`` grey levels per channel, rounded and clipped like a uint8 frame."""
    noisy = x * 255.0 + np.random.default_rng(seed).normal(0.0, sigma, x.shape) if sigma else x * 255.0
    return (np.clip(np.rint(noisy), 0, 255) / 255.0).astype(np.float32)


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """A 1×3×h×w frame through PIL's JPEG (4:2:0), as the degradation does."""
    buf = io.BytesIO()
    Image.fromarray(np.rint(x[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return np.ascontiguousarray(back.transpose(2, 0, 1)[None], np.float32) / np.float32(255)


def lr_of(hr: np.ndarray) -> np.ndarray:
    return down(hr, hr.shape[2] // SCALE, hr.shape[3] // SCALE)


def old_project(sr: np.ndarray, lr: np.ndarray, fidelity: Fidelity) -> np.ndarray:
    """Today's projection, written out: x ← x + up(LR − down(x)), ``iterations`` times, clipped."""
    _, _, height, width = sr.shape
    _, _, h, w = lr.shape
    x = sr.astype(np.float32)
    if fidelity.chroma == "camera":
        x = keep_luma(x, up(lr, height, width))
    for _ in range(fidelity.iterations):
        x = x + up(lr - down(x, h, w), height, width)
    return np.clip(x, 0.0, 1.0)


def high_freq(x: np.ndarray) -> float:
    """Mean |3×3 Immerkær mask| response of a 1×3×H×W array: its high-frequency energy."""
    r = x[0, :, :-2] - 2 * x[0, :, 1:-1] + x[0, :, 2:]
    return float(np.abs(r[:, :, :-2] - 2 * r[:, :, 1:-1] + r[:, :, 2:]).mean())


# ------------------------------------------------------------------------------------------------ the estimate
@pytest.mark.parametrize("skin", [0.0, 1.2, 2.4])
@pytest.mark.parametrize("sigma", [2.0, 3.0, 4.0])
def test_sigma_tracks_added_noise_on_smooth_and_textured_frames(sigma, skin):
    for seed in range(3):
        lr = to_uint8_levels(lr_of(skin_hr(480, 640, seed, skin)), sigma, seed)
        level = estimate(lr)
        assert abs(level.sigma - sigma) <= 1.0, (seed, level)
        assert level.blockiness < 0.3 and level.floor > 0.5 * noise.MEAN_ABS * sigma


@pytest.mark.parametrize("skin", [0.0, 1.2, 2.4])
@pytest.mark.parametrize("lesion", [8.0, 30.0])
def test_a_clean_frame_reads_no_noise_and_no_floor(skin, lesion):
    for seed in range(3):
        level = estimate(to_uint8_levels(lr_of(skin_hr(480, 640, seed, skin, lesion))))
        assert level.sigma < 0.5 and level.blockiness < 0.25 and level.floor == 0.0, (seed, level)
        assert level.grid > noise.JPEG_GRID, (seed, level)


def test_pure_noise_is_read_without_the_low_percentile_bias():
    rng = np.random.default_rng(7)
    for sigma in (1.0, 3.0, 6.0):
        flat = (0.5 + rng.normal(0.0, sigma / 255.0, (1, 3, 120, 160))).astype(np.float32)
        raw = float(np.nanpercentile(noise.block_sigmas(flat[0] * 255), noise.PERCENTILE)) * noise.PERCENTILE_BIAS
        assert raw == pytest.approx(sigma, rel=0.06)


def test_texture_and_edges_do_not_count_as_noise():
    """A strongly textured frame with a sharp lesion edge reads far below its texture's own Immerkær level."""
    hr = skin_hr(480, 640, 3, lesion=40.0)
    lr = to_uint8_levels(lr_of(hr), 2.0, 3)
    whole = noise.IMMERKAER * high_freq(lr * 255)  # Immerkær over the whole frame: texture and edges count
    level = estimate(lr)
    assert whole > 2.0 + 1.0 and abs(level.sigma - 2.0) <= 1.0


def test_clipped_blocks_do_not_hide_the_noise():
    """A black vignette (0, where noise is clipped away) is left out: the skin's noise is still read."""
    lr = lr_of(skin_hr(480, 640, 1))
    lr[:, :, :, :60] = 0.0  # the left 60 of 160 columns: clipped black
    level = estimate(to_uint8_levels(lr, 3.0, 1))
    assert abs(level.sigma - 3.0) <= 1.0


def test_jpeg_reads_as_blockiness_and_raises_the_floor():
    clean = to_uint8_levels(lr_of(skin_hr(480, 640, 2)))
    for quality, low in ((70, 0.6), (85, 0.3)):
        level = estimate(jpeg(clean, quality))
        assert level.blockiness > low and level.floor >= noise.BLOCK_GAIN * level.blockiness - 1e-6, (quality, level)
    assert estimate(jpeg(clean, 70)).blockiness > estimate(jpeg(clean, 90)).blockiness


def test_blockiness_of_a_crop_reads_the_frames_grid():
    """An ROI cut from a JPEG frame shows the 8×8 grid given its origin; off the grid, or on a clean crop, not."""
    clean = to_uint8_levels(lr_of(skin_hr(480, 640, 2)))
    compressed = jpeg(clean, 75)
    for dy, dx in ((3, 5), (7, 1)):
        crop = compressed[:, :, dy:dy + 80, dx:dx + 112]
        assert estimate(crop, origin=(dy, dx)).blockiness > 0.3, (dy, dx)
        assert estimate(crop).blockiness < 0.1, (dy, dx)  # the wrong grid
        assert estimate(clean[:, :, dy:dy + 80, dx:dx + 112], origin=(dy, dx)).blockiness < 0.1, (dy, dx)


def test_the_dct_grid_catches_jpeg_whose_steps_read_as_clean(monkeypatch):
    """JPEG 93 over noise on a textured frame: the steps read ~0.1 (floor ≈ 0.25, a clean frame's) but the DCT
    shows JPEG's quantization on the frame's grid, so the floor is a JPEG'd frame's. The same noisy frame without
    JPEG, and clean frames, read ≈1; an ROI reads the frame's grid given its origin."""
    noisy = to_uint8_levels(lr_of(skin_hr(384, 512, 4, 4.8, 30.0)), 3.0, 4)
    compressed = jpeg(noisy, 93)
    level = estimate(compressed)
    assert level.grid < noise.JPEG_GRID and level.floor == noise.JPEG_FLOOR, level
    assert estimate(noisy).grid > 0.9 and estimate(to_uint8_levels(lr_of(skin_hr(384, 512, 4)))).grid > 0.9
    dy, dx = 3, 5
    crop = jpeg(noisy, 85)[:, :, dy:dy + 72, dx:dx + 96]
    assert estimate(crop, origin=(dy, dx)).grid < noise.JPEG_GRID and estimate(crop).grid > noise.JPEG_GRID
    monkeypatch.setattr(noise, "JPEG_GRID", 0.0)  # the steps alone: this frame passes for clean
    assert estimate(compressed).floor <= 0.3


@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (7, 7), (9, 9), (8, 20), (17, 3)])
def test_tiny_frames_read_clean_and_do_not_fail(shape):
    rng = np.random.default_rng(0)
    level = estimate(rng.random((1, 3) + shape, dtype=np.float32))
    assert isinstance(level, NoiseLevel) and np.isfinite([level.sigma, level.blockiness, level.floor]).all()


# ------------------------------------------------------------------------------------------------ the projection
def _case(sigma: float, seed: int = 0):
    hr = skin_hr(240, 320, seed)
    lr = to_uint8_levels(lr_of(hr), sigma, seed)
    sr = np.clip(up(lr, 240, 320) + np.random.default_rng(seed + 1).normal(0, 0.03, hr.shape), 0, 1)
    return hr, lr, sr.astype(np.float32)


@pytest.mark.parametrize("fidelity", [Fidelity(noise="off"), Fidelity(3, "generator", noise="off"),
                                      Fidelity(1, "camera", noise="off"), Fidelity(5, noise="off")])
def test_noise_off_is_the_old_formula(fidelity):
    _, lr, sr = _case(3.0)
    assert fidelity.noise == "off"
    np.testing.assert_allclose(project(sr, lr, fidelity), old_project(sr, lr, fidelity), rtol=0, atol=2e-6)


@pytest.mark.parametrize("chroma", ["camera", "generator"])
def test_auto_on_a_clean_frame_is_the_old_projection(chroma):
    _, lr, sr = _case(0.0)
    assert estimate(lr).floor == 0.0
    auto, off = Fidelity(3, chroma, noise="auto"), Fidelity(3, chroma, noise="off")
    np.testing.assert_allclose(project(sr, lr, auto), old_project(sr, lr, off), rtol=0, atol=2e-6)
    np.testing.assert_array_equal(project(sr, lr, auto, level=NoiseLevel(0.0, 0.0, 0.0)), project(sr, lr, off))


def test_auto_leaves_the_noise_in_the_lr_alone():
    """Bicubic of a noisy LR, projected: off restores the LR's noise at full amplitude, auto does not."""
    hr = skin_hr(240, 320, 4)
    lr = to_uint8_levels(lr_of(hr), 4.0, 4)
    sr = up(lr, 240, 320)
    off = project(sr, lr, Fidelity(3, "generator", noise="off"))
    auto = project(sr, lr, Fidelity(3, "generator", noise="auto"))
    noise_of = lambda x: high_freq(down(x - hr, 60, 80))  # noqa: E731  (the error's fine grain at the LR's scale)
    assert noise_of(auto) < 0.6 * noise_of(off)
    assert np.abs(auto - hr).mean() < np.abs(off - hr).mean()


def test_the_discrepancy_stop_fits_down_to_the_floor_not_into_the_noise(monkeypatch):
    """A generator off by +10 % brightness on a noisy frame: auto takes most of the cast away but stops near the
    floor."""
    hr, lr, _ = _case(4.0, seed=5)
    sr = np.clip(up(lr, 240, 320) + 0.1, 0, 1).astype(np.float32)
    level = estimate(lr)
    floor = level.floor
    assert floor > 2.0
    calls = []
    real_down = projection.down
    monkeypatch.setattr(projection, "down", lambda x, h, w: calls.append(1) or real_down(x, h, w))
    auto = project(sr, lr, Fidelity(10, "generator", noise="auto"), level=level)
    steps = len(calls)
    off = project(sr, lr, Fidelity(10, "generator", noise="off"))
    res = lambda x: float(np.abs(lr - real_down(x, 60, 80)).mean() * 255)  # noqa: E731
    assert res(sr) > 20  # the cast: ≈ 25 grey levels
    assert steps < 10  # stopped early: the residual reached the floor
    # stopped near STOP floors, not fitted into the noise; the cast gone down to ≈ the soft threshold
    assert res(auto) <= (projection.STOP + 0.5) * floor and res(auto) > res(off)
    assert abs(float((auto - hr).mean())) * 255 < (projection.THRESHOLD + 0.2) * floor
    assert abs(float((auto - hr).mean())) * 255 < 0.5 * abs(float((sr - hr).mean())) * 255


def test_a_floor_above_the_residual_stops_before_the_first_step():
    _, lr, sr = _case(0.0)
    level = NoiseLevel(0.0, 0.0, 255.0)  # everything is noise
    for chroma in ("camera", "generator"):
        got = project(sr, lr, Fidelity(3, chroma, noise="auto"), level=level)
        want = project(sr, lr, Fidelity(0, chroma, noise="off")) if chroma == "camera" else sr
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("quality", [None, 80])
def test_auto_does_not_put_the_noise_back_into_a_denoised_input(quality):
    """A denoised (smoothed) input of a noisy (and JPEG'd) frame: off brings the noise back, auto keeps the input.

    Scored as the benchmark does: mean over frames of the luma PSNR change (``chroma="camera"`` takes the colour
    from the noisy frame in both).
    """
    luma = lambda x: np.tensordot(projection.LUMA, x[0], 1)  # noqa: E731
    err = {"input": [], "auto": [], "off": []}
    for seed in range(3):
        hr = skin_hr(240, 320, seed, lesion=12.0)
        lr = to_uint8_levels(lr_of(hr), 3.0, seed)
        lr = jpeg(lr, quality) if quality else lr
        smooth = up(down(up(lr, 120, 160), 60, 80), 240, 320)  # a blurred LR, enlarged
        for name, x in (("input", smooth), ("auto", project(smooth, lr, Fidelity(3, noise="auto"))),
                        ("off", project(smooth, lr, Fidelity(3, noise="off")))):
            err[name].append(float(np.square(luma(x) - luma(hr)).mean()))
    gain = {k: float(np.mean(10 * np.log10(np.array(err["input"]) / np.array(err[k])))) for k in ("auto", "off")}
    assert gain["auto"] >= -1e-3 and gain["off"] < -0.1, gain


def test_shrink_is_the_soft_threshold():
    r = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 2.0], np.float32)
    np.testing.assert_array_equal(shrink(r.copy(), 1.0), np.array([-2.0, 0.0, 0.0, 0.0, 0.0, 1.0], np.float32))


def test_fidelity_noise_is_checked_and_described():
    with pytest.raises(ValueError, match="noise"):
        Fidelity(noise="on")
    assert Fidelity().noise == "auto" and "noise floor" in Fidelity().describe()  # camera frames are never clean
    assert "noise floor" not in Fidelity(noise="off").describe()
    assert Fidelity(3, "camera", "frame") == Fidelity()  # the CLI's positional construction is unchanged


def test_an_sr_at_about_the_lrs_own_size_is_projected_fully():
    """The live view that keeps the camera's pixels: the generator saw the ROI reduced ÷4 and gave back about the
    camera's size. The camera's noisy frame is then the better estimate: auto projects as off does, one full step
    (exact at ×1, most of the way a few pixels over)."""
    hr = skin_hr(240, 320, 6)
    lr = to_uint8_levels(hr, 4.0, 6)  # the camera's frame, noisy
    guess = up(down(lr, 60, 80), 240, 320)  # what a generator makes of it reduced ÷4: smooth, off by more than noise
    assert estimate(lr).floor > 1.0
    for shape in ((240, 320), (244, 324)):  # exactly the camera's size, and a few pixels over (ROI/4 rounded up)
        sr = up(guess, *shape)
        auto = project(sr, lr, Fidelity(3, "generator", noise="auto"))
        off = project(sr, lr, Fidelity(3, "generator", noise="off"))
        np.testing.assert_array_equal(auto, off)
        err = lambda x: float(np.abs(down(x, 240, 320) - lr).mean())  # noqa: E731
        assert err(auto) < (0.01 if shape == (240, 320) else 0.5) * err(sr)
