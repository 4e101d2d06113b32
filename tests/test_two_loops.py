"""Two loops: the display at the camera's rate, segmenter and generator on their own thread (real ONNX Runtime
sessions of the exported test models, generated frames)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_runtime import lesion_frame

from skinedge.data.video import moving_lesion_frames, write_moving_lesion_clip
from skinedge.runtime.live.command import run_command
from skinedge.runtime.live.display import TwoLoopDisplay
from skinedge.runtime.live.motion import Track, shift_mask
from skinedge.runtime.live.sr_loop import Published, SRLoop, set_threads
from skinedge.runtime.pipeline.host import BICUBIC_NOTE, EarlierSR, reduced_size
from skinedge.runtime.pipeline.mask import LesionMask
from skinedge.runtime.pipeline.projection import down
from skinedge.runtime.sinks.recorder import read_frames


def wait_for(loop: SRLoop, index: int, timeout: float = 30.0):
    """The SR loop's result for frame ``index`` (or later)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = loop.latest()
        if got is not None and got.index >= index:
            return got
        time.sleep(0.005)
    raise AssertionError(f"the SR loop gave no result for frame {index} in {timeout} s")


def test_the_track_sums_measured_shifts_and_forgets_across_an_unsure_step():
    track = Track(size=8)
    track.add(0, None)
    track.add(1, (2.4, -1.0))
    track.add(2, (2.4, -1.0))
    assert track.since(0) == (5, -2) and track.since(1) == (2, -1) and track.since(2) == (0, 0)
    track.add(3, None)  # motion could not be measured: nothing before frame 3 can be placed
    track.add(4, (1.0, 0.0))
    assert track.since(2) is None and track.since(3) == (1, 0)
    for i in range(5, 20):
        track.add(i, (0.0, 0.0))
    assert track.since(4) is None and track.since(19) == (0, 0)  # out of the bounded path


def test_a_shifted_mask_moves_its_roi_and_grid_and_refuses_to_leave_the_frame():
    grid = np.zeros((64, 64), np.uint8)
    grid[20:30, 20:30] = 1
    lm = LesionMask(True, grid, grid.astype(np.float32), (40, 40, 60, 60), 0.02)
    moved = shift_mask(lm, (16, -8), (128, 128))
    assert moved.roi == (56, 32, 60, 60)
    assert moved.mask[16:26, 28:38].all() and moved.mask.sum() == grid.sum()
    assert shift_mask(lm, (40, 0), (128, 128)) is None  # 40 + 40 + 60 > 128


def test_the_display_shows_the_sr_loops_result_projected_onto_each_new_frame(exported, pipeline):
    root, _, _ = exported
    frame = lesion_frame(root)
    with SRLoop(pipeline) as loop:
        display = TwoLoopDisplay(pipeline, loop, max_age_ms=60_000)
        first = display(frame)
        assert not first.found and first.sr_age_ms is None  # nothing published yet: the smooth up-scale
        wait_for(loop, 0)
        noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(1).integers(-3, 4, frame.shape), 0,
                        255).astype(np.uint8)
        shown = display(noisy)
    assert shown.found and shown.sr_age_ms is not None and shown.sr_age_ms > 0
    assert not shown.computed and not shown.segmented  # the display loop ran no network
    direct = pipeline(noisy)  # the one-loop pipeline on the same frame: same ROI, its own generator run
    assert shown.roi == direct.roi and shown.image.shape == direct.image.shape
    # projected onto *this* frame: its LR agrees with this frame's pixels as closely as a fresh SR does
    x0, y0, w, h = shown.roi
    lr = noisy[y0:y0 + h, x0:x0 + w].astype(np.float32)
    for result in (shown, direct):
        sr = result.image.astype(np.float32).transpose(2, 0, 1)[None] / 255
        back = down(sr, h, w)[0].transpose(1, 2, 0) * 255
        assert np.abs(back - lr).mean() < 6.0
    # close to a fresh SR of this frame: within the noise the projection leaves alone (it stops at STOP floors)
    assert np.abs(shown.image.astype(np.int16) - direct.image.astype(np.int16)).mean() < 4.0
    assert loop.counts["segmented"] >= 1 and loop.counts["computed"] >= 1


def test_an_sr_older_than_the_limit_or_out_of_place_is_never_shown(exported, pipeline):
    root, _, _ = exported
    frame = lesion_frame(root)
    with SRLoop(pipeline) as loop:
        display = TwoLoopDisplay(pipeline, loop, max_age_ms=1e-3)
        display(frame)
        wait_for(loop, 0)
        old = display(frame)
        assert old.found and old.sr_age_ms is None and "bicubic" in old.note
        display.max_age_ms = 60_000
        fresh = display(frame)
        assert fresh.sr_age_ms is not None
        blank = np.full_like(frame, 128)  # no texture: the motion since the SR's frame cannot be measured
        unsure = display(blank)
        assert unsure.sr_age_ms is None and "bicubic" in unsure.note
    assert display.counts["bicubic"] == 2 and display.counts["sr"] == 1


def test_an_sr_the_pipeline_cannot_place_is_counted_as_the_bicubic_it_shows(exported, pipeline):
    """When the pipeline falls back to bicubic for an SR it was handed (here one whose shape does not match its
    ROI; on the GPU, one whose slot the SR loop rewrote), the display says so: no SR age, counted as bicubic."""
    root, _, _ = exported
    frame = lesion_frame(root)
    lm = pipeline.segment(frame, {}, time.perf_counter())
    made = pipeline.generate_frame(frame, lm)
    other = EarlierSR(made.sr[:, :, :-4, :-4], None, made.size)

    class Fixed:  # an SR loop whose newest result is that one, made from this very frame
        def submit(self, frame, index, at):
            self.at = at

        def latest(self):
            return Published(0, self.at, lm, other, 0.0, 0.0)

    display = TwoLoopDisplay(pipeline, Fixed(), max_age_ms=60_000)
    shown = display(frame)
    assert shown.found and shown.sr_age_ms is None and shown.note == BICUBIC_NOTE
    assert display.counts["bicubic"] == 1 and display.counts["sr"] == 0


def test_the_bicubic_fallback_is_the_plain_up_scale_of_this_frame(exported, pipeline):
    root, _, _ = exported
    frame = lesion_frame(root)
    lm = pipeline.segment(frame, {}, time.perf_counter())
    plain = pipeline.enhance(frame, lm, {}, time.perf_counter(), earlier=EarlierSR(None))
    x0, y0, w, h = lm.roi
    cv2 = pytest.importorskip("cv2")
    bicubic = cv2.resize(frame[y0:y0 + h, x0:x0 + w], plain.image.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    inner = (slice(8, -8), slice(8, -8))  # away from the ROI's edge, where the two resamplers' borders differ
    assert np.abs(plain.image[inner].astype(np.int16) - bicubic[inner].astype(np.int16)).mean() < 2.0
    assert not plain.computed


def test_an_sr_loop_failure_is_one_line_and_the_view_goes_on(exported, pipeline, monkeypatch):
    root, _, _ = exported
    frame = lesion_frame(root)
    lines: list[str] = []

    def broken(*a, **k):
        raise RuntimeError("device lost")

    monkeypatch.setattr(pipeline, "generate_frame", broken)
    with SRLoop(pipeline, log=lines.append) as loop:
        display = TwoLoopDisplay(pipeline, loop)
        display(frame)
        end = time.monotonic() + 30
        while loop.error is None and time.monotonic() < end:
            time.sleep(0.01)
        after = display(frame)
    assert loop.error == "RuntimeError: device lost" and len(lines) == 1 and "SR loop stopped" in lines[0]
    assert after.image is not None and after.sr_age_ms is None


def test_threads_are_set_per_network_on_onnx_runtime(exported, pipeline):
    assert set_threads(pipeline, 1) and pipeline.seg.loader.threads == 1 and pipeline.sr.loader.threads == 1
    assert pipeline.seg.active and pipeline.sr.active  # re-opened with the new setting
    assert not set_threads(pipeline, 0)


def test_run_shows_every_frame_and_reports_the_sr_age(exported, tmp_path):
    _, _, models = exported
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=2.0, fps=30.0, width=160, height=120, seed=2)
    lines: list[str] = []
    summary = run_command(None, str(clip), models, backend="onnxruntime", precision="fp32", no_display=True,
                          record=tmp_path / "rec", log=lines.append, realtime=True, max_sr_age_ms=1000)
    text = "\n".join(lines)
    assert "two loops" in text and "SR loop" in text
    assert summary["frames"] + summary["dropped"] >= 55 and summary["sr_shown"] > 0
    assert 0 < summary["sr_age_p50_ms"] <= summary["sr_age_p95_ms"] <= 1000 * 1.02
    assert summary["segmented"] >= summary["computed"] > 0
    records = read_frames(tmp_path / "rec")
    ages = [r["sr_age_ms"] for r in records if r["sr_age_ms"] is not None]
    assert len(records) == summary["frames"] and len(ages) == summary["sr_shown"]
    assert not any(r["segmented"] or r["computed"] for r in records)  # the display loop ran no network


def test_on_a_moving_clip_no_sr_older_than_the_limit_is_shown(exported, pipeline):
    """A clock that moves 1/30 s a frame; every 5th frame waits for the SR loop to catch up: frames after it
    show its SR while it is within the limit (100 ms: 3 frames), and bicubic after."""
    frames = list(moving_lesion_frames(seconds=1.0, fps=30.0, width=160, height=120, seed=3))
    now = [0.0]
    with SRLoop(pipeline) as loop:
        display = TwoLoopDisplay(pipeline, loop, max_age_ms=100, clock=lambda: now[0])
        ages, stale = [], 0
        for k, frame in enumerate(frames):
            result = display(frame)
            if result.sr_age_ms is not None:
                ages.append(result.sr_age_ms)
            stale += result.found and result.sr_age_ms is None
            if k % 5 == 0:
                wait_for(loop, k)
            now[0] += 1 / 30
    assert display.counts["frames"] == 30 and display.counts["sr"] == len(ages) > 0, display.counts
    assert max(ages) <= 100 and stale == display.counts["bicubic"]


def test_bad_two_loop_options_are_one_line_before_anything_opens(exported, tmp_path):
    from skinedge.errors import SkinedgeError

    _, _, models = exported
    for bad in ({"max_sr_age_ms": 0}, {"sr_threads": -1}):
        with pytest.raises(SkinedgeError, match="--max-sr-age must be positive and --sr-threads"):
            run_command(None, str(tmp_path / "missing.avi"), models, no_display=True, log=lambda s: None, **bad)


def test_the_watchdog_says_ready_then_pings_while_frames_flow_then_stopping(exported, tmp_path, monkeypatch):
    import socket
    import threading

    from skinedge.errors import SkinedgeError
    from skinedge.runtime.live.watchdog import Watchdog

    _, _, models = exported
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(60.0)
    got: list[str] = []

    def read() -> None:  # as systemd does, while the run goes
        while not got or got[-1] != "STOPPING=1":
            try:
                got.append(listener.recv(64).decode())
            except TimeoutError:
                return

    reader = threading.Thread(target=read)
    reader.start()
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=0.5, fps=30.0, width=96, height=72, seed=1)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "2")  # 1 µs between pings: one per shown frame
    summary = run_command(None, str(clip), models, backend="onnxruntime", precision="fp32", no_display=True,
                          log=lambda s: None, watchdog=True, sr_loop=False)
    reader.join()
    listener.close()
    assert got[0] == "READY=1" and got[-1] == "STOPPING=1"
    assert got.count("WATCHDOG=1") == summary["frames"] and got.count("READY=1") == 1
    monkeypatch.delenv("NOTIFY_SOCKET")
    with pytest.raises(SkinedgeError, match="--watchdog needs systemd's NOTIFY_SOCKET"):
        Watchdog.from_environment()


def test_the_pacer_shows_frames_a_constant_delay_after_capture():
    from skinedge.runtime.live.display import HOLD_FLOOR_MS, Pacer

    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(ceiling_ms=25.0, clock=lambda: now[0], sleep=sleep)
    shown = []
    for k in range(400):
        captured = k / 30
        now[0] = captured + (0.020 if k % 50 == 0 else 0.010)  # ready 10 ms after capture, every 50th at 20 ms
        pacer.hold(captured)
        shown.append((now[0] - captured) * 1000)
    late = shown[100:]
    assert max(late) - min(late) < 1e-6 and late[0] == pytest.approx(20.0)  # all at the p99 of ready: 20 ms
    assert pacer.delay_ms == pytest.approx(20.0) and HOLD_FLOOR_MS <= pacer.delay_ms <= 25.0
    pacer = Pacer(ceiling_ms=25.0, clock=lambda: now[0], sleep=sleep)
    now[0] = 100.040  # a frame later than the ceiling is shown at once
    slept.clear()
    pacer.hold(100.0)
    assert not slept and pacer.delay_ms == pytest.approx(25.0)


def test_with_camera_resolution_the_generator_sees_at_least_a_quarter_of_the_rois_side(pipeline):
    pipeline.sr_budget = 1024
    try:
        assert pipeline.sr_size(400, 300)[0] * pipeline.scale < 400  # the budget alone: a view below the camera
        pipeline.camera_resolution = True
        w, h = pipeline.sr_size(400, 300)
        assert (w, h) == (100, 75) and pipeline.sr_size(60, 40) == reduced_size(60, 40, 1024)
    finally:
        pipeline.sr_budget, pipeline.camera_resolution = None, False


def test_sync_gives_the_one_loop_and_two_loops_are_the_default(exported, tmp_path, capsys):
    from skinedge.cli import main

    _, _, models = exported
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=0.5, fps=30.0, width=160, height=120, seed=4)
    argv = ["run", "--source", str(clip), "--models", str(models), "--backend", "onnxruntime", "--precision",
            "fp32", "--no-display", "--max-frames", "4"]
    said = {}
    for extra in ([], ["--sync"]):
        with pytest.raises(SystemExit) as ended:
            main(argv + extra)
        assert (ended.value.code or 0) == 0
        out = capsys.readouterr()
        said[bool(extra)] = out.out + out.err
    assert "two loops:" in said[False] and "SR loop:" in said[False]
    assert "two loops:" not in said[True] and "SR loop:" not in said[True] and "4 frames in" in said[True]
