"""Sinks: the composed live view, the window sink on a headless machine, the web viewer, and a real headless Chromium.

WindowSink's contract on a machine without a GUI: construction raises a one-line SkinedgeError that names
--no-display / --serve; a loop that wants to carry on without a window checks window_available() first.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.pipeline.mask import LesionMask, lesion_mask

cv2 = pytest.importorskip("cv2")
from skinedge.runtime.sinks import view  # noqa: E402 (needs cv2)
from skinedge.runtime.sinks.view import WindowSink, compose_view, status_lines, window_available  # noqa: E402
from skinedge.runtime.sinks.web import BOUNDARY, WebSink, parse_serve  # noqa: E402

H, W, S = 240, 320, 64
CENTRE, RADIUS = (150, 110), 40
LESION_BGR = (30, 40, 90)
STATS = {"frame": 7, "fps": 12.5, "latency_ms": {"preprocess": 1.0, "seg": 4.0, "mask": 0.5, "sr": 9.0,
                                                   "composite": 1.5, "total": 16.0},
         "dropped": 3, "signal": True, "source": "file:clip.mp4", "backend": "onnxruntime",
         "variants": {"seg": "int8", "sr": "fp16"}}
NO_SIGNAL = dict(STATS, latency_ms={}, signal=False)


def frame(shift: int = 0) -> np.ndarray:
    """A 240×320 BGR frame: blue/red gradient (no green), a dark lesion disc."""
    yy, xx = np.mgrid[:H, :W]
    raw = np.dstack([(xx * 200 // W + shift) % 256, np.full((H, W), 60), yy * 200 // H]).astype(np.uint8)
    cv2.circle(raw, CENTRE, RADIUS, LESION_BGR, -1)
    return raw


def found_result(raw: np.ndarray) -> FrameResult:
    my, mx = np.mgrid[:S, :S]
    dist = np.hypot((mx + 0.5) * W / S - CENTRE[0], (my + 0.5) * H / S - CENTRE[1])
    lm = lesion_mask((1.0 - dist / RADIUS).astype(np.float32), (H, W))
    assert lm.found
    x0, y0, rw, rh = lm.roi
    image = cv2.resize(raw[y0:y0 + rh, x0:x0 + rw], (rw * 4, rh * 4), interpolation=cv2.INTER_CUBIC)
    return FrameResult(image, True, lm.roi, lm.area, lm, dict(STATS["latency_ms"]))


def no_lesion_result(raw: np.ndarray) -> FrameResult:
    empty = LesionMask(False, np.zeros((S, S), np.uint8), np.zeros((S, S), np.float32), None, 0.0)
    image = cv2.resize(raw, (W * 4, H * 4), interpolation=cv2.INTER_LINEAR)
    return FrameResult(image, False, None, 0.0, empty, {}, "no lesion found: smooth up-scale only")


def greenish(img: np.ndarray) -> np.ndarray:
    b, g, r = (img[..., i].astype(int) for i in range(3))
    return (g > 150) & (b < 100) & (r < 100)


# --- compose_view -------------------------------------------------------------------------------------------------

def test_compose_view_found_lesion_draws_outline_roi_and_enhanced_view():
    raw = frame()
    result = found_result(raw)
    out = compose_view(raw, result, STATS)
    ph, pw = 360, 480  # a 240-high frame is shown 360 high (the minimum panel height)
    assert out.dtype == np.uint8 and out.shape[1] == 2 * pw and out.shape[0] > ph and out.shape[2] == 3
    left, right, bar = out[:ph, :pw], out[:ph, pw:], out[ph:]
    ys, xs = np.nonzero(greenish(left))
    assert len(xs) > 100  # the outline is drawn ...
    r = np.hypot(xs - CENTRE[0] * 1.5, ys - CENTRE[1] * 1.5)
    assert np.median(r) == pytest.approx(RADIUS * 1.5, abs=6)  # ... on the lesion's edge
    x0, y0, rw, rh = result.roi
    yellow = (left[..., 1] > 150) & (left[..., 2] > 150) & (left[..., 0] < 100)
    assert yellow[round(y0 * 1.5) + 2:round((y0 + rh) * 1.5) - 2, round(x0 * 1.5)].mean() > 0.8  # the ROI box
    centre = right[ph // 2 - 10:ph // 2 + 10, pw // 2 - 10:pw // 2 + 10].reshape(-1, 3).mean(0)
    assert np.abs(centre - LESION_BGR).max() < 8  # the enhanced ROI is centred in its panel
    assert bar.std() > 10  # the status text is there
    assert np.array_equal(out, compose_view(raw, result, STATS))
    assert compose_view(raw, result, STATS, height=200).shape[:2] == (200 + 3 * 16 + 8, 2 * 267)


def test_compose_view_without_lesion_shows_the_smooth_upscale_and_no_outline():
    raw = frame()
    out = compose_view(raw, no_lesion_result(raw), STATS)
    ph, pw = 360, 480
    assert not greenish(out[:ph, :pw]).any()
    expected = cv2.resize(raw, (pw, ph), interpolation=cv2.INTER_AREA).astype(int)
    diff = np.abs(out[40:ph, pw + 4:].astype(int) - expected[40:, 4:])  # below the panel label
    assert diff.mean() < 3
    assert "no lesion" in status_lines(no_lesion_result(raw), STATS)[0]


def test_compose_view_no_signal_is_dark_labelled_and_deterministic():
    raw = frame()
    out = compose_view(raw, None, NO_SIGNAL)
    assert out.shape == compose_view(raw, found_result(raw), STATS).shape  # a stream keeps its size
    ph, pw = 360, 480
    label = out[ph // 2 - 40:ph // 2 + 40, pw - 200:pw + 200]
    assert label.std() > 40 and len(np.unique(label.reshape(-1, 3), axis=0)) > 4  # "NO SIGNAL" is written there
    bright = cv2.resize(raw, (pw, ph), interpolation=cv2.INTER_AREA)
    assert out[40:100, 10:100].mean() < 0.5 * bright[40:100, 10:100].mean()  # the last frame, darkened
    assert np.array_equal(out, compose_view(raw, None, NO_SIGNAL))
    grey = compose_view(None, None, NO_SIGNAL)  # no frame at all: a grey canvas
    assert grey.shape[:2] == (480 + 3 * 22 + 11, 1280)
    assert grey[200:280, 440:840].std() > 40
    assert "NO SIGNAL" in status_lines(None, NO_SIGNAL)[0]


def test_compose_view_frame_layouts():
    raw = frame()
    gray = compose_view(cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY), None, NO_SIGNAL)
    assert gray.shape == compose_view(raw, None, NO_SIGNAL).shape
    with pytest.raises(SkinedgeError, match="uint8 BGR"):
        compose_view(raw.astype(np.float32), None, NO_SIGNAL)


def test_status_lines_end_to_end_and_stages():
    first, stages, backend = status_lines(None, STATS)
    assert "fps 12.5" in first and "e2e 16.0 ms" in first and "dropped 3" in first
    assert stages == "stages ms: preprocess 1.0 | seg 4.0 | mask 0.5 | sr 9.0 | composite 1.5"
    assert backend.startswith("backend onnxruntime seg=int8 sr=fp16")
    assert "e2e 40.0 ms" in status_lines(None, dict(STATS, latency_ms={"e2e": 40.0, "seg": 4.0}))[0]
    live = status_lines(None, dict(STATS, latency_ms={"seg": 4.0, "total": 9.0, "end_to_end": 33.0}))  # live.py's
    assert "e2e 33.0 ms" in live[0] and live[1] == "stages ms: seg 4.0"
    assert "e2e -" in status_lines(None, NO_SIGNAL)[0]


# --- window -------------------------------------------------------------------------------------------------------

def test_window_sink_refuses_clearly_on_a_headless_machine():
    if window_available():
        pytest.skip("this OpenCV has a GUI and a display: a window would open")
    with pytest.raises(SkinedgeError, match="--no-display") as info:
        WindowSink()
    assert "\n" not in str(info.value)


def test_window_available_reads_the_build_and_the_display(monkeypatch):
    monkeypatch.setattr(view.cv2, "getBuildInformation", lambda: "  GUI:                           NONE\n")
    assert not window_available()
    monkeypatch.setattr(view.cv2, "getBuildInformation", lambda: "  GUI:                           GTK3\n")
    monkeypatch.setattr(view.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not window_available()
    monkeypatch.setenv("DISPLAY", ":0")
    assert window_available()


# --- web ----------------------------------------------------------------------------------------------------------

def get(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def read_part(stream) -> bytes:
    """The next JPEG of an MJPEG response whose opening boundary line was already read."""
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    jpeg = stream.read(int(headers["content-length"]))
    assert stream.readline() == b"\r\n" and stream.readline() == b"--" + BOUNDARY + b"\r\n"
    return jpeg


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


class Feeder:
    """Shows frames from a thread until stopped: ``make(i) -> (raw, result)``."""

    def __init__(self, sink, make, stats=STATS, period: float = 0.03, count: int | None = None):
        self.sink, self.make, self.stats, self.period, self.count = sink, make, stats, period, count
        self.stop, self.shown = threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set() and (self.count is None or self.shown < self.count):
            raw, result = self.make(self.shown)
            self.sink.show(raw, result, dict(self.stats, frame=self.shown))
            self.shown += 1
            time.sleep(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def moving(i: int):
    raw = frame(shift=5 * i)
    return raw, (found_result(raw) if i % 2 else no_lesion_result(raw))


def test_web_sink_serves_page_stats_frame_and_stream():
    with WebSink(port=0) as sink, Feeder(sink, moving, stats=dict(STATS, fps=float("nan"))) as feeder:
        assert sink.port > 0 and sink.url == f"http://127.0.0.1:{sink.port}/"
        while feeder.shown < 3:
            time.sleep(0.01)
        code, ctype, page = get(sink.url)
        assert code == 200 and ctype.startswith("text/html")
        assert b'<img id="view" src="/stream.mjpg"' in page and b'id="stats"' in page and b"http" not in page
        code, ctype, body = get(sink.url + "stats.json")
        stats = json.loads(body)
        assert ctype == "application/json" and stats["fps"] is None  # NaN is sent as null: JSON.parse takes it
        assert stats["shown"] >= 3 and stats["e2e_ms"] == 16.0 and stats["backend"] == "onnxruntime"
        shape = compose_view(frame(), None, NO_SIGNAL).shape
        assert (stats["view"]["height"], stats["view"]["width"]) == shape[:2]
        code, ctype, body = get(sink.url + "frame.jpg")
        assert ctype == "image/jpeg" and decode(body).shape == shape
        with urllib.request.urlopen(sink.url + "stream.mjpg", timeout=10) as stream:
            assert stream.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
            assert stream.readline() == b"--" + BOUNDARY + b"\r\n"
            assert decode(read_part(stream)).shape == shape
            assert decode(read_part(stream)).shape == shape
            assert sink.clients == 1
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(sink.url + "nothing-here")
    sink.show(frame(), None, NO_SIGNAL)  # after close: ignored, no error


def test_web_sink_before_the_first_frame():
    with WebSink(port=0) as sink:
        with pytest.raises(urllib.error.HTTPError, match="503"):
            get(sink.url + "frame.jpg")
        assert json.loads(get(sink.url + "stats.json")[2])["shown"] == 0


def test_stream_skips_to_the_newest_frame_and_close_unblocks_it():
    """A client that stops reading gets the newest frame next, not the frames it missed."""
    def coded(i: int):  # the top half's colour says which frame it is; a noisy bottom makes big JPEGs
        raw = np.random.default_rng(i).integers(0, 256, (H, W, 3), np.uint8)
        raw[:H // 2] = (0, 0, 8 * i)
        return raw, no_lesion_result(raw)

    def index(img: np.ndarray) -> int:
        return round(float(img[60:120, 100:200, 2].mean()) / 8)

    with WebSink(port=0) as sink:
        sink.show(*coded(1), STATS)
        stream = urllib.request.urlopen(sink.url + "stream.mjpg", timeout=10)
        stream.readline()
        assert index(decode(read_part(stream))) == 1
        for i in range(2, 31):  # the client reads nothing meanwhile
            sink.show(*coded(i), STATS)
        seen = []
        while not seen or seen[-1] != 30:
            seen.append(index(decode(read_part(stream))))
        assert seen == sorted(seen) and len(seen) <= 10, seen  # what the sockets buffered, then the newest
        start = time.perf_counter()
        sink.close()
        with pytest.raises((OSError, AssertionError, KeyError)):
            read_part(stream)  # the stream ends (EOF or reset) instead of waiting for a frame
        assert time.perf_counter() - start < 2
        stream.close()
    with WebSink(port=sink.port):  # the port is free again
        pass


def test_port_in_use_is_one_clear_line():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(SkinedgeError) as info:
            WebSink(port=port)
        assert str(info.value) == f"port {port} on 127.0.0.1 is in use: choose another with --serve HOST:PORT"
    finally:
        taken.close()


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), (":9000", ("127.0.0.1", 9000)), ("8081", ("127.0.0.1", 8081)),
    ("0.0.0.0:0", ("0.0.0.0", 0)), ("localhost:80", ("localhost", 80)), ("[::1]:8080", ("::1", 8080)),
    (" 8080 ", ("127.0.0.1", 8080)),
])
def test_parse_serve(value, expected):
    assert parse_serve(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "host:", "host:abc", "70000", "-1", "1:2:3", "::1:8080",
                                   "http://localhost:8080", "a b:80", "host:80:80", ":"])
def test_parse_serve_rejects_bad_values_clearly(value):
    with pytest.raises(SkinedgeError, match="HOST:PORT") as info:
        parse_serve(value)
    assert repr(value) in str(info.value) and "\n" not in str(info.value)


# --- a real browser -----------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1000,700", "--virtual-time-budget=3000"]
ORANGE = (0, 160, 255)  # BGR of the served frames' background


def pattern(i: int):
    """A moving blue disc on orange: colours the page itself never uses."""
    raw = np.empty((H, W, 3), np.uint8)
    raw[:] = ORANGE
    cv2.circle(raw, (60 + (7 * i) % 200, H // 2), 30, (255, 0, 0), -1)
    return raw, no_lesion_result(raw)


def chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          timeout=90, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Chromium at /usr/bin/chromium")
def test_headless_chromium_shows_the_live_view_and_the_stats(tmp_path):
    with WebSink(port=0) as sink, Feeder(sink, pattern):
        shot = tmp_path / "page.png"
        run = chromium([f"--screenshot={shot}", sink.url], tmp_path / "profile")
        assert shot.exists(), run.stderr.decode(errors="replace")[-2000:]
        dom = chromium(["--dump-dom", sink.url], tmp_path / "profile").stdout.decode(errors="replace")
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (700, 1000) and img.std() > 20
    near = lambda colour: (np.abs(img.astype(int) - colour).max(axis=2) < 40).mean()  # noqa: E731
    assert near(ORANGE) > 0.2, "the served frame is not on the page"  # both panels of the view
    assert near((255, 0, 0)) > 0.005  # the disc
    stats = re.search(r'<pre id="stats">(.*?)</pre>', dom, re.S)
    assert stats, dom[-2000:]
    text = stats.group(1)  # filled in by the page's fetch('/stats.json')
    assert "fps 12.5" in text and "e2e 16.0 ms" in text and "backend onnxruntime" in text and "viewers" in text
