"""Record a live run: the raw frames, the enhanced views and one JSON line per frame.

Layout of ``PATH/``::

    raw-00000.avi, raw-00001.avi, ...            the camera frames (MJPG, the frame size)
    enhanced-00000.avi, enhanced-00001.avi, ...  the enhanced views, letterboxed onto a fixed canvas
    frames.jsonl     per frame: index, time, found, roi, lesion_area, residual (the consistency residual, 0–255),
                     timings_ms, end_to_end_ms, segment
    segments.jsonl   one line per segment once it is closed: files, frame count, first frame index

Why segments: an AVI (like an MP4) is only complete once its writer has put
the index and the final sizes into it on close. A run killed by SIGKILL, power
loss or the OOM killer never closes its file. So the recording is cut into
short segments (``segment_s`` seconds of frames, 10 s by default); each is
closed properly before the next one starts, and ``segments.jsonl`` names the
closed ones. A kill can only cut the segment in progress — the last few seconds
(FFmpeg still reads most of those frames; OpenCV's own MJPEG reader refuses a
file without its index). MJPG (every frame a JPEG) is written by OpenCV's
built-in encoder, present in every OpenCV build including JetPack's, with no
codec licensing or FFmpeg needed. ``frames.jsonl`` is flushed after every line,
so it survives a kill up to the last whole frame.

The enhanced view's size follows the lesion ROI, but a video needs one size:
each view is scaled (aspect kept) and centred on a black canvas of twice the
raw frame size, capped at ``max_canvas`` pixels on the long side.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks import letterbox

SEGMENT_S = 10.0
MAX_CANVAS = 1280  # long side of the enhanced canvas: ×2 of a VGA camera, a 1080p one scaled down
FOURCC = "MJPG"


def check_record_path(path: str | os.PathLike) -> Path:
    """The recording folder, refused in one line when it cannot be written — before the run starts.

    Raises:
        SkinedgeError: the parent folder is missing or not writable, the path is a file, or it holds an
            earlier recording (never overwritten).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SkinedgeError(f"--record {path}: is a file; give a folder for the recording")
    if path.is_dir():
        if (path / "frames.jsonl").exists() or any(path.glob("raw-*.avi")):
            raise SkinedgeError(f"--record {path}: holds an earlier recording; choose a new folder")
        target = path
    else:
        target = path.parent if str(path.parent) else Path(".")
        if not target.is_dir():
            raise SkinedgeError(f"--record {path}: folder {target} does not exist; create it first")
    if not os.access(target, os.W_OK | os.X_OK):
        raise SkinedgeError(f"--record {path}: cannot write in {target} (permission denied)")
    return path


def canvas_size(frame_wh: tuple[int, int], max_side: int = MAX_CANVAS) -> tuple[int, int]:
    """(width, height) of the enhanced canvas: twice the frame, long side capped, both even."""
    w, h = frame_wh[0] * 2, frame_wh[1] * 2
    k = min(1.0, max_side / max(w, h))
    return max(2, int(w * k) // 2 * 2), max(2, int(h * k) // 2 * 2)


class Recorder:
    """``Recorder(path, fps)``; ``write(raw, result, index)`` per processed frame; ``close()`` at the end.

    Args:
        path: a new (or empty) folder; its parent must exist and be writable.
        fps: the frame rate written into the videos (the source's nominal rate; the true capture
            times are in ``frames.jsonl``).
        segment_s: seconds of frames (at ``fps``) per segment.
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, segment_s: float = SEGMENT_S,
                 max_canvas: int = MAX_CANVAS, log: Callable[[str], None] = print):
        import cv2  # noqa: F401 - fail here, before the run, if OpenCV is missing

        if not fps or fps <= 0:
            raise SkinedgeError(f"recording frame rate must be positive, got {fps}")
        self.path = check_record_path(path)
        self.fps, self.max_canvas, self.log = float(fps), max_canvas, log
        self.segment_frames = max(1, round(self.fps * segment_s))
        self.path.mkdir(exist_ok=True)
        self._lines = open(self.path / "frames.jsonl", "a", encoding="utf-8")
        self._segments = open(self.path / "segments.jsonl", "a", encoding="utf-8")
        self.frames, self.segment, self._in_segment, self._first = 0, -1, 0, 0
        self.size: tuple[int, int] | None = None
        self.canvas: tuple[int, int] | None = None
        self._writers: dict = {}

    def write(self, raw: np.ndarray, result: FrameResult, index: int, end_to_end_ms: float | None = None) -> None:
        """Add one frame (uint8 BGR) and its enhanced view; the raw size is fixed by the first frame."""
        if self.size is None:
            self.size = (raw.shape[1], raw.shape[0])
            self.canvas = canvas_size(self.size, self.max_canvas)
        if not self._writers or self._in_segment >= self.segment_frames:
            self._roll(index)
        self._writers["raw"].write(letterbox(raw, self.size))
        self._writers["enhanced"].write(letterbox(result.image, self.canvas))
        self._lines.write(json.dumps(_line(result, index, end_to_end_ms, self.segment)) + "\n")
        self._lines.flush()
        self.frames += 1
        self._in_segment += 1

    def _roll(self, index: int) -> None:
        """Close the segment in progress (so it is complete on disk), then start the next."""
        self._close_segment()
        self.segment += 1
        self._in_segment, self._first = 0, index
        self._writers = {"raw": self._writer("raw", self.size), "enhanced": self._writer("enhanced", self.canvas)}

    def _writer(self, stream: str, size: tuple[int, int]):
        import cv2

        file = self.path / f"{stream}-{self.segment:05d}.avi"
        writer = cv2.VideoWriter(str(file), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*FOURCC), self.fps, size)
        if not writer.isOpened():
            raise SkinedgeError(f"cannot write the recording {file} (disk full or not writable?)")
        return writer

    def _close_segment(self) -> None:
        if not self._writers:
            return
        for writer in self._writers.values():
            writer.release()
        self._writers = {}
        entry = {"segment": self.segment, "raw": f"raw-{self.segment:05d}.avi",
                 "enhanced": f"enhanced-{self.segment:05d}.avi", "frames": self._in_segment,
                 "first_index": self._first, "closed": True}
        self._segments.write(json.dumps(entry) + "\n")
        self._segments.flush()

    def close(self) -> None:
        """Close the last segment and the logs; safe to call twice."""
        if self._lines.closed:
            return
        self._close_segment()
        self._lines.close()
        self._segments.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _line(result: FrameResult, index: int, end_to_end_ms: float | None, segment: int) -> dict:
    """One frames.jsonl record: plain JSON types only."""
    return {
        "index": int(index),
        "time": round(time.time(), 4),
        "found": bool(result.found),
        "roi": [int(v) for v in result.roi] if result.roi is not None else None,
        "lesion_area": round(float(result.lesion_area), 6),
        "residual": None if result.residual is None else round(float(result.residual), 3),
        "sr_input_scale": round(float(result.sr_input_scale), 4),
        "segmented": bool(result.segmented),
        "computed": bool(result.found and result.computed),
        "timings_ms": {k: round(float(v), 3) for k, v in result.timings_ms.items()},
        "end_to_end_ms": None if end_to_end_ms is None else round(float(end_to_end_ms), 3),
        "segment": segment,
    }
