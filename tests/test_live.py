"""Live runs (``skinedge run``): sources, the capture thread, the loop and the recorder, on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinedge.data.generate import write_synthetic
from skinedge.data.imageio import read_rgb
from skinedge.errors import SkinedgeError
from skinedge.runtime.live import capture as capture_mod
from skinedge.runtime.live.capture import LatestFrame
from skinedge.runtime.live.command import parse_serve, run_command, source_uri
from skinedge.runtime.live.loop import run_live
from skinedge.runtime.live.sources import Source, has_gstreamer, open_source
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks.recorder import Recorder, canvas_size, check_record_path, read_frames

H, W, FPS = 96, 128, 10.0
STATS_KEYS = {"frame", "fps", "latency_ms", "dropped", "signal", "source", "backend", "variants"}


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[np.ndarray]:
    """24 generated dermoscopy-like frames, 96×128 uint8 BGR."""
    out = tmp_path_factory.mktemp("live") / "synth"
    write_synthetic(out, count=24, size=128, seed=11)
    return [np.ascontiguousarray(read_rgb(p)[0][16:112, :, ::-1]) for p in sorted((out / "images").glob("*.png"))]


@pytest.fixture(scope="module")
def video(frames, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    write_video(path, frames)
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def read_video(path: Path, api: int = cv2.CAP_FFMPEG) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), api)
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def read_recording(path: Path, stream: str = "raw") -> list[np.ndarray]:
    """Every frame of the closed segments, in order (segments.jsonl names them)."""
    return [f for seg in closed_segments(path) for f in read_video(path / seg[stream])]


def closed_segments(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "segments.jsonl").read_text().splitlines()]


def timestamps(file: Path) -> tuple[list[float], float]:
    """(each frame's timestamp in s, the file's duration in s), as PyAV (FFmpeg) reads them."""
    import av

    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        pts = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None]
        return pts, float(container.duration / av.time_base)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class FakePipeline:
    """Frame → a ×2 'enhanced' view; ``delay`` makes it slow, ``interrupt_at`` raises Ctrl-C on that call."""

    def __init__(self, delay: float = 0.0, interrupt_at: int | None = None):
        self.delay, self.interrupt_at, self.calls = delay, interrupt_at, 0

    def __call__(self, frame: np.ndarray) -> FrameResult:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        h, w = frame.shape[:2]
        image = frame.repeat(2, axis=0).repeat(2, axis=1)
        return FrameResult(image, True, (0, 0, w, h), 0.25, None, {"seg": 1.0, "sr": 2.0, "total": 3.0})


class FakeSink:
    def __init__(self, quit_after: int | None = None):
        self.calls, self.closed, self.quit_after, self.quit = [], False, quit_after, False

    def show(self, raw, result, stats) -> None:
        assert raw.dtype == np.uint8 and raw.ndim == 3
        self.calls.append((raw.copy(), result, dict(stats)))
        if self.quit_after is not None and len(self.calls) >= self.quit_after:
            self.quit = True

    def close(self) -> None:
        self.closed = True


class FakeCamera(Source):
    """A live source: a frame every ``period`` s; reads ``fail_from``.. fail until ``reopen`` was called
    ``recover_after`` times (earlier reopens raise, like a camera that is still unplugged)."""

    live = True

    def __init__(self, frames, period=0.002, fail_from=None, recover_after=2):
        self.frames, self.period, self.fail_from, self.recover_after = frames, period, fail_from, recover_after
        self.n, self.reopens, self.failing = 0, 0, False

    def read(self):
        time.sleep(self.period)
        if self.fail_from is not None and self.n == self.fail_from and self.reopens < self.recover_after:
            self.failing = True
        if self.failing:
            return None
        self.n += 1
        return self.frames[self.n % len(self.frames)].copy()

    def reopen(self):
        self.reopens += 1
        if self.reopens < self.recover_after:
            raise SkinedgeError("camera still gone")
        self.failing = False

    def describe(self):
        return "fake camera"


# ------------------------------------------------------------------ video file → recording
def test_video_file_is_processed_and_recorded_frame_by_frame(pipeline, frames, video, tmp_path):
    rec, lines = tmp_path / "rec", []
    recorder = Recorder(rec, max_frames=10, log=lines.append)  # 10 frames a segment: 3 segments
    with open_source(str(video), log=lines.append) as source:
        summary = run_live(source, pipeline, [], recorder, log=lines.append, backend="onnxruntime")
    assert summary["frames"] == len(frames) and summary["dropped"] == 0 and summary["stopped"] == "end of source"
    assert summary["latency_p95_ms"] >= summary["latency_p50_ms"] > 0 and summary["fps"] > 0
    assert {"preprocess", "seg", "mask", "sr", "composite"} <= set(summary["stage_p50_ms"])
    assert not lines, lines
    raw = read_recording(rec)
    decoded = read_video(video)
    assert len(raw) == len(frames) == len(decoded)
    for i, got in enumerate(raw):  # each recorded frame is its own input frame (MJPG twice: small differences)
        assert mad(got, decoded[i]) < 4 and mad(got, frames[i]) < 8
        assert mad(got, frames[i]) < min(mad(got, f) for j, f in enumerate(frames) if j != i)
    enhanced = read_recording(rec, "enhanced")
    assert len(enhanced) == len(frames) and enhanced[0].shape[:2] == (H * 2, W * 2)
    records = read_frames(rec)
    assert [r["index"] for r in records] == list(range(len(frames)))
    assert {"index", "time", "found", "roi", "lesion_area", "timings_ms", "segment"} <= set(records[0])
    assert [r["segment"] for r in records] == [i // 10 for i in range(len(frames))]


def test_run_command_runs_headless_and_prints_the_summary(exported, video, tmp_path):
    _, _, models = exported
    lines = []
    summary = run_command(None, f"file://{video}", models, backend="onnxruntime", record=tmp_path / "rec",
                          no_display=True, max_frames=5, log=lines.append)
    assert summary["frames"] == 5 and summary["stopped"] == "max frames"
    text = "\n".join(lines)
    assert "backend onnxruntime" in text and "5 frames in" in text and "end-to-end latency p50" in text
    assert len(read_frames(tmp_path / "rec")) == 5


def test_exit_status_says_how_the_run_ended(exported, video, monkeypatch):
    from skinedge.cli import main
    from skinedge.runtime.live import command as loop

    _, _, models = exported
    argv = ["run", "--source", str(video), "--models", str(models), "--backend", "onnxruntime", "--no-display"]
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code in (0, None)  # the source ended
    real = loop.run_command
    for stopped, status in (("interrupted", 130), ("terminated", 143), ("capture failed", 1), ("max frames", 0)):
        monkeypatch.setattr(loop, "run_command", lambda *a, _s=stopped, **k: {**real(*a, **k), "stopped": _s})
        with pytest.raises(SystemExit) as ended:
            main(argv + ["--max-frames", "1"])
        assert (ended.value.code or 0) == status, stopped


def test_run_command_without_a_window_says_so_and_carries_on(exported, video, monkeypatch):
    view = pytest.importorskip("skinedge.runtime.sinks.view")
    monkeypatch.setattr(view, "window_available", lambda: False)
    _, _, models = exported
    lines = []
    summary = run_command(None, str(video), models, backend="onnxruntime", max_frames=2, log=lines.append)
    assert summary["frames"] == 2 and any(line.startswith("no window") for line in lines)


def test_run_command_serves_the_view_on_the_web(exported, video):
    pytest.importorskip("skinedge.runtime.sinks.web")
    _, _, models = exported
    lines = []
    summary = run_command(None, str(video), models, backend="onnxruntime", serve="127.0.0.1:0", no_display=True,
                          max_frames=2, log=lines.append)
    assert summary["frames"] == 2 and any(line.startswith("web viewer: http://127.0.0.1:") for line in lines)


@pytest.mark.parametrize("kwargs, message", [
    ({"camera": None, "source": None}, "exactly one of --camera N or --source URI"),
    ({"camera": 0, "source": "clip.avi"}, "exactly one of --camera N or --source URI"),
    ({"camera": None, "source": "clip.avi", "max_frames": 0}, "--max-frames must be a positive"),
    ({"camera": None, "source": "clip.avi", "serve": "host:port"}, "--serve expects HOST:PORT"),
    ({"camera": None, "source": "clip.avi", "record": Path("/no/such/folder/rec")}, "does not exist"),
])
def test_run_command_refuses_bad_options_before_loading_anything(kwargs, message, tmp_path):
    with pytest.raises(SkinedgeError, match=message.replace("(", r"\(")):
        run_command(models=tmp_path / "no-models", **kwargs)


# ------------------------------------------------------------------ sources
def test_a_sink_gets_every_frame_of_an_image_folder_with_all_stats(frames, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(frames[:6]):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), frame)
    sink = FakeSink()
    with open_source(str(folder)) as source:
        summary = run_live(source, FakePipeline(), [sink], backend="fake", variants={"seg": "fp32"})
    assert summary["frames"] == 6 and sink.closed
    for i, (raw, result, stats) in enumerate(sink.calls):
        assert np.array_equal(raw, frames[i]) and result is not None
        assert STATS_KEYS <= set(stats) and stats["frame"] == i and stats["signal"] is True
        assert stats["backend"] == "fake" and stats["variants"] == {"seg": "fp32"} and "images in" in stats["source"]
        assert stats["latency_ms"]["end_to_end"] > 0 and stats["latency_ms"]["seg"] == 1.0


def test_a_glob_reads_in_sorted_order_and_skips_unreadable_images_with_a_warning(frames, tmp_path):
    for i, frame in enumerate(frames[:4]):
        cv2.imwrite(str(tmp_path / f"b{3 - i}.png"), frame)  # b3, b2, b1, b0: sorted order is the reverse
    (tmp_path / "b15.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "b16.png"), frames[0][:8, :8])  # too small to use
    warnings, sink = [], FakeSink()
    with open_source(str(tmp_path / "b*.png"), log=warnings.append) as source:
        summary = run_live(source, FakePipeline(), [sink], warmup=False)
    assert summary["frames"] == 4 and len(warnings) == 2, warnings
    assert "b15.png: not an image" in warnings[0] and "b16.png: frame is 8×8" in warnings[1]
    assert all(np.array_equal(raw, frames[3 - i]) for i, (raw, _, _) in enumerate(sink.calls))


def test_bad_sources_are_one_clear_error_at_open(tmp_path):
    with pytest.raises(SkinedgeError, match=r"unsupported source 'xyz://cam': use camera://N, csi://N, /dev/videoN, "
                                            r"rtsp\(s\)://\.\.\., http\(s\)://"):
        open_source("xyz://cam")
    for uri in ("camera://99", "99", "/dev/video99", "v4l2://99"):
        with pytest.raises(SkinedgeError, match="camera 99"):
            open_source(uri)
    with pytest.raises(SkinedgeError, match="no such file, folder or glob"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "text.avi").write_text("hello")
    with pytest.raises(SkinedgeError, match="not a video OpenCV can read"):
        open_source(str(tmp_path / "text.avi"))
    with pytest.raises(SkinedgeError, match="camera number"):
        open_source("csi://front")
    assert source_uri(3, None) == "camera://3" and source_uri(None, "csi://0") == "csi://0"
    assert parse_serve("0.0.0.0:8080") == ("0.0.0.0", 8080) and parse_serve("8080") == ("127.0.0.1", 8080)
    assert parse_serve("[::1]:9000") == ("::1", 9000) and parse_serve(":9000") == ("127.0.0.1", 9000)


def test_csi_without_gstreamer_says_what_to_install():
    if has_gstreamer(cv2):
        pytest.skip("this OpenCV has GStreamer (a Jetson): csi:// would try a real camera")
    with pytest.raises(SkinedgeError, match="csi:// needs JetPack's OpenCV with GStreamer"):
        open_source("csi://0")


def test_max_frames_zero_or_negative_is_refused(frames):
    for bad in (0, -3):
        with pytest.raises(SkinedgeError, match="--max-frames must be a positive number of frames, got"):
            run_live(FakeCamera(frames), FakePipeline(), [], max_frames=bad)


def test_record_path_in_a_missing_or_read_only_folder_is_refused_before_the_run(tmp_path):
    with pytest.raises(SkinedgeError, match="does not exist; create it first"):
        check_record_path(tmp_path / "missing" / "rec")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SkinedgeError, match="is a file"):
        Recorder(tmp_path / "file")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes here")
        with pytest.raises(SkinedgeError, match="permission denied"):
            check_record_path(locked / "rec")
    finally:
        locked.chmod(0o755)


def test_a_video_cut_half_way_keeps_the_frames_before_the_cut(frames, video, tmp_path, capfd):
    cut = tmp_path / "cut.avi"
    data = video.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    warnings = []
    with open_source(str(cut), log=warnings.append) as source:
        summary = run_live(source, FakePipeline(), [], Recorder(tmp_path / "rec"), warmup=False)
    assert 0 < summary["frames"] < len(frames) and summary["stopped"] == "end of source"
    assert len(warnings) == 1 and "cut short or damaged" in warnings[0], warnings
    assert f"after {summary['frames']} of {len(frames)} frames" in warnings[0]
    assert "Traceback" not in capfd.readouterr().err
    raw = read_recording(tmp_path / "rec")
    assert len(raw) == summary["frames"]  # the frame the cut went through may be partly grey: not compared
    assert all(mad(r, f) < 8 for r, f in zip(raw[:-1], frames))


# ------------------------------------------------------------------ live: signal, reconnects, drops
def test_a_lost_camera_is_reconnected_and_the_sinks_hear_no_signal(frames):
    camera, sink, lines = FakeCamera(frames, period=0.005, fail_from=5, recover_after=2), FakeSink(), []
    summary = run_live(camera, FakePipeline(), [sink], max_frames=12, log=lines.append, warmup=False)
    assert summary["frames"] == 12 and summary["reconnects"] == 1 and summary["lost"] == 1
    assert camera.reopens == 2  # the first try failed: back-off 0.5 s, then 1 s
    silent = [stats for _, result, stats in sink.calls if result is None]
    assert silent and all(not s["signal"] and s["latency_ms"] == {} for s in silent)
    assert all(STATS_KEYS <= set(s) for _, _, s in sink.calls)
    assert sink.calls[-1][2]["signal"] is True
    assert any("no signal" in line for line in lines) and any("signal back" in line for line in lines)


def test_a_fast_camera_and_a_slow_consumer_drop_frames_and_count_them(frames):
    capture = LatestFrame(FakeCamera(frames, period=0.001)).start()
    try:
        indices = []
        for _ in range(5):
            time.sleep(0.05)
            indices.append(capture.get(1.0)[1])
    finally:
        capture.stop()
    assert indices == sorted(indices) and capture.dropped > 5
    assert capture.dropped + len(indices) + (capture._slot is not None) == capture.read_count


def test_a_file_is_not_dropped_unless_realtime(video, frames):
    with open_source(str(video)) as source:
        slow = run_live(source, FakePipeline(delay=0.01), [], warmup=False)
    assert slow["frames"] == len(frames) and slow["dropped"] == 0
    with open_source(str(video), fps=FPS) as source:
        source.fps = 500.0  # read at 500 fps, process at < 100: like a camera, the pipeline sees the newest
        fast = run_live(source, FakePipeline(delay=0.01), [], realtime=True, warmup=False)
    assert fast["dropped"] > 0 and fast["frames"] + fast["dropped"] <= len(frames)


def test_ctrl_c_closes_the_recording_and_the_sinks(frames, tmp_path):
    sink = FakeSink()
    summary = run_live(FakeCamera(frames), FakePipeline(interrupt_at=4), [sink], Recorder(tmp_path / "rec"),
                       log=lambda s: None, warmup=False)
    assert summary["stopped"] == "interrupted" and summary["frames"] == 3 and sink.closed
    assert len(read_recording(tmp_path / "rec")) == 3


def test_a_viewer_that_quits_ends_the_run(frames):
    sink = FakeSink(quit_after=2)
    summary = run_live(FakeCamera(frames), FakePipeline(), [sink], warmup=False)
    assert summary["stopped"] == "viewer closed" and summary["frames"] == 2


# ------------------------------------------------------------------ recorder survives a kill
KILLED = """
import sys, time
import numpy as np
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks.recorder import Recorder
rec = Recorder(sys.argv[1], max_frames=5)  # 5 frames a segment
rng = np.random.default_rng(0)
for i in range(12):
    frame = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    rec.write(frame, FrameResult(frame[:40, :50].copy(), True, (0, 0, 50, 40), 0.1, None, {"seg": 1.0}), i)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_killed_recorder_leaves_its_closed_segments_playable(tmp_path):
    rec = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED), str(rec)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    segments = [json.loads(line) for line in (rec / "segments.jsonl").read_text().splitlines()]
    assert [s["frames"] for s in segments] == [5, 5] and [s["first_index"] for s in segments] == [0, 5]
    assert len(read_recording(rec)) == 10
    enhanced = read_recording(rec, "enhanced")
    assert len(enhanced) == 10 and enhanced[0].shape[:2] == canvas_size((W, H))[::-1]
    assert len(read_frames(rec)) == 12
    assert (rec / "raw-00002.mkv").exists()  # the segment in progress: the only one a kill can cut


def test_segments_follow_the_wall_clock_and_frames_keep_their_real_times(frames, tmp_path):
    """A slow pipeline (5 frames/s) and 0.4-s segments: playback time equals wall time, frame by frame."""
    rec, period = tmp_path / "rec", 0.2
    recorder = Recorder(rec, segment_s=0.4)
    began = time.perf_counter()
    for i in range(8):
        at = time.perf_counter()
        frame = frames[i]
        recorder.write(frame, FrameResult(frame, True, (0, 0, W, H), 0.1, None, {"seg": 1.0}), i, at=at)
        time.sleep(max(0.0, began + (i + 1) * period - time.perf_counter()))
    time.sleep(0.6)  # no frames: the timer closes the open segment on time all the same
    segments = closed_segments(rec)
    recorder.close()
    wall = time.perf_counter() - began
    assert 3 <= len(segments) <= 5 and sum(s["frames"] for s in segments) == 8
    for seg in segments:
        pts, duration = timestamps(rec / seg["raw"])
        assert len(pts) == seg["frames"] + seg["carried"] and abs(duration - seg["seconds"]) < 0.01
        assert 0.35 <= seg["seconds"] <= 0.7  # 0.4 s, up to a timer tick (0.25 s) later
        gaps = np.diff(pts)[seg["carried"]:]  # (a carried frame is shown from the previous segment's close)
        assert np.all((gaps > 0.15) & (gaps < 0.3)), pts  # 0.2 s apart: the real pace, not 1/fps
    assert closed_segments(rec) == segments  # the timer had closed the last one: close() adds nothing
    for a, b in zip(segments, segments[1:]):  # back to back: the recording covers the wall time without gaps
        assert abs(a["start"] + a["seconds"] - b["start"]) < 0.05
    span = 7 * period  # first to last frame; the last frame then lasts until its segment's time is up
    total = sum(s["seconds"] for s in segments)
    assert span < total <= span + 0.4 + 0.3 < wall, (total, span, wall, segments)
    records = read_frames(rec)
    assert [r["pts_ms"] for r in records if r["segment"] == 0][0] == 0
    gaps = np.diff([r["captured"] for r in records])
    assert np.all(np.abs(gaps - period) < 0.05), gaps


def test_capture_thread_stops_promptly_while_reconnecting(frames, monkeypatch):
    monkeypatch.setattr(capture_mod, "BACKOFF_S", (5.0, 8.0))
    camera = FakeCamera(frames, fail_from=0, recover_after=99)
    capture = LatestFrame(camera).start()
    time.sleep(0.1)
    began = time.perf_counter()
    assert capture.stop() and time.perf_counter() - began < 1.0
    assert not capture.signal and capture.lost == 1 and capture.reconnects == 0
