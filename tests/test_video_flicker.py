"""The generated dermatoscope clip (skinedge.data.video) and the flicker meter (skinedge.runtime.live.flicker)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from skinedge.data.video import moving_lesion_frames, write_moving_lesion_clip
from skinedge.errors import SkinedgeError
from skinedge.runtime.live.flicker import FlickerMeter, flicker_of, view_rect
from skinedge.runtime.pipeline.host import FrameResult

ROI = (40, 30, 80, 60)  # x0, y0, w, h in camera pixels of a 160×120 frame


def result(image: np.ndarray, roi=ROI) -> FrameResult:
    return FrameResult(image=image, found=roi is not None, roi=roi, lesion_area=0.0, mask=None)


def bicubic_view(frame: np.ndarray, roi=ROI, scale: int = 4) -> np.ndarray:
    """The plain up-scale of the ROI, as the pipeline's background is: exactly what 'no enhancement' looks like."""
    x0, y0, w, h = roi
    pad = 3
    up = cv2.resize(frame[y0 - pad:y0 + h + pad, x0 - pad:x0 + w + pad], None, fx=scale, fy=scale,
                    interpolation=cv2.INTER_CUBIC)
    return up[pad * scale:(pad + h) * scale, pad * scale:(pad + w) * scale]


def texture(seed: int = 0, size=(260, 340)) -> np.ndarray:
    """Smooth random colour texture, 0-255 float32: skin-like blotches with edges to align on."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((*size, 3), np.float32) * 255, (0, 0), 2.5) * 3 - 255


def shifted(tex: np.ndarray, dx: float, dy: float, size=(160, 120)) -> np.ndarray:
    """A camera frame of ``tex`` moved by (dx, dy) pixels, sub-pixel, with no noise."""
    m = np.array([[1.0, 0.0, 60.0 - dx], [0.0, 1.0, 60.0 - dy]])
    frame = cv2.warpAffine(tex, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b).mean())


# ------------------------------------------------------------------------ flicker
def test_a_static_scene_with_identical_views_does_not_flicker():
    frame = shifted(texture(), 0, 0)
    view = bicubic_view(frame)
    summary = flicker_of([frame] * 5, [result(view)] * 5)
    assert summary["pairs"] == 4 and summary["skipped"] == 0
    assert summary["flicker_enhanced"] < 1e-6 and summary["flicker_bicubic"] < 1e-6
    assert abs(summary["flicker_excess"]) < 1e-6


def test_noise_in_the_enhanced_view_is_excess_flicker():
    rng = np.random.default_rng(1)
    tex = texture()
    meter = FlickerMeter()
    for i in range(6):
        frame = shifted(tex, 1.3 * i, -0.7 * i)
        view = bicubic_view(frame).astype(np.float32) + rng.normal(0, 6, (ROI[3] * 4, ROI[2] * 4, 3))
        meter.add(frame, result(np.clip(np.rint(view), 0, 255).astype(np.uint8)))
    summary = meter.summary()
    assert summary["pairs"] == 5
    # σ 6 at ×4, averaged 2×2 to the metric scale and interpolated by the alignment: ≈ 1.9 more than bicubic
    assert summary["flicker_excess"] > 1.0 and summary["flicker_enhanced"] > 3 * summary["flicker_bicubic"], summary


@pytest.mark.parametrize("roi_moves", [False, True])
def test_a_moving_camera_with_bicubic_views_has_no_excess_flicker(roi_moves):
    """Alignment works: the texture moves by 1-2 px a frame (sub-pixel), the views are plain up-scales."""
    tex = texture(2)
    frames, results = [], []
    for i in range(8):
        frame = shifted(tex, 1.7 * i, 0.6 * i)
        roi = (ROI[0] + 2 * (i % 3), ROI[1] - i % 2, ROI[2], ROI[3]) if roi_moves else ROI
        frames.append(frame)
        results.append(result(bicubic_view(frame, roi), roi))
    summary = flicker_of(frames, results)
    unaligned = np.mean([mean_abs(a, b) for a, b in zip(frames, frames[1:])])
    assert summary["pairs"] == 7
    assert summary["flicker_bicubic"] < 0.1 * unaligned, (summary, unaligned)
    assert abs(summary["flicker_excess"]) < 0.1, summary


def test_the_generated_clip_with_bicubic_views_has_no_excess_flicker():
    frames = list(moving_lesion_frames(1.0, 15, 160, 120, seed=3))
    summary = flicker_of(frames, [result(bicubic_view(f)) for f in frames])
    assert summary["pairs"] == len(frames) - 1
    assert abs(summary["flicker_excess"]) < 0.15, summary


def test_view_rect_reads_the_magnification_from_the_shapes():
    frame = np.zeros((120, 160, 3), np.uint8)
    reduced = np.zeros((round(60 * 2.6), round(80 * 2.6), 3), np.uint8)  # a work budget shrank the ROI's SR
    assert view_rect(result(reduced), frame.shape) == ROI
    assert view_rect(result(np.zeros((480, 640, 3), np.uint8), None), frame.shape) == (0, 0, 160, 120)
    whole = result(np.zeros((480, 640, 3), np.uint8), (40, 30, 80, 50))  # the lesion found, the whole frame shown
    assert view_rect(whole, frame.shape, "full") == (0, 0, 160, 120)
    assert view_rect(whole, frame.shape, "roi") == (0, 0, 160, 120)  # only the frame fits a 4:3 view
    assert view_rect(result(np.zeros((240, 320, 3), np.uint8)), frame.shape, "roi") == ROI  # both fit: the mode's
    with pytest.raises(ValueError, match="fits neither"):
        view_rect(result(np.zeros((100, 100, 3), np.uint8)), frame.shape)


def test_a_skipped_frame_breaks_the_chain_and_views_that_do_not_overlap_are_not_compared():
    frame = shifted(texture(4), 0, 0)
    left, right = (4, 30, 60, 60), (96, 30, 60, 60)
    views = [result(bicubic_view(frame)), None, result(bicubic_view(frame)),
             result(bicubic_view(frame, left), left), result(bicubic_view(frame, right), right)]
    summary = flicker_of([frame] * 5, views)
    # pairs 0-1 and 1-2 do not exist (no result for frame 1), 2-3 overlaps, 3-4 shows two disjoint places
    assert (summary["frames"], summary["pairs"], summary["skipped"]) == (5, 1, 1)
    assert summary["flicker_enhanced"] < 1e-6


# -------------------------------------------------------------------------- video
def test_generated_clip_is_deterministic_moves_and_holds_still():
    frames = list(moving_lesion_frames(3.0, 10, 160, 120, seed=0))
    again = list(moving_lesion_frames(3.0, 10, 160, 120, seed=0))
    other = next(iter(moving_lesion_frames(3.0, 10, 160, 120, seed=1)))
    assert len(frames) == 30
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    assert not np.array_equal(frames[0], other)
    diffs = np.array([mean_abs(a, b) for a, b in zip(frames, frames[1:])])
    noise_only = diffs < 1.8  # sensor noise alone (σ 1.5) gives mean |diff| ≈ 1.7
    assert noise_only.sum() >= 2, diffs  # the camera holds still for a while (twice, ~0.3 s each here)
    assert (diffs > 2.0).mean() > 0.6, diffs  # and moves the rest of the time
    assert not any(np.array_equal(frames[i], frames[i + 1]) for i in np.flatnonzero(noise_only))  # fresh noise


@pytest.mark.parametrize("seed", [0, 1])
def test_the_camera_closes_in_and_keeps_the_whole_lesion_in_view(seed):
    from skinedge.data.synth import render_sample
    from skinedge.data.video import _plan

    plan = _plan(4.0, 10, 160, 120, seed)
    ys, xs = np.nonzero(render_sample(plan.source.shape[0], seed, plan.index).mask)
    cx, cy, crop_h = plan.crops.T
    half_w, half_h = crop_h * 160 / 120 / 2, crop_h / 2
    assert np.all((cx - half_w <= xs.min()) & (cx + half_w >= xs.max() + 1))
    assert np.all((cy - half_h <= ys.min()) & (cy + half_h >= ys.max() + 1))
    fill = (ys.max() + 1 - ys.min()) / crop_h
    assert fill[0] < 0.5 and fill[-1] > 1.3 * fill[0]  # small at first, large at the end


@pytest.mark.parametrize("kwargs", [dict(seconds=0), dict(fps=-1), dict(width=8), dict(height=5000)])
def test_generated_clip_refuses_bad_settings(kwargs):
    with pytest.raises(SkinedgeError):
        moving_lesion_frames(**{"seconds": 1, "fps": 10, "width": 64, "height": 48, **kwargs})


def test_write_clip_is_atomic_with_an_info_sidecar(tmp_path):
    info = write_moving_lesion_clip(tmp_path / "clip.avi", seconds=1, fps=8, width=96, height=64, seed=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "clip.json"]  # no temporary left
    assert json.loads((tmp_path / "clip.json").read_text()) == info
    assert info["frames"] == 8 and info["width"] == 96 and info["seed"] == 2 and "not patient data" in info["what"]
    with pytest.raises(SkinedgeError, match="end.*in .avi"):
        write_moving_lesion_clip(tmp_path / "clip.mp4", seconds=1, fps=8, width=96, height=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "clip.json"]


def skinedge_cli(*args, cwd=None):
    """The real entry point in a fresh interpreter, as in test_cli."""
    return subprocess.run([sys.executable, "-m", "skinedge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_writes_a_readable_avi(tmp_path):
    out = tmp_path / "cam.avi"
    run = skinedge_cli("data", "video", out, "--seconds", 1.5, "--fps", 10, "--width", 96, "--height", 64,
                       "--seed", 1)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.strip().splitlines()) == 1 and "not patient data" in run.stdout
    cap = cv2.VideoCapture(str(out))
    shapes = []
    ok, frame = cap.read()
    while ok:
        shapes.append(frame.shape)
        ok, frame = cap.read()
    cap.release()
    assert shapes == [(64, 96, 3)] * 15
    assert json.loads((tmp_path / "cam.json").read_text())["frames"] == 15


@pytest.mark.parametrize("out, message", [("missing/cam.avi", "does not exist"), ("cam.mp4", "ending in .avi")])
def test_cli_refuses_a_bad_path_in_one_line(tmp_path, out, message):
    run = skinedge_cli("data", "video", out, "--seconds", 1, "--fps", 5, cwd=tmp_path)
    assert run.returncode != 0
    assert run.stderr.startswith("skinedge: error:") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []
