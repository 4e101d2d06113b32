"""Frame sources behind one URI, after jetson-utils' ``videoSource`` convention.

``open_source(uri)`` dispatches on the URI and returns a :class:`Source` whose
``read()`` gives uint8 BGR H×W×3 frames::

    camera://0, 0          a camera by index (V4L2 on Linux: /dev/video0)
    /dev/video0, v4l2://0  a V4L2 camera (``v4l2:///dev/video0`` too)
    csi://0                a Jetson CSI camera through GStreamer (JetPack's OpenCV)
    rtsp://..., http(s)://...  a network stream (FFmpeg)
    clip.mp4, file://clip.avi  a video file
    frames/, "frames/*.png"    an image folder or a glob, in sorted order

Opening checks what can be checked at once (the camera exists, the file opens),
so a typo is one clear line before the models load, not a silent empty window.
OpenCV is imported lazily: image folders need only Pillow.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.data.imageio import IMAGE_SUFFIXES, read_rgb
from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import as_bgr, check_frame

# FFmpeg prints its own decoder chatter ("overread", "invalid frame") for every damaged
# packet; we report a damaged file in one line ourselves. Set before FFmpeg is first used;
# OPENCV_FFMPEG_LOGLEVEL=16 in the environment brings FFmpeg's errors back (e.g. to debug RTSP).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # AV_LOG_FATAL
STREAM_TIMEOUTS_MS = (10_000, 5_000)  # open, read: a dead stream fails (and reconnects) instead of hanging

UNSUPPORTED = ("unsupported source {uri!r}: use camera://N, csi://N, /dev/videoN, rtsp(s)://..., http(s)://..., "
               "a video file or an image folder")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
CSI_PIPELINE = ("nvarguscamerasrc sensor-id={n} ! video/x-raw(memory:NVMM),width={w},height={h},framerate={fps}/1 ! "
                "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
                "appsink drop=true max-buffers=1")


def _warn(text: str) -> None:
    print(f"skinedge: warning: {text}", file=sys.stderr)


def _cv2():
    """OpenCV, or a one-line error: pip's ``opencv-python-headless`` or, on Jetson, JetPack's OpenCV."""
    try:
        import cv2
    except ImportError:
        raise SkinedgeError("video sources need OpenCV: pip install opencv-python-headless "
                            "(on a Jetson use JetPack's OpenCV)") from None
    return cv2


class Source:
    """A frame source: ``read()`` gives uint8 BGR H×W×3, or None (end of a finite source, or a lost frame).

    ``live`` is True for cameras and streams (frames keep coming, drop the old
    ones, reconnect when lost) and False for files and folders (every frame
    counts, the end is the end). ``fps`` is the nominal rate, None if unknown.
    """

    live: bool = False
    fps: float | None = None

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def reopen(self) -> None:
        """Start again after a lost signal (live) — a no-op for finite sources."""

    def close(self) -> None:
        """Release the device or file."""

    def describe(self) -> str:
        raise NotImplementedError

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CaptureSource(Source):
    """Anything ``cv2.VideoCapture`` opens: camera index, device path, GStreamer pipeline, stream URL, video file.

    A video file that ends before its header's frame count (cut short or
    damaged half-way) says so in one warning line; the frames before are kept.
    """

    def __init__(self, target: int | str, api: int, *, label: str, live: bool, size: tuple | None = None,
                 fps: float | None = None, params: tuple[int, ...] = (), log: Callable[[str], None] = _warn):
        self.target, self.api, self.label, self.live, self.log = target, api, label, live, log
        self.params = list(params)
        self.size, self.want_fps = size, fps
        self.cap = None
        self.read_count, self.expected, self._warned = 0, 0, False
        self._open()

    def _open(self) -> None:
        cv2 = _cv2()
        args = (self.target, self.api, self.params) if self.params else (self.target, self.api)
        cap = _quiet(lambda: cv2.VideoCapture(*args))
        if not cap.isOpened():
            cap.release()
            raise SkinedgeError(self._open_error())
        if self.live:
            _apply_settings(cv2, cap, self.size, self.want_fps)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else self.want_fps
        self.expected = 0 if self.live else max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.cap = cap

    def _open_error(self) -> str:
        if "csi://" in self.label:
            return (f"cannot open {self.label}: is the sensor connected and nvargus-daemon running "
                    "(in a container: -v /tmp/argus_socket:/tmp/argus_socket)?")
        if self.label.startswith("camera"):
            return f"cannot open {self.label} (in use by another program, or no permission?); {_camera_hint()}"
        if self.label.startswith("stream"):
            return f"cannot open {self.label}: check the address, the network and the credentials"
        return f"cannot open {self.label}: not a video OpenCV can read (is it damaged, or an unsupported codec?)"

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        # A stream's read timeout makes OpenCV print a raw "[ WARN ...] Stream timeout triggered" line; the capture
        # thread reports the gap in our log instead.
        ok, frame = _quiet(self.cap.read) if self.live else self.cap.read()
        if not ok or frame is None or frame.size == 0:
            self._check_end()
            return None
        self.read_count += 1
        return as_bgr(frame)

    def _check_end(self) -> None:
        """One warning when a file ends well before the frame count in its header (cut or damaged)."""
        slack = max(1, self.expected // 50)  # some containers only estimate their frame count
        if self.live or self._warned or not self.expected or self.read_count >= self.expected - slack:
            return
        self._warned = True
        self.log(f"{self.label} ended after {self.read_count} of {self.expected} frames: the file is cut short or "
                 f"damaged; the {self.read_count} readable frames were used")

    def reopen(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        self._open()

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def describe(self) -> str:
        rate = f" @ {self.fps:g} fps" if self.fps else ""
        frames = f", {self.expected} frames" if self.expected else ""
        return f"{self.label}{frames}{rate}"


class ImageSource(Source):
    """Image files in a fixed order; an unreadable one is skipped with a warning line."""

    def __init__(self, paths: list[Path], label: str, fps: float | None = None,
                 log: Callable[[str], None] = _warn):
        self.paths, self.label, self.fps, self.log = paths, label, fps, log
        self.position = 0

    def read(self) -> np.ndarray | None:
        while self.position < len(self.paths):
            path = self.paths[self.position]
            self.position += 1
            try:
                rgb, _ = read_rgb(path)
                check_frame(rgb)
            except SkinedgeError as exc:  # DataError (unreadable) or a frame too small to use
                self.log(f"skipping {path}: {str(exc).removeprefix(f'{path.name}: ')}")
                continue
            return np.ascontiguousarray(rgb[:, :, ::-1])
        return None

    def describe(self) -> str:
        return f"{self.label} ({len(self.paths)} images)"


def open_source(uri: str, width: int | None = None, height: int | None = None, fps: float | None = None, *,
                log: Callable[[str], None] = _warn) -> Source:
    """Open a frame source named by a jetson-utils style URI.

    Args:
        uri: ``camera://N``, ``N``, ``/dev/videoN``, ``v4l2://N``, ``csi://N``, ``rtsp://…``, ``http(s)://…``,
            a video file (``file://`` prefix accepted), an image folder or a glob.
        width, height, fps: capture settings asked of cameras (ignored by files); ``fps`` also paces
            image folders in real-time mode.
        log: where warnings go (skipped images, a damaged video).
    Returns:
        An open :class:`Source`.
    Raises:
        SkinedgeError: unknown scheme, a camera that does not exist, a file that does not open, no images.
    """
    size = (width, height) if width or height else None
    kind, value = parse_source(uri)
    if kind == "camera":
        return _camera(value, size, fps, log)
    if kind == "csi":
        return _csi(value, size, fps, log)
    if kind == "stream":
        cv2 = _cv2()
        timeouts = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUTS_MS[0], cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    STREAM_TIMEOUTS_MS[1])
        return CaptureSource(value, cv2.CAP_FFMPEG, label=f"stream {value}", live=True, size=size, fps=fps,
                             params=timeouts, log=log)
    return _path_source(value, fps, log)


def parse_source(uri: str) -> tuple[str, int | str]:
    """What a ``--source`` names, without touching a device, a file or the network: ``("camera", N)``,
    ``("csi", N)``, ``("stream", url)`` or ``("path", text)``.

    Raises:
        SkinedgeError: an unknown scheme, a camera number that is not one, a NUL or a control character.
    """
    text = str(uri).strip()
    if not text:
        raise SkinedgeError("--source is empty; use camera://N, csi://N, /dev/videoN, a stream URL, a video file "
                            "or an image folder")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SkinedgeError(f"source {text!r}: holds a control character")
    if text.isdigit() or text.startswith("camera://"):
        return "camera", _index(text.removeprefix("camera://"), text)
    if text.startswith("v4l2://"):
        return "camera", _index(text.removeprefix("v4l2://").removeprefix("/dev/video"), text)
    if text.startswith("/dev/video"):
        return "camera", _index(text.removeprefix("/dev/video"), text)
    if text.startswith("csi://"):
        return "csi", _index(text.removeprefix("csi://"), text)
    if text.startswith(STREAM_SCHEMES):
        return "stream", text
    if text.startswith("file://"):
        return "path", text.removeprefix("file://")
    if "://" in text:
        raise SkinedgeError(UNSUPPORTED.format(uri=text))
    return "path", text


def _index(text: str, uri: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 6:  # "²" is a digit to str.isdigit, not to int()
        raise SkinedgeError(f"{uri!r}: the camera number must be a non-negative integer (e.g. csi://0, /dev/video0)")
    return int(text)


def _camera(index: int, size: tuple | None, fps: float | None, log) -> Source:
    """A V4L2 camera (Linux) or the platform's default camera API, checked to exist now."""
    cv2 = _cv2()
    if sys.platform.startswith("linux"):
        device = f"/dev/video{index}"
        if not os.path.exists(device):
            raise SkinedgeError(f"camera {index} not found (no {device}); {_camera_hint()}")
        return CaptureSource(device, cv2.CAP_V4L2, label=f"camera {index} ({device})", live=True, size=size,
                             fps=fps, log=log)
    return CaptureSource(index, cv2.CAP_ANY, label=f"camera {index}", live=True, size=size, fps=fps, log=log)


def _csi(index: int, size: tuple | None, fps: float | None, log) -> Source:
    """A Jetson CSI camera: nvarguscamerasrc through GStreamer, which pip's OpenCV wheels do not have."""
    cv2 = _cv2()
    if not has_gstreamer(cv2):
        raise SkinedgeError("csi:// needs JetPack's OpenCV with GStreamer (pip's opencv-python has none): "
                            "on the Jetson, pip uninstall opencv-python-headless and use the system's python3-opencv")
    w, h = (size[0] or 1920, size[1] or 1080) if size else (1920, 1080)
    pipeline = CSI_PIPELINE.format(n=index, w=w, h=h, fps=int(fps or 30))
    return CaptureSource(pipeline, cv2.CAP_GSTREAMER, label=f"camera csi://{index}", live=True, fps=fps, log=log)


def has_gstreamer(cv2) -> bool:
    """Whether this OpenCV was built with GStreamer (``Video I/O: GStreamer: YES``)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1].upper()
    return False


def _path_source(text: str, fps: float | None, log) -> Source:
    """A video file, an image file, an image folder or a glob."""
    path = Path(text).expanduser()
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SkinedgeError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(paths, f"images in {path}", fps, log)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSource([path], f"image {path}", fps, log)
        cv2 = _cv2()
        return CaptureSource(str(path), cv2.CAP_FFMPEG, label=f"video {path}", live=False, log=log)
    if any(c in text for c in "*?["):
        paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file())
        if not paths:
            raise SkinedgeError(f"no files match {text!r}")
        return ImageSource(paths, f"images matching {text}", fps, log)
    raise SkinedgeError(f"source {text!r}: no such file, folder or glob; use camera://N, csi://N, /dev/videoN, "
                        "rtsp(s)://..., http(s)://..., a video file or an image folder")



def _apply_settings(cv2, cap, size: tuple | None, fps: float | None) -> None:
    """Ask the camera for a size and rate; cameras round to what they support, so this is a wish."""
    if size and size[0]:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(size[0]))
    if size and size[1]:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(size[1]))
    if fps:
        cap.set(cv2.CAP_PROP_FPS, float(fps))


def _camera_hint() -> str:
    """The cameras this machine has, to make the right number obvious."""
    found = sorted(glob.glob("/dev/video*"))
    listed = ", ".join(found) if found else "none"
    return f"cameras present: {listed} (a Jetson CSI camera is csi://N)"


def _quiet(make):
    """Run ``make()`` with OpenCV's own warning lines off: our error says it better, in one line."""
    cv2 = _cv2()
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        return make()
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return make()
    finally:
        logging.setLogLevel(old)
