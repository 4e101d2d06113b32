"""The three CUDA kernels (``skinedge/runtime/gpu/cu/*.cu``) and their NumPy references.

Four layers, each skipping cleanly where its tool is missing:

1. the references themselves (NumPy, always): hand-checked values, PIL agreement, properties;
2. the kernels run on the CPU (a C++ compiler builds each ``.cu`` with a tiny CUDA shim and loops over the
   grid; ``-ffp-contract=off``, like NVRTC's ``--fmad=false``): same indexing and float32 operation order as
   on the GPU, held to the GPU tolerances — this runs the kernel code on every machine with g++;
3. NVRTC compilation to PTX and the disk cache (needs ``cuda.bindings.nvrtc``, no GPU);
4. GPU parity (``-m gpu``; needs a GPU): the same cases as 2 through :class:`Kernels` on a stream.

Tolerances: preprocess ≤ 1e-4 abs, masked_roi exact (≤ 1e-6), composite ≤ 1 LSB.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from fake_cuda import FakeDriver as _FakeDriver
from fake_cuda import HostRunner as _HostRunner
from fake_cuda import install as install_fake_driver

from skinedge.runtime.gpu import device as cu
from skinedge.runtime.gpu import kernels as ck
from skinedge.runtime.gpu import ptx as nv
from skinedge.runtime.pipeline.projection import Fidelity, project, residual
from skinedge.runtime.pipeline.reference import (
    composite,
    masked_roi,
    preprocess,
    resample_matrix,
    resample_taps,
    roi_lesion,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _blob_mask(s: int, seed: int = 0) -> np.ndarray:
    """A uint8 0/1 S×S mask: a random ellipse plus speckle (edges in every direction)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:s, :s]
    cy, cx, ry, rx = rng.uniform(0.3 * s, 0.7 * s, 2).tolist() + rng.uniform(0.15 * s, 0.35 * s, 2).tolist()
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    mask ^= rng.random((s, s)) < 0.05
    return mask.astype(np.uint8)


def _soft(s: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((s, s), dtype=np.float32)


def _sr(roi, scale: int, seed: int = 0) -> np.ndarray:
    _, _, w, h = roi
    return np.random.default_rng(seed).random((1, 3, h * scale, w * scale), dtype=np.float32)


def _bgr_to_pil_rgb_resize(frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    out = np.asarray(Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])).resize(size_wh, Image.BILINEAR))
    return out[:, :, ::-1]


# ====================================================================== 1. the references (NumPy)

@pytest.mark.parametrize("in_size,out_size", [(1, 1), (2, 4), (4, 2), (5, 5), (37, 16), (1080, 256), (1920, 256),
                                              (7, 100), (256, 1080), (3, 2)])
def test_resample_taps_rows_sum_to_one_and_stay_in_range(in_size, out_size):
    index, weight = resample_taps(in_size, out_size)
    assert index.dtype == np.int32 and weight.dtype == np.float32 and index.shape == weight.shape
    assert index.shape[0] == out_size
    assert index.min() >= 0 and index.max() < in_size and weight.min() >= 0.0
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-6)


def test_identity_resize_is_exact():
    for n in (1, 9, 13):
        index, weight = resample_taps(n, n)
        assert np.array_equal(resample_matrix(n, n), np.eye(n, dtype=np.float32))
        assert set(np.unique(weight).tolist()) <= {0.0, 1.0}
    square = _frame(11, 11, seed=4)
    out = preprocess(square, 11, (0, 0, 0), (1, 1, 1))
    assert np.array_equal(out[0], square[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_preprocess_2x2_to_4x4_by_hand():
    # 1-D weights 2→4 (centres 0.25, 0.75, 1.25, 1.75; outside taps dropped): [1,0] [.75,.25] [.25,.75] [0,1]
    p = np.array([[0, 100], [200, 40]], np.float32)
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[:, :, 2] = p  # R
    frame[:, :, 1] = p / 2  # G
    frame[:, :, 0] = 7  # B
    expected_r = np.array([[0, 25, 75, 100],
                           [50, 58.75, 76.25, 85],
                           [150, 126.25, 78.75, 55],
                           [200, 160, 80, 40]], np.float32)
    out = preprocess(frame, 4, (0, 0, 0), (1, 1, 1))[0] * 255
    assert out.shape == (3, 4, 4)
    np.testing.assert_allclose(out[0], expected_r, atol=1e-3)
    np.testing.assert_allclose(out[1], expected_r / 2, atol=1e-3)
    np.testing.assert_allclose(out[2], 7, atol=1e-3)
    normed = preprocess(frame, 4, MEAN, STD)[0]
    np.testing.assert_allclose(normed[0], (expected_r / 255 - MEAN[0]) / STD[0], atol=1e-5)


def test_preprocess_4x4_to_2x2_by_hand():
    # 1-D weights 4→2 (support 2, tap −1 and 4 dropped, renormalised as PIL): [3,3,1,0]/7 and [0,1,3,3]/7
    np.testing.assert_allclose(resample_matrix(4, 2), np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7, atol=1e-7)
    ramp = (10 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(np.uint8)  # v = 10y + x
    frame = np.repeat(ramp[:, :, None], 3, axis=2)
    out = preprocess(frame, 2, (0, 0, 0), (1, 1, 1))[0, 0] * 255
    np.testing.assert_allclose(out, np.array([[55, 66], [165, 176]]) / 7, atol=1e-4)


@pytest.mark.parametrize("shape,size", [((61, 97), (32, 32)), ((5, 7), (12, 16)), ((270, 480), (256, 256)),
                                        ((37, 53), (53, 37))])
def test_preprocess_resize_equals_pil_bilinear(shape, size):
    from PIL import Image

    frame = _frame(*shape, seed=1)
    ours = np.stack([resample_matrix(shape[0], size[0]) @ frame[:, :, c].astype(np.float32)
                     @ resample_matrix(shape[1], size[1]).T for c in (2, 1, 0)])
    for c, channel in enumerate((2, 1, 0)):
        pil = np.asarray(Image.fromarray(frame[:, :, channel].astype(np.float32), mode="F")
                         .resize((size[1], size[0]), Image.BILINEAR))
        np.testing.assert_allclose(ours[c], pil, atol=2e-3)
    if size[0] == size[1]:
        out = preprocess(frame, size[0], (0, 0, 0), (1, 1, 1))[0] * 255
        np.testing.assert_allclose(out, ours, atol=2e-3)


def test_masked_roi_all_zero_and_all_one_masks():
    frame = _frame(37, 53)
    roi = (5, 9, 13, 7)
    out = masked_roi(frame, np.zeros((16, 16), np.uint8), roi, "black")
    assert out.shape == (1, 3, 7, 13) and out.dtype == np.float32 and not out.any()
    out = masked_roi(frame, np.ones((16, 16), np.uint8), roi, "black")
    crop = frame[9:16, 5:18, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    assert np.array_equal(out[0], crop)
    # the default keeps the real surround whatever the mask: the generator never sees a black one
    assert np.array_equal(masked_roi(frame, np.zeros((16, 16), np.uint8), roi)[0], crop)


def test_masked_roi_at_frame_resolution_is_a_plain_mask_multiply():
    frame, mask = _frame(24, 24, seed=2), _blob_mask(24, seed=2)  # S = H = W: sampling lands on mask pixels
    for roi in [(0, 0, 24, 24), (0, 0, 5, 3), (19, 21, 5, 3), (0, 17, 24, 7), (11, 0, 13, 24)]:
        x0, y0, w, h = roi
        out = masked_roi(frame, mask, roi, "black")[0]
        crop = frame[y0:y0 + h, x0:x0 + w, ::-1].astype(np.float32) / np.float32(255)
        expected = (crop * mask[y0:y0 + h, x0:x0 + w, None]).transpose(2, 0, 1)
        assert np.array_equal(out, expected), roi


@pytest.mark.parametrize("roi", [(0, 0, 13, 7), (40, 0, 13, 7), (0, 30, 13, 7), (40, 30, 13, 7), (0, 0, 53, 37)])
def test_masked_roi_odd_sizes_and_every_border(roi):
    frame, mask = _frame(37, 53, seed=3), _blob_mask(20, seed=3)
    out = masked_roi(frame, mask, roi, "black")
    x0, y0, w, h = roi
    crop = frame[y0:y0 + h, x0:x0 + w, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    assert out.shape == (1, 3, h, w)
    kept = (out[0] != 0).any(axis=0)
    assert kept.any() and not kept.all()
    assert np.array_equal(out[0], np.where(kept, crop, 0))  # a pixel is kept whole, untouched, or zeroed


def test_composite_without_sr_is_pil_bicubic_upscale():
    from PIL import Image

    for shape, scale in [((37, 53), 4), ((16, 16), 2), ((9, 31), 3)]:
        frame = _frame(*shape, seed=5)
        h, w = shape
        out = composite(frame, None, _soft(8), (0, 0, 1, 1), scale, (0, 0, w * scale, h * scale))
        assert out.shape == (h * scale, w * scale, 3) and out.dtype == np.uint8
        for c in range(3):  # PIL's float ("F") bicubic: the same kernel without 8-bit rounding between passes
            pil = np.asarray(Image.fromarray(frame[:, :, c].astype(np.float32), "F").resize(
                (w * scale, h * scale), Image.BICUBIC))
            expected = np.clip(np.floor(pil + 0.5), 0, 255)
            assert np.abs(out[:, :, c].astype(int) - expected).max() <= 1, (shape, scale, c)


def test_composite_with_zero_soft_mask_is_the_background():
    frame, roi, scale = _frame(37, 53, seed=6), (7, 11, 13, 7), 4
    background = composite(frame, None, _soft(16), roi, scale, (0, 0, 53 * 4, 37 * 4))
    sr = _sr(roi, scale)
    full = composite(frame, sr, np.zeros((16, 16), np.float32), roi, scale, (0, 0, 53 * 4, 37 * 4))
    assert np.array_equal(full, background)
    view = composite(frame, sr, np.zeros((16, 16), np.float32), roi, scale, (28, 44, 52, 28))
    assert np.array_equal(view, background[44:72, 28:80])


def test_composite_with_full_soft_mask_is_the_sr_inside_the_roi():
    frame, roi, scale = _frame(37, 53, seed=7), (7, 11, 13, 7), 4
    sr = _sr(roi, scale, seed=7)
    view = composite(frame, sr, np.ones((16, 16), np.float32), roi, scale, (28, 44, 52, 28))
    expected = np.clip(np.floor(sr[0].transpose(1, 2, 0)[:, :, ::-1] * np.float32(255) + np.float32(0.5)), 0, 255)
    assert np.array_equal(view, expected.astype(np.uint8))


@pytest.mark.parametrize("roi", [(7, 11, 13, 7), (0, 0, 13, 7), (40, 30, 13, 7), (0, 30, 53, 7), (0, 0, 53, 37)])
def test_full_frame_composite_contains_the_roi_composite(roi):
    frame, scale = _frame(37, 53, seed=8), 4
    soft, sr = _soft(20, seed=8), _sr(roi, scale, seed=8)
    x0, y0, w, h = roi
    full = composite(frame, sr, soft, roi, scale, (0, 0, 53 * scale, 37 * scale))
    view = composite(frame, sr, soft, roi, scale, (x0 * scale, y0 * scale, w * scale, h * scale))
    assert view.shape == (h * scale, w * scale, 3)
    inner = full[y0 * scale:(y0 + h) * scale, x0 * scale:(x0 + w) * scale]
    assert np.array_equal(inner, view)
    background = composite(frame, None, soft, roi, scale, (0, 0, 53 * scale, 37 * scale))
    outside = np.ones(full.shape[:2], bool)
    outside[y0 * scale:(y0 + h) * scale, x0 * scale:(x0 + w) * scale] = False
    assert np.array_equal(full[outside], background[outside])


# ====================================================================== shared parity cases (host emulation and GPU)

PREPROCESS_CASES = [((1080, 1920), 256, 0), ((37, 53), 32, 0), ((61, 97), (48, 64), 5), ((20, 30), 64, 0),
                    ((256, 256), 256, 3), ((7, 5), (3, 2), 1)]
MASKED_CASES = [((37, 53), 20, (5, 9, 13, 7)), ((37, 53), 20, (0, 0, 13, 7)), ((37, 53), 20, (40, 30, 13, 7)),
                ((37, 53), 20, (0, 0, 53, 37)), ((1080, 1920), 256, (900, 400, 128, 128)),
                ((1080, 1920), 256, (0, 952, 333, 128)), ((24, 24), 24, (3, 4, 21, 20))]
COMPOSITE_CASES = [  # frame shape, S, roi, scale, view ("roi", "full" or an explicit out_rect), sr?
    ((37, 53), 20, (7, 11, 13, 7), 4, "roi", True),
    ((37, 53), 20, (7, 11, 13, 7), 4, "full", True),
    ((37, 53), 20, (0, 0, 13, 7), 4, "roi", True),
    ((37, 53), 20, (40, 30, 13, 7), 4, "full", True),
    ((37, 53), 20, (7, 11, 13, 7), 4, "full", False),
    ((37, 53), 20, (7, 11, 13, 7), 4, (20, 30, 90, 50), True),  # straddles the ROI edge
    ((29, 31), 16, (3, 5, 9, 11), 3, "full", True),
    ((29, 31), 16, (3, 5, 9, 11), 2, "roi", True),
    ((270, 480), 256, (100, 60, 64, 48), 4, "full", True),
    ((1080, 1920), 256, (900, 400, 128, 128), 4, "roi", True),
]


def _case_id(case) -> str:
    return re.sub(r"[ ()]", "", str(case)).replace(",", "-")


def _out_rect(shape, roi, scale, view):
    h, w = shape
    x0, y0, rw, rh = roi
    if view == "roi":
        return (x0 * scale, y0 * scale, rw * scale, rh * scale)
    if view == "full":
        return (0, 0, w * scale, h * scale)
    return view


def _check_preprocess(runner, shape, size, pad):
    frame = _frame(*shape, seed=sum(shape))
    got = runner.preprocess(frame, size, MEAN, STD, pad)
    if isinstance(size, int):
        expected = preprocess(frame, size, MEAN, STD)
    else:  # the reference is square-only: build the non-square one from the same taps
        wy, wx = resample_matrix(shape[0], size[0]), resample_matrix(shape[1], size[1])
        rgb = frame[:, :, ::-1].astype(np.float32)
        out = np.stack([wy @ rgb[:, :, c] @ wx.T for c in range(3)]) / np.float32(255)
        mean, std = np.asarray(MEAN, np.float32)[:, None, None], np.asarray(STD, np.float32)[:, None, None]
        expected = ((out - mean) / std)[None]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def _check_masked_roi(runner, shape, s, roi):
    frame, mask = _frame(*shape, seed=s), _blob_mask(s, seed=s)
    for surround in ("frame", "black"):
        got = runner.masked_roi(frame, mask, roi, surround)
        expected = masked_roi(frame, mask, roi, surround)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-6, f"{int((got != expected).any(axis=1).sum())} pixels differ"


PROJECTION_CASES = [  # LR ROI (h, w), scale, iterations, chroma
    ((7, 13), 4, 3, "camera"), ((7, 13), 4, 1, "generator"), ((20, 17), 4, 0, "camera"),
    ((33, 40), 4, 2, "camera"), ((9, 11), 2, 3, "generator"), ((64, 48), 4, 3, "camera"),
]


def _check_projection(runner, lr_shape, scale, iterations, chroma):
    """The projection kernels against :func:`project` (≤ 1 LSB of the uint8 picture) and the residual."""
    h, w = lr_shape
    rng = np.random.default_rng(h * w + scale)
    lr = rng.random((1, 3, h, w), np.float32)
    sr = np.clip(np.repeat(np.repeat(lr, scale, 2), scale, 3) + rng.normal(0, 0.1, (1, 3, h * scale, w * scale)),
                 0, 1).astype(np.float32)
    frame_shape, roi, soft = (h + 10, w + 6), (3, 5, w, h), _soft(16, seed=h)
    got, sums = runner.project(sr, lr, scale, iterations, chroma, (soft, frame_shape, roi))
    expected = project(sr, lr, Fidelity(iterations, chroma, noise="off"))  # the kernel projects fully
    assert got.shape == expected.shape
    diff = np.abs(got.reshape(expected.shape) - expected) * 255
    assert diff.max() <= 1.0, f"max diff {diff.max():.3f} LSB"
    lesion = roi_lesion(soft, frame_shape, roi)
    assert sums[1] == lesion.sum()
    if lesion.any():
        assert abs(sums[0] / sums[1] - residual(sr, lr, lesion)) < 1e-3


def _check_composite(runner, shape, s, roi, scale, view, with_sr):
    frame, soft = _frame(*shape, seed=scale), _soft(s, seed=s)
    sr = _sr(roi, scale, seed=s) if with_sr else None
    out_rect = _out_rect(shape, roi, scale, view)
    got = runner.composite(frame, sr, soft, roi, scale, out_rect)
    expected = composite(frame, sr, soft, roi, scale, out_rect)
    assert got.shape == expected.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1, f"max diff {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert (diff > 0).mean() < 0.01  # off-by-one only at rounding ties


# ====================================================================== 2. the kernels on the CPU (C++ shim)

@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++: the kernels cannot be run on the CPU here")
    return _HostRunner(tmp_path_factory.mktemp("host_kernels"))


@pytest.mark.parametrize("shape,size,pad", PREPROCESS_CASES, ids=_case_id)
def test_host_preprocess_matches_reference(host, shape, size, pad):
    _check_preprocess(host, shape, size, pad)


@pytest.mark.parametrize("shape,s,roi", MASKED_CASES, ids=_case_id)
def test_host_masked_roi_matches_reference_exactly(host, shape, s, roi):
    _check_masked_roi(host, shape, s, roi)


@pytest.mark.parametrize("shape,s,roi,scale,view,with_sr", COMPOSITE_CASES, ids=_case_id)
def test_host_composite_matches_reference(host, shape, s, roi, scale, view, with_sr):
    _check_composite(host, shape, s, roi, scale, view, with_sr)


@pytest.mark.parametrize("lr_shape,scale,iterations,chroma", PROJECTION_CASES, ids=_case_id)
def test_host_projection_matches_reference(host, lr_shape, scale, iterations, chroma):
    _check_projection(host, lr_shape, scale, iterations, chroma)


@pytest.fixture()
def fake_gpu(host, monkeypatch):
    """:class:`Kernels` and the GPU tests' runner on a fake driver that runs the kernels on the CPU."""
    fake = _FakeDriver(host.fn)
    install_fake_driver(monkeypatch, fake)
    kernels = ck.Kernels(stream=7, arch="sm_87")
    runner = _GpuRunner(kernels, fake.CUstream(7))
    yield runner, fake
    runner.free()
    kernels.close()


def test_kernels_class_end_to_end_on_a_fake_driver(fake_gpu):
    runner, fake = fake_gpu
    assert runner.k.arch == "compute_87"
    for case in PREPROCESS_CASES[1:4]:
        _check_preprocess(runner, *case)
    for case in MASKED_CASES[:4]:
        _check_masked_roi(runner, *case)
    for case in COMPOSITE_CASES[:8]:
        _check_composite(runner, *case)
    assert {stream for _, stream in fake.launches} == {7}  # every launch on the caller's stream
    for case in PROJECTION_CASES[:2]:
        _check_projection(runner, *case)
    assert {name for name, _ in fake.launches} == {f for fs in nv.KERNEL_FUNCTIONS.values() for f in fs}


def test_kernels_tap_tables_uploaded_once_and_freed(fake_gpu):
    runner, fake = fake_gpu
    kernels = runner.k
    kernels.prepare(61, 97, (48, 64))
    tables = len(kernels._allocations)
    assert tables == 4  # index + weight, per axis
    frame = _frame(61, 97)
    first = runner.preprocess(frame, (48, 64), MEAN, STD)
    second = runner.preprocess(frame, (48, 64), MEAN, STD, pad=3)
    assert len(kernels._allocations) == tables and np.array_equal(first, second)
    owned = list(kernels._allocations)
    kernels.close()
    modules = sorted(",".join(functions) for functions in nv.KERNEL_FUNCTIONS.values())
    assert set(owned) <= set(fake.freed) and sorted(fake.unloaded) == modules
    kernels.close()  # idempotent


def test_launch_arguments_are_checked():
    with pytest.raises(ValueError, match="ROI"):
        ck.masked_roi_args(0, 37, 53, 0, 20, (45, 0, 13, 7), 0)
    with pytest.raises(ValueError, match="ROI"):
        ck.composite_args(0, 37, 53, 1, 1, 20, (0, 0, 0, 7), 4, (0, 0, 4, 4), 0)
    with pytest.raises(ValueError, match="out_rect"):
        ck.composite_args(0, 37, 53, None, None, 20, (0, 0, 1, 1), 4, (0, 0, 53 * 4 + 1, 4), 0)
    grid, args = ck.composite_args(0, 37, 53, None, None, 20, (0, 0, 0, 0), 4, (0, 0, 212, 148), 0)
    assert grid == (7, 19) and args[4] == 0 and args[5] == 0  # no SR: null pointers, ROI unused
    assert [len(ck.SIGNATURES[n]) for n in ("preprocess", "masked_roi", "composite")] == [
        len(ck.preprocess_args(lambda i, o: (0, 0, 3), 0, 4, 4, 0, 2, MEAN, STD)[1]),
        len(ck.masked_roi_args(0, 4, 4, 0, 4, (0, 0, 1, 1), 0)[1]), len(args)]
    with pytest.raises(ValueError, match="surround"):
        ck.masked_roi_args(0, 4, 4, 0, 4, (0, 0, 1, 1), 0, surround="grey")
    launched = []
    ck.project_launches(lambda name, grid, args: launched.append((name, len(args))), 1, 2, 5, 7, 4, 2, "camera",
                        3, 4, (5, 16, 40, 50, 0, 0, 6))
    assert [n for n, _ in launched] == ["resample_axis"] * 2 + ["lesion_residual", "keep_luma"] + ["resample_axis"] * 8
    assert all(len(ck.SIGNATURES[n]) == k for n, k in launched)


def test_module_imports_no_cuda_at_import_time():
    code = ("import sys; import skinedge.runtime.gpu.kernels, skinedge.runtime.gpu.device as m; "
            "assert not any(k.startswith('cuda') for k in sys.modules), sorted(k for k in sys.modules if 'cuda' in k); "
            "assert isinstance(m.gpu_available(), bool); print('ok')")
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_kernel_sources_hold_their_extern_c_kernels():
    sources = nv.kernel_sources()
    assert sorted(sources) == sorted(nv.KERNEL_NAMES)
    for name, text in sources.items():
        assert re.findall(r'extern "C" __global__ void (\w+)\(', text) == list(nv.KERNEL_FUNCTIONS[name])


# ====================================================================== 3. NVRTC → PTX, disk cache (no GPU)

def _nvrtc():
    try:
        from cuda.bindings import nvrtc  # noqa: F401
    except Exception as exc:  # not installed, or the NVRTC library is missing
        pytest.skip(f"cuda.bindings.nvrtc not importable: {exc}")
    return nv.nvrtc_version(), nv.supported_archs()


_PTX_TYPES = {np.uint64: ".u64", np.int32: ".u32", np.float32: ".f32"}


@pytest.mark.parametrize("arch", [72, 75, 80, 87, 90])
def test_every_kernel_compiles_to_ptx(arch):
    version, supported = _nvrtc()
    if arch not in supported:
        pytest.skip(f"NVRTC {version[0]}.{version[1]} does not support compute_{arch} (supports {supported})")
    for source_name, source in nv.kernel_sources().items():
        ptx = nv.compile_ptx(source, source_name, f"compute_{arch}").decode()
        assert f".target sm_{arch}" in ptx
        for name in nv.KERNEL_FUNCTIONS[source_name]:
            entry = re.search(rf"\.entry {name}\((.*?)\)", ptx, re.S)
            assert entry, f"no .entry {name} in the PTX"
            types = re.findall(r"\.param \.(\w+)", entry.group(1))
            assert ["." + t for t in types] == [_PTX_TYPES[t] for t in ck.SIGNATURES[name]], name
        assert "fma.rn.f32" not in ptx and "fma.rn.f64" not in ptx  # --fmad=false: NumPy's rounding
        assert ".ftz" not in ptx and "approx" not in ptx


def test_compile_error_carries_the_nvrtc_log():
    _nvrtc()
    with pytest.raises(cu.CudaError, match="undefined_thing"):
        nv.compile_ptx('extern "C" __global__ void k() { undefined_thing = 1; }', "broken", 87)
    with pytest.raises(ValueError):
        nv.normalize_arch("ampere")
    assert nv.normalize_arch(87) == nv.normalize_arch("sm_87") == nv.normalize_arch("compute_87") == "compute_87"


def test_disk_cache_returns_the_same_ptx_and_one_file_per_source_and_arch(tmp_path, monkeypatch):
    _, supported = _nvrtc()
    archs = [a for a in (80, 87) if a in supported]
    calls = []
    real = nv.compile_ptx
    monkeypatch.setattr(nv, "compile_ptx", lambda *a: calls.append(a) or real(*a))
    first = {(n, a): nv.cached_ptx(n, a, tmp_path) for n in nv.KERNEL_NAMES for a in archs}
    assert len(calls) == len(first)
    again = {(n, a): nv.cached_ptx(n, f"sm_{a}", tmp_path) for n in nv.KERNEL_NAMES for a in archs}
    assert again == first and len(calls) == len(first)  # served from disk
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == len(first) and all(f.endswith(".ptx") for f in files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    sources = nv.kernel_sources()
    for (name, arch), ptx in first.items():
        key = nv.cache_key(sources[name], arch)
        assert (tmp_path / f"{name}.compute_{arch}.{key}.ptx").read_bytes() == ptx
    # the key follows the source, the arch and the NVRTC version
    src = sources["composite"]
    keys = {nv.cache_key(src, 87), nv.cache_key(src + " ", 87), nv.cache_key(src, 80), nv.cache_key(src, 87, (12, 6))}
    assert len(keys) == 4


def test_disk_cache_default_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    _, supported = _nvrtc()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert nv.default_cache_dir() == tmp_path / "skinedge" / "ptx"
    nv.cached_ptx("masked_roi", max(supported))
    assert len(list((tmp_path / "skinedge" / "ptx").glob("masked_roi.*.ptx"))) == 1
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert nv.default_cache_dir().parts[-3:] == (".cache", "skinedge", "ptx")


def test_unwritable_cache_still_returns_ptx(tmp_path, caplog):
    _, supported = _nvrtc()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    ptx = nv.cached_ptx("preprocess", max(supported), blocker / "ptx")
    assert b".entry preprocess" in ptx and "PTX cache not written" in caplog.text


# ====================================================================== 4. GPU parity (cuda.bindings driver API)

class _GpuRunner:
    """Allocates with cuMemAlloc, copies with cuMemcpyHtoD/DtoH, launches through :class:`Kernels`."""

    def __init__(self, kernels, stream):
        self.k, self.stream, self.buffers = kernels, stream, []

    def _check(self, result, what):
        return cu.check(result, what)

    def alloc(self, nbytes: int) -> int:
        from cuda.bindings import driver

        ptr = self._check(driver.cuMemAlloc(max(int(nbytes), 1)), "cuMemAlloc")
        self.buffers.append(ptr)
        return int(ptr)

    def upload(self, array: np.ndarray) -> int:
        from cuda.bindings import driver

        array = np.ascontiguousarray(array)
        ptr = self.alloc(array.nbytes)
        self._check(driver.cuMemcpyHtoD(ptr, array.ctypes.data, array.nbytes), "cuMemcpyHtoD")
        return ptr

    def download(self, ptr: int, shape, dtype) -> np.ndarray:
        from cuda.bindings import driver

        self._check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        out = np.empty(shape, dtype)
        self._check(driver.cuMemcpyDtoH(out.ctypes.data, ptr, out.nbytes), "cuMemcpyDtoH")
        return out

    def free(self):
        from cuda.bindings import driver

        driver.cuStreamSynchronize(self.stream)
        for ptr in self.buffers:
            driver.cuMemFree(ptr)
        self.buffers = []

    def preprocess(self, frame, size, mean, std, pad=0):
        h, w = frame.shape[:2]
        buffer = np.full((h, w + pad, 3), 255, np.uint8)
        buffer[:, :w] = frame
        oh, ow = (size, size) if isinstance(size, int) else size
        out = self.alloc(3 * oh * ow * 4)
        self.k.preprocess(self.upload(buffer), h, w, out, size, mean, std, pitch=buffer.strides[0])
        return self.download(out, (1, 3, oh, ow), np.float32)

    def masked_roi(self, frame, mask, roi, surround="frame"):
        h, w = frame.shape[:2]
        out = self.alloc(3 * roi[2] * roi[3] * 4)
        self.k.masked_roi(self.upload(frame), h, w, self.upload(mask.astype(np.uint8)), mask.shape[0], roi, out,
                          surround=surround)
        return self.download(out, (1, 3, roi[3], roi[2]), np.float32)

    def project(self, sr, lr, scale, iterations, chroma, lesion):
        _, _, h, w = lr.shape
        soft, (height, width), roi = lesion
        x, sums = self.upload(sr.astype(np.float32)), self.upload(np.zeros(2, np.float32))
        residual = (self.upload(soft.astype(np.float32)), soft.shape[0], height, width, roi[0], roi[1], sums)
        self.k.project(x, self.upload(lr.astype(np.float32)), h, w, scale, iterations, chroma,
                       self.alloc(4 * 3 * h * w * scale), self.alloc(4 * 3 * h * w), residual)
        return self.download(x, sr.shape, np.float32), self.download(sums, (2,), np.float32)

    def composite(self, frame, sr, soft, roi, scale, out_rect):
        h, w = frame.shape[:2]
        out = self.alloc(out_rect[2] * out_rect[3] * 3)
        sr_ptr = None if sr is None else self.upload(sr.astype(np.float32))
        self.k.composite(self.upload(frame), h, w, sr_ptr, self.upload(soft.astype(np.float32)), soft.shape[0], roi,
                         scale, out_rect, out)
        return self.download(out, (out_rect[3], out_rect[2], 3), np.uint8)


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    if not cu.gpu_available():
        pytest.skip("no CUDA GPU (cuda.bindings driver init or device count failed)")
    from cuda.bindings import driver

    cu.check(driver.cuInit(0), "cuInit")
    device = cu.check(driver.cuDeviceGet(0), "cuDeviceGet")
    context = cu.check(driver.cuDevicePrimaryCtxRetain(device), "cuDevicePrimaryCtxRetain")
    cu.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    stream = cu.check(driver.cuStreamCreate(0), "cuStreamCreate")
    kernels = ck.Kernels(stream, cache_dir=tmp_path_factory.mktemp("ptx"))
    runner = _GpuRunner(kernels, stream)
    yield runner
    runner.free()
    kernels.close()
    driver.cuStreamDestroy(stream)
    driver.cuDevicePrimaryCtxRelease(device)


@pytest.fixture()
def gpu_runner(gpu):
    yield gpu
    gpu.free()


@pytest.mark.gpu
@pytest.mark.parametrize("shape,size,pad", PREPROCESS_CASES, ids=_case_id)
def test_gpu_preprocess_matches_reference(gpu_runner, shape, size, pad):
    _check_preprocess(gpu_runner, shape, size, pad)


@pytest.mark.gpu
@pytest.mark.parametrize("shape,s,roi", MASKED_CASES, ids=_case_id)
def test_gpu_masked_roi_matches_reference_exactly(gpu_runner, shape, s, roi):
    _check_masked_roi(gpu_runner, shape, s, roi)


@pytest.mark.gpu
@pytest.mark.parametrize("shape,s,roi,scale,view,with_sr", COMPOSITE_CASES, ids=_case_id)
def test_gpu_composite_matches_reference(gpu_runner, shape, s, roi, scale, view, with_sr):
    _check_composite(gpu_runner, shape, s, roi, scale, view, with_sr)


@pytest.mark.gpu
@pytest.mark.parametrize("lr_shape,scale,iterations,chroma", PROJECTION_CASES, ids=_case_id)
def test_gpu_projection_matches_reference(gpu_runner, lr_shape, scale, iterations, chroma):
    _check_projection(gpu_runner, lr_shape, scale, iterations, chroma)


def test_gpu_tap_tables_are_uploaded_once(gpu_runner):
    kernels = gpu_runner.k
    kernels.prepare(540, 960, 256)
    before = len(kernels._allocations)
    frame = _frame(540, 960)
    first = gpu_runner.preprocess(frame, 256, MEAN, STD)
    second = gpu_runner.preprocess(frame, 256, MEAN, STD)
    assert len(kernels._allocations) == before and np.array_equal(first, second)


@pytest.mark.gpu
def test_gpu_arch_is_one_nvrtc_supports(gpu_runner):
    arch = int(gpu_runner.k.arch.split("_")[1])
    assert arch in nv.supported_archs()
