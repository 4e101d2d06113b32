"""Real time on the CPU: the per-frame SR budget, temporal reuse in live runs, and `run`'s summary of both,
on real ONNX Runtime sessions of the exported test models."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_runtime import lesion_frame

from skinedge.data.video import write_moving_lesion_clip
from skinedge.errors import SkinedgeError
from skinedge.runtime.backends import open_runners
from skinedge.runtime.live.command import run_command
from skinedge.runtime.live.reuse import TemporalReuse, roi_change
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline import noise as noise_level
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.budget import Budget, BudgetControl, measure_budget, parse_budget, set_budget
from skinedge.runtime.pipeline.host import MIN_BUDGET, Pipeline, reduced_size
from skinedge.runtime.pipeline.mask import LesionMask
from skinedge.runtime.pipeline.projection import STOP, down, up
from skinedge.runtime.sinks.recorder import read_frames


def big_lesion_frame(root) -> np.ndarray:
    """A generated lesion frame enlarged 3× (nearest), so its ROI is far over a small budget."""
    frame = lesion_frame(root)
    return np.ascontiguousarray(np.repeat(np.repeat(frame, 3, axis=0), 3, axis=1))


def test_reduced_size_keeps_the_aspect_and_never_grows():
    assert reduced_size(100, 50, None) == (100, 50) and reduced_size(40, 20, 1000) == (40, 20)
    w, h = reduced_size(300, 200, 6000)
    assert w * h <= 6000 and abs(w / h - 1.5) < 0.05 and w < 300
    assert reduced_size(5000, 10, 1024)[1] == 8  # never thinner than 8 px


def test_parse_budget_takes_auto_none_or_pixels_and_refuses_the_rest():
    assert parse_budget("auto") == "auto" and parse_budget("NONE") is None and parse_budget("4096") == 4096
    for bad in ("lots", "12", "-5"):
        with pytest.raises(SkinedgeError, match="--sr-budget"):
            parse_budget(bad)


def test_a_roi_over_the_budget_is_reduced_before_sr_and_stays_consistent_with_the_camera(exported, pipeline):
    root, _, _ = exported
    frame = big_lesion_frame(root)
    full = pipeline(frame)
    assert full.found and full.sr_input_scale == 1.0
    x0, y0, w, h = full.roi
    assert full.image.shape[:2] == (h * pipeline.scale, w * pipeline.scale)
    pipeline.sr_budget = MIN_BUDGET
    try:
        small = pipeline(frame)
    finally:
        pipeline.sr_budget = None
    sw, sh = reduced_size(w, h, MIN_BUDGET)
    assert small.roi == full.roi and small.sr_input_scale == pytest.approx(sw / w) and small.sr_input_scale < 1
    assert small.image.shape[:2] == (sh * pipeline.scale, sw * pipeline.scale)
    assert small.sr.shape[2:] == (sh * pipeline.scale, sw * pipeline.scale)
    camera = down(reference.masked_roi(frame, small.mask.mask, small.roi), sh, sw)  # what the generator saw
    floor = noise_level.estimate(camera).floor  # the projection fits the camera down to its noise floor
    assert np.abs(down(small.sr, sh, sw) - camera).mean() * 255 < max(1.0, (STOP + 0.5) * floor)  # onto the reduced ROI
    assert small.timings_ms["sr"] < full.timings_ms["sr"]


def test_a_reduced_roi_whose_view_holds_the_camera_is_made_consistent_with_the_cameras_own_pixels(exported,
                                                                                                  pipeline):
    """The generator sees the ROI at half its side; the view (×4 of that: twice the camera's side) is projected
    onto the camera ROI at full resolution, so it shows at least what the camera saw, not the reduced copy."""
    root, _, _ = exported
    frame = big_lesion_frame(root)
    lm = pipeline.segment(frame, {}, 0.0)
    x0, y0, w, h = lm.roi
    pipeline.sr_budget = w * h // 4
    try:
        small = pipeline.enhance(frame, lm, {}, 0.0)
    finally:
        pipeline.sr_budget = None
    sw, sh = reduced_size(w, h, w * h // 4)
    assert small.sr_input_scale < 0.6 and small.image.shape[:2] == (sh * pipeline.scale, sw * pipeline.scale)
    camera = reference.masked_roi(frame, lm.mask, lm.roi)
    floor = noise_level.estimate(camera).floor
    assert np.abs(down(small.sr, h, w) - camera).mean() * 255 < max(1.0, (STOP + 0.5) * floor)
    view = small.image[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255
    reduced_only = down(up(down(camera, sh, sw), sh * pipeline.scale, sw * pipeline.scale), h, w)
    assert np.abs(down(view, h, w) - camera).mean() < np.abs(reduced_only - camera).mean()


def test_the_budget_also_bounds_full_mode(exported):
    root, _, models = exported
    manifest = load_models(models)
    opened = open_runners(models, manifest, "onnxruntime", "fp32")
    frame = big_lesion_frame(root)
    with Pipeline(opened.seg, opened.sr, manifest, "full", sr_budget=MIN_BUDGET) as p:
        result = p(frame)
    assert result.found and result.sr_input_scale < 1
    assert result.image.shape[:2] == (frame.shape[0] * p.scale, frame.shape[1] * p.scale)


def test_the_auto_budget_is_measured_on_the_pipeline_and_grows_with_the_frame_time(pipeline):
    fast, slow = measure_budget(pipeline, 30.0, (120, 160)), measure_budget(pipeline, 2.0, (120, 160))
    assert MIN_BUDGET <= fast.pixels <= slow.pixels and slow.pixels > MIN_BUDGET
    assert fast.segment_ms > 0 and fast.roi_ms_per_px > 0 and "for 2 frames/s" in slow.describe()
    line = set_budget(pipeline, "auto", 2.0, (120, 160))
    assert pipeline.sr_budget >= MIN_BUDGET and line.startswith("SR budget")
    assert set_budget(pipeline, None, 2.0).startswith("SR budget: none") and pipeline.sr_budget is None
    with pytest.raises(SkinedgeError, match="--target-fps"):
        measure_budget(pipeline, 0.0)


def test_the_budget_is_kept_to_the_frame_time_by_what_capped_frames_took(pipeline, exported):
    """10 frames/s leaves 85 ms; 5 of them for the segmenter path → 80 ms for the ROI path."""
    root = exported[0]
    saved = pipeline.sr_budget
    try:
        pipeline.sr_budget = MIN_BUDGET
        capped = pipeline(big_lesion_frame(root))
        assert capped.found and capped.computed and capped.sr_input_scale < 1
        control = BudgetControl(pipeline, Budget(10000, 10.0, 5.0, 0.008))
        took = lambda ms, result=capped: replace(result, timings_ms={"seg": 5.0, "sr": ms - 10, "project": 6.0,
                                                                     "composite": 4.0})  # noqa: E731
        pipeline.sr_budget = 10000
        control(took(160.0))  # twice the time left: −30 % at most per frame
        assert pipeline.sr_budget == 7000
        control(took(70.0))  # 80/70: +10 % at most
        assert pipeline.sr_budget == 7700
        control(took(100.0))
        assert pipeline.sr_budget == int(7700 * 0.8)
        before = pipeline.sr_budget
        control(replace(capped, computed=False, timings_ms={"composite": 500.0}))  # reused: nothing learnt
        control(replace(took(500.0), sr_input_scale=1.0))  # under the budget anyway: nothing learnt
        assert pipeline.sr_budget == before
        for _ in range(40):
            control(took(1.0))
        assert pipeline.sr_budget == 20000  # never over twice the probed budget
        for _ in range(40):
            control(took(10000.0))
        assert pipeline.sr_budget == MIN_BUDGET and "range" in control.describe()
    finally:
        pipeline.sr_budget = saved


def test_roi_change_sees_motion_through_camera_noise():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (60, 80, 3)).astype(np.float32)
    scene = (scene + np.roll(scene, 1, 0) + np.roll(scene, 1, 1) + np.roll(scene, 1, (0, 1))) / 4  # some texture
    noisy = lambda s: np.clip(s + rng.normal(0, 1.5, s.shape), 0, 255).astype(np.uint8)  # noqa: E731
    assert roi_change(noisy(scene), noisy(scene)) < 1.5 < roi_change(noisy(scene), noisy(np.roll(scene, 2, 1)))


def test_a_still_lesion_reuses_sr_and_tracks_the_mask_between_segmenter_runs(exported, pipeline):
    root, _, _ = exported
    frame = lesion_frame(root)
    rng = np.random.default_rng(1)
    reuse = TemporalReuse(pipeline, seg_every=3, max_reuse=4)
    results = [reuse(np.clip(frame + rng.normal(0, 1.0, frame.shape), 0, 255).astype(np.uint8)) for _ in range(7)]
    assert all(r.found for r in results)
    assert [r.segmented for r in results] == [True, False, False, True, False, False, True]
    assert [r.computed for r in results] == [True, False, False, False, False, True, False]  # at most 4 in a row
    assert all(r.timings_ms["sr"] == 0.0 for r in results if not r.computed)
    assert results[1].image.shape == results[0].image.shape
    assert np.abs(results[1].image.astype(int) - results[0].image.astype(int)).mean() < 2.0
    assert reuse.counts == {"frames": 7, "segmented": 3, "computed": 2}


def test_a_moving_lesion_is_recomputed_and_its_mask_follows_the_camera(exported, pipeline):
    root, _, _ = exported
    frame = np.ascontiguousarray(np.pad(lesion_frame(root), ((32, 32), (32, 32), (0, 0)), mode="edge"))
    reuse = TemporalReuse(pipeline, seg_every=2)
    reuse(frame)
    s = pipeline.size  # the test segmenter is too weak to box a lesion: give the last frame a mask in the middle
    square = np.zeros((s, s), np.uint8)
    square[s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    reuse.lm = LesionMask(True, square, square.astype(np.float32), (40, 40, 80, 80), 0.25)
    moved = np.ascontiguousarray(np.roll(frame, (3, 4), axis=(0, 1)))
    second = reuse(moved)  # tracked, not segmented: the ROI and the mask moved with the content
    assert not second.segmented and second.computed and second.roi == (44, 43, 80, 80)
    grid = second.mask.mask
    assert grid.sum() == square.sum() and np.argwhere(grid).min(axis=0).tolist() == [
        s // 4 + round(3 * s / frame.shape[0]), s // 4 + round(4 * s / frame.shape[1])]
    third = reuse(moved)  # the segmenter's turn again
    assert third.segmented


def test_run_on_a_moving_lesion_clip_reports_budget_reuse_and_flicker(exported, tmp_path):
    _, _, models = exported
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=1.0, fps=30.0, width=160, height=120, seed=2)
    lines: list[str] = []
    summary = run_command(None, str(clip), models, backend="onnxruntime", precision="fp32", no_display=True,
                          record=tmp_path / "rec", log=lines.append, target_fps=5.0, sr_loop=False)
    text = "\n".join(lines)
    assert "SR budget" in text and "temporal reuse" in text and "flicker" in text
    assert summary["frames"] == 30 and summary["segmented"] >= 10 and summary["flicker"]["pairs"] > 0
    assert summary["latency_p99_ms"] >= summary["latency_p50_ms"] > 0
    records = read_frames(tmp_path / "rec")
    assert sum(r["segmented"] for r in records) == summary["segmented"]
    assert sum(r["computed"] for r in records) == summary["computed"]
    assert all(0 < r["sr_input_scale"] <= 1 for r in records)
    lines.clear()
    plain = run_command(None, str(clip), models, backend="onnxruntime", precision="fp32", no_display=True,
                        log=lines.append, sr_budget="none", reuse=False, sr_loop=False)
    assert plain["segmented"] == 30 and plain["computed"] >= summary["computed"]  # nothing reused without --reuse
    assert "SR budget: none" in "\n".join(lines) and "temporal reuse" not in "\n".join(lines)
