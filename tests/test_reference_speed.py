"""The fast forms of the NumPy references (banded matrix products, in-place blending) against their definitions.

``resample_axis``, ``preprocess``, ``composite`` and ``project`` sum the taps of ``resample_taps`` as BLAS
products over bands (:func:`resample_bands`) instead of one gather per tap: the same weights, float32, in another
summation order. Held here to the per-tap sums (≤ a few float32 ulps, ≤ 1 LSB after rounding), and the
composite's ROI view to the full frame *to the bit*. Timings live in ``benchmarks/pixel_stages.py``, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from skinedge.runtime.pipeline.projection import Fidelity, keep_luma, project
from skinedge.runtime.pipeline.reference import (
    _round,
    bilinear_coords,
    blend,
    composite,
    preprocess,
    resample_axis,
    resample_bands,
    resample_matrix,
    resample_taps,
    sample_bilinear,
)


def _per_tap(x: np.ndarray, out_size: int, axis: int, kind: str = "cubic", offset: int = 0,
             total: int | None = None) -> np.ndarray:
    """The definition: Σ_k w·x[index], one gather per tap, taps in order (float32)."""
    index, weight = resample_taps(x.shape[axis], total or out_size, kind)
    index, weight = index[offset:offset + out_size], weight[offset:offset + out_size]
    shape = [1] * x.ndim
    shape[axis] = out_size
    out = np.zeros(x.shape[:axis] + (out_size,) + x.shape[axis + 1:], np.float32)
    for k in range(index.shape[1]):
        out += weight[:, k].reshape(shape) * np.take(x, index[:, k], axis=axis)
    return out


@pytest.mark.parametrize("kind", ["cubic", "triangle"])
@pytest.mark.parametrize("n, m", [(1, 4), (7, 28), (70, 280), (280, 70), (480, 256), (33, 33), (5, 3), (200, 999)])
def test_resample_axis_is_the_sum_of_its_taps(kind, n, m):
    rng = np.random.default_rng(n * m)
    for axis, shape in ((0, (n, 5, 3)), (1, (2, n, 3)), (2, (1, 3, n, 4)), (3, (1, 3, 6, n))):
        x = rng.random(shape, dtype=np.float32) * 255
        got = resample_axis(x, m, axis, kind)
        assert got.dtype == np.float32 and got.shape == _per_tap(x, m, axis, kind).shape
        np.testing.assert_allclose(got, _per_tap(x, m, axis, kind), rtol=0, atol=2e-4)
        total = m + 9  # a window of a larger resize
        np.testing.assert_allclose(resample_axis(x, m, axis, kind, 4, total), _per_tap(x, m, axis, kind, 4, total),
                                   rtol=0, atol=2e-4)


@pytest.mark.parametrize("n, m, kind", [(37, 148, "cubic"), (148, 37, "cubic"), (640, 256, "triangle"), (9, 9, "cubic"),
                                        (1080, 7680, "cubic"), (3, 1, "triangle")])
def test_bands_tile_the_output_and_hold_the_dense_matrix(n, m, kind):
    bands = resample_bands(n, m, kind)
    assert resample_bands(n, m, kind) is bands  # cached
    index, weight = resample_taps(n, m, kind)
    dense = np.zeros((m, n), np.float32)
    np.add.at(dense, (np.repeat(np.arange(m), index.shape[1]), index.ravel()), weight.ravel())
    assembled = np.zeros_like(dense)
    edge = 0
    for o0, o1, i0, i1, w in bands:
        assert o0 == edge and o1 > o0 and 0 <= i0 < i1 <= n and w.shape == (o1 - o0, i1 - i0)
        assert not w.flags.writeable
        assembled[o0:o1, i0:i1] = w
        edge = o1
    assert edge == m
    assert np.array_equal(assembled, dense)  # every nonzero weight lies inside its band
    if kind == "triangle":
        assert np.array_equal(resample_matrix(n, m), dense) and not resample_matrix(n, m).flags.writeable


@pytest.mark.parametrize("shape, size", [((480, 640), 256), ((37, 53), 32), ((20, 30), 64), ((11, 11), 11)])
def test_preprocess_is_the_dense_matrix_formula(shape, size):
    frame = np.random.default_rng(size).integers(0, 256, shape + (3,), np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    wy, wx = resample_matrix(shape[0], size), resample_matrix(shape[1], size)
    rgb = frame[:, :, ::-1].astype(np.float32)
    expected = np.stack([wy @ rgb[:, :, c] @ wx.T for c in range(3)])
    expected = (expected / 255.0 - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None,
                                                                                                                None]
    got = preprocess(frame, size, mean, std)
    assert got.shape == (1, 3, size, size) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-5)


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_composite_view_is_the_full_frame_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    h, w, scale = int(rng.integers(17, 90)), int(rng.integers(17, 90)), int(rng.integers(2, 5))
    frame, soft = _frame(h, w, seed), rng.random((24, 24), dtype=np.float32)
    rw, rh = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
    roi = (int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)), rw, rh)
    sr = rng.random((1, 3, rh * scale, rw * scale), dtype=np.float32)
    for with_sr in (sr, None):
        full = composite(frame, with_sr, soft, roi, scale, (0, 0, w * scale, h * scale))
        for _ in range(4):  # windows that cut bands anywhere
            x0, y0 = int(rng.integers(0, w * scale)), int(rng.integers(0, h * scale))
            rect = (x0, y0, int(rng.integers(1, w * scale - x0 + 1)), int(rng.integers(1, h * scale - y0 + 1)))
            view = composite(frame, with_sr, soft, roi, scale, rect)
            assert np.array_equal(view, full[y0:y0 + rect[3], x0:x0 + rect[2]]), rect


def test_composite_is_the_blend_of_the_per_tap_background():
    frame, scale, roi = _frame(45, 61, 3), 4, (9, 7, 30, 21)
    rng = np.random.default_rng(3)
    soft, sr = rng.random((32, 32), dtype=np.float32), rng.random((1, 3, 21 * 4, 30 * 4), dtype=np.float32)
    rect = (20, 16, 150, 90)  # straddles the ROI's edge
    X0, Y0, OW, OH = rect
    bg = _per_tap(_per_tap(frame.astype(np.float32), OH, 0, "cubic", Y0, 45 * 4), OW, 1, "cubic", X0, 61 * 4)
    expected = _round(bg)
    top, left, bottom, right = 7 * 4 - Y0, 9 * 4 - X0, OH, 39 * 4 - X0
    alpha = sample_bilinear(soft, bilinear_coords(bottom - top, 32, Y0 + top, 32 / (45 * 4)),
                            bilinear_coords(right - left, 32, X0 + left, 32 / (61 * 4)))
    lesion = sr[0, ::-1, :bottom - top, :right - left].transpose(1, 2, 0) * 255.0
    expected[top:bottom, left:right] = blend(lesion, bg[top:bottom, left:right], alpha)
    got = composite(frame, sr, soft, roi, scale, rect)
    assert got.shape == expected.shape and got.dtype == np.uint8 and got.flags.c_contiguous
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_composite_refuses_a_window_outside_the_upscaled_frame():
    frame = _frame(20, 30, 0)
    with pytest.raises(ValueError, match="out_rect"):
        composite(frame, None, np.zeros((8, 8), np.float32), (0, 0, 1, 1), 4, (100, 0, 30, 10))


def _per_tap_project(sr, lr, fidelity):
    _, _, height, width = sr.shape
    _, _, h, w = lr.shape
    up = lambda a: _per_tap(_per_tap(a, height, 2), width, 3)  # noqa: E731
    down = lambda a: _per_tap(_per_tap(a, h, 2), w, 3)  # noqa: E731
    x = sr.astype(np.float32)
    if fidelity.chroma == "camera":
        x = keep_luma(x, up(lr))
    for _ in range(fidelity.iterations):
        x = x + up(lr - down(x))
    return np.clip(x, 0.0, 1.0)


@pytest.mark.parametrize("fidelity", [Fidelity(noise="off"), Fidelity(3, "generator", noise="off"),
                                      Fidelity(0, "camera", noise="off"), Fidelity(1, "generator", noise="off")])
def test_project_is_the_per_tap_projection_and_leaves_its_inputs_alone(fidelity):
    rng = np.random.default_rng(fidelity.iterations)
    lr = rng.random((1, 3, 23, 31), dtype=np.float32)
    sr = np.clip(np.repeat(np.repeat(lr, 4, 2), 4, 3) + rng.normal(0, 0.1, (1, 3, 92, 124)), 0, 1).astype(np.float32)
    sr_before, lr_before = sr.copy(), lr.copy()
    got = project(sr, lr, fidelity)
    assert np.array_equal(sr, sr_before) and np.array_equal(lr, lr_before)
    assert got is not sr and got.dtype == np.float32 and got.shape == sr.shape
    np.testing.assert_allclose(got, _per_tap_project(sr, lr, fidelity), rtol=0, atol=1e-5)
