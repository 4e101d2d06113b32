"""Record a live run by the wall clock: the raw frames, the enhanced views and one JSON line per frame.

Layout of ``PATH/``::

    raw-00000.mkv, raw-00001.mkv, ...            the camera frames (MJPEG in Matroska, the frame size)
    enhanced-00000.mkv, enhanced-00001.mkv, ...  the enhanced views, letterboxed onto a fixed canvas
    frames-00000.jsonl, ...  per frame of the segment: index, captured (wall-clock time the camera gave it),
                     pts_ms (its time in the segment), found, roi, lesion_area, residual, timings_ms,
                     end_to_end_ms, sr_age_ms (two loops: how much older the frame of the SR shown was), segment
    segments.jsonl   one line per closed segment still on disk: files, frames, first index, start, seconds, bytes
    segment-00000.provenance.json, ...  per closed segment: the provenance record (models, their sha256,
                     settings; :mod:`skinedge.runtime.clinical.provenance`) with the sha256 of the segment's files

Why the wall clock: a pipeline slower than its camera enhances fewer frames
than the camera sends (a 15 fps stream, < 1 frame/s enhanced on a small CPU).
A container written at the camera's nominal rate would play those frames 20×
too fast, and segments counted in frames would close once every few minutes.
So every frame keeps its real capture time as its timestamp (variable frame
rate: Matroska stores a timestamp per frame, which OpenCV's writer cannot), and
a segment closes every ``segment_s`` seconds of wall time — by a timer, also
while the pipeline is busy with a frame or the camera is gone — or at
``max_frames`` frames. A frame lasts until the next one (or until its segment
closes), so a segment's duration is the wall time it covers and playback runs at
real speed. When the timer closed a segment while a frame was on screen, the
next segment starts at that moment with that frame again (``carried`` in
segments.jsonl): segments follow each other without gaps. After a gap longer
than a segment (no signal) the next one starts with the next frame.

Why segments: a video file is only complete once its writer has closed it. A
run killed by SIGKILL, power loss or the OOM killer never closes its file, so
each segment is closed properly before the next starts and ``segments.jsonl``
names the closed ones: a kill loses only the segment in progress (at most
``segment_s`` seconds plus the frame being enhanced). A segment's frame log is
flushed after every line. Frames are JPEG-encoded by OpenCV and muxed as they
are by PyAV (FFmpeg's Matroska muxer): no re-encoding, no codec licensing.

Why nothing grows with run time: the frame log rotates with the segments, and
``keep`` (``--record-keep``, :mod:`skinedge.runtime.sinks.storage`) deletes the
oldest closed segments (all their files) and rewrites segments.jsonl to name
only what is left. A full disk (or any failing write) pauses the recording:
the segment in progress is dropped (an unclosed file is not playable), the
closed ones stay as they were, the live view goes on, ``state`` says
"recording paused: disk full", and the recorder looks once a second whether a
segment fits again, then resumes by itself.

The enhanced view's size follows the lesion ROI, but a video needs one size:
each view is scaled (aspect kept) and centred on a black canvas of twice the
raw frame size, capped at ``max_canvas`` pixels on the long side.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks import letterbox
from skinedge.runtime.sinks.storage import MIN_RESERVE, Keep, disk_full, free_bytes, human_bytes

SEGMENT_S = 10.0
MAX_SEGMENT_FRAMES = 1800  # a segment also closes after this many frames (a minute at 30 fps)
MAX_CANVAS = 1280  # long side of the enhanced canvas: ×2 of a VGA camera, a 1080p one scaled down
JPEG_QUALITY = 90
TICK_S = 0.25  # how often the timer looks whether the open segment's time is up
RETRY_S = 1.0  # paused: how often a frame looks whether a segment fits again
MS = Fraction(1, 1000)  # timestamps in milliseconds
STREAMS = ("raw", "enhanced")


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
        if any((path / name).exists() for name in ("segments.jsonl", "frames.jsonl")) or any(path.glob("raw-*.*")):
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


def _pyav():
    try:
        import av
    except ImportError:
        raise SkinedgeError("--record needs PyAV to write timestamped video: pip install 'skinedge[cpu]' "
                            "(or pip install av)") from None
    return av


class Recorder:
    """``Recorder(path)``; ``write(raw, result, index, at=...)`` per processed frame; ``close()`` at the end.

    Args:
        path: a new (or empty) folder; its parent must exist and be writable.
        segment_s: wall-clock seconds per segment.
        max_frames: a segment also closes at this many frames.
        clock: the monotonic clock that ``at`` is read on (``time.perf_counter``).
        keep: how much of the past to keep on disk (``--record-keep``); None keeps everything.
        reserve: free bytes a new segment needs (None: twice the largest segment so far, at least
            :data:`~skinedge.runtime.sinks.storage.MIN_RESERVE`).
    Thread-safe: a timer thread closes segments on time while ``write`` may be running.
    ``state`` is "recording" or "recording paused: <why>" (disk full, a failing write).
    """

    def __init__(self, path: str | os.PathLike, *, segment_s: float = SEGMENT_S,
                 max_frames: int = MAX_SEGMENT_FRAMES, max_canvas: int = MAX_CANVAS, quality: int = JPEG_QUALITY,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.perf_counter,
                 provenance: dict | None = None, keep: Keep | None = None, reserve: int | None = None):
        import cv2  # noqa: F401 - fail here, before the run, if OpenCV is missing

        self._av = _pyav()
        if not segment_s > 0 or max_frames < 1:
            raise SkinedgeError(f"a recording segment needs a positive length, got {segment_s} s / {max_frames} "
                                "frames")
        self.path = check_record_path(path)
        self.segment_s, self.max_frames, self.max_canvas, self.quality = segment_s, max_frames, max_canvas, quality
        self.log, self.clock, self.provenance, self.keep, self.reserve = log, clock, provenance, keep, reserve
        self.path.mkdir(exist_ok=True)
        self._segments = open(self.path / "segments.jsonl", "a", encoding="utf-8")
        self.kept: list[dict] = []  # segments.jsonl's lines: the closed segments on disk, oldest first
        self.frames, self.segment, self.largest = 0, -1, 0
        self.state, self.pauses, self._retry_at = "recording", 0, 0.0
        self.size: tuple[int, int] | None = None
        self.canvas: tuple[int, int] | None = None
        self._open: _Segment | None = None
        self._carry: tuple[dict, int, float] | None = None  # the frame on screen when the timer closed a segment
        self._last: tuple[dict, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick_forever, name="skinedge-recorder", daemon=True)
        self._timer.start()

    def write(self, raw: np.ndarray, result: FrameResult, index: int, end_to_end_ms: float | None = None, *,
              at: float | None = None) -> None:
        """Add one frame (uint8 BGR) and its enhanced view, captured at ``at`` (``clock`` seconds; now if None).

        The raw size is fixed by the first frame. While the recording is paused the frame is not written.
        """
        import cv2

        at = self.clock() if at is None else at
        if self.size is None:
            self.size = (raw.shape[1], raw.shape[0])
            self.canvas = canvas_size(self.size, self.max_canvas)
        if self.state != "recording" and not self._may_resume():
            return
        jpegs = {}
        for stream, image, size in (("raw", raw, self.size), ("enhanced", result.image, self.canvas)):
            ok, buf = cv2.imencode(".jpg", letterbox(image, size), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise SkinedgeError(f"cannot encode a {stream} frame for the recording")
            jpegs[stream] = buf.tobytes()
        with self._lock:
            if self._segments.closed or self.state != "recording":
                return
            try:
                seg = self._open
                if seg is None or at - seg.start >= self.segment_s or seg.frames >= self.max_frames:
                    self._close_segment(at)
                    if free_bytes(self.path) < self._reserve():
                        raise OSError(errno.ENOSPC, "less free space than a segment needs")
                    seg = self._open = self._new_segment(at, index)
                pts = seg.add(jpegs, at)
                seg.log(_line(result, index, end_to_end_ms, self.segment, self._wall(at), pts))
            except (OSError, SkinedgeError, self._av.error.FFmpegError) as exc:
                self._pause_on(exc)
                return
            self._last = (jpegs, index)
            self.frames += 1

    def tick(self, now: float | None = None) -> None:
        """Close the open segment if its wall time is up (the timer calls this every ``TICK_S``)."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._open is not None and now - self._open.start >= self.segment_s:
                try:
                    self._close_segment(now)
                except (OSError, SkinedgeError, self._av.error.FFmpegError) as exc:
                    self._pause_on(exc)
                    return
                self._carry = (*self._last, now)

    def pause(self, now: float | None = None) -> None:
        """The signal is gone: close the open segment at ``now`` (when the last frame stopped being live); the
        next frame starts a new one (no carried frame, so a gap without signal stays a gap in the recording,
        never a frozen picture)."""
        now = self.clock() if now is None else now
        with self._lock:
            self._carry = None
            if self._open is not None and not self._segments.closed:
                try:
                    self._close_segment(now)
                except (OSError, SkinedgeError, self._av.error.FFmpegError) as exc:
                    self._pause_on(exc)

    def _tick_forever(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - anything else: say so; the run goes on without the timer
                self.log(f"recording: closing a segment failed: {exc}")
                return

    def _reserve(self) -> int:
        return self.reserve if self.reserve is not None else max(MIN_RESERVE, 2 * self.largest)

    def _pause_on(self, exc: BaseException) -> None:
        """A write failed: drop the segment in progress (never a half-written file beside the closed ones),
        pause, and say so once; :meth:`_may_resume` looks again once a second."""
        seg, self._open, self._carry = self._open, None, None
        dropped = ""
        if seg is not None:
            seg.discard()
            dropped = f"; segment {seg.number:05d} in progress dropped"
        full = disk_full(exc)
        self.state = "recording paused: " + ("disk full" if full else f"cannot write ({exc})")
        self.pauses += 1
        self._retry_at = self.clock() + RETRY_S
        self.log(f"{self.state} ({human_bytes(self._free())} free in {self.path}, a segment needs "
                 f"{human_bytes(self._reserve())}){dropped}; the live view goes on, recording resumes when "
                 "space returns")

    def _may_resume(self) -> bool:
        """Paused: whether a segment fits again (looked at once a second); resumes the recording if so."""
        now = self.clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_S
        free = self._free()
        if free < self._reserve():
            return False
        with self._lock:
            self.state = "recording"
        self.log(f"recording resumed: {human_bytes(free)} free in {self.path}")
        return True

    def _free(self) -> int:
        try:
            return free_bytes(self.path)
        except OSError:
            return 0

    def _new_segment(self, at: float, index: int) -> "_Segment":
        """A segment from ``at``; from the timer's close instead, with the frame then on screen, when that was
        less than a segment ago."""
        self.segment += 1
        sizes = {"raw": self.size, "enhanced": self.canvas}
        carry, self._carry = self._carry, None
        # (A frame captured before the timer's close but enhanced after it starts just after that close.)
        if carry is not None and at - carry[2] < self.segment_s:
            jpegs, carried_index, since = carry
            seg = _Segment(self._av, self.path, self.segment, sizes, since, carried_index, self._wall(since))
            seg.add(jpegs, since)
            seg.frames, seg.carried = 0, 1  # shown again, not a new frame
            return seg
        return _Segment(self._av, self.path, self.segment, sizes, at, index, self._wall(at))

    def _close_segment(self, at: float) -> None:
        """Close the open segment at ``at`` (so it is complete on disk), name it in segments.jsonl, then keep
        to ``keep``."""
        seg, self._open = self._open, None
        if seg is None:
            return
        try:
            seconds = seg.close(at)
        except BaseException:
            seg.discard()
            raise
        entry = {"segment": seg.number, **{s: seg.files[s].name for s in STREAMS}, "frames_log": seg.log_file.name,
                 "frames": seg.frames, "carried": seg.carried, "first_index": seg.first_index,
                 "start": round(seg.wall_start, 4), "seconds": round(seconds, 3), "closed": True}
        if self.provenance is not None:
            entry["provenance"] = self._sidecar(seg, entry)
        entry["bytes"] = sum((self.path / entry[k]).stat().st_size for k in (*STREAMS, "frames_log", "provenance")
                             if k in entry)
        self.largest = max(self.largest, entry["bytes"])
        self._segments.write(json.dumps(entry) + "\n")
        self._segments.flush()
        self.kept.append(entry)
        if self.keep is not None:
            self._keep_to(self.keep.over(self.kept, time.time()))

    def _keep_to(self, drop: list[dict]) -> None:
        """Delete the oldest closed segments ``drop`` (every file of each) and rewrite segments.jsonl to name
        what is left (atomically: a kill mid-way leaves the old index or the new one)."""
        if not drop:
            return
        from skinedge.atomic import write_bytes_atomic

        for entry in drop:
            for key in (*STREAMS, "frames_log", "provenance"):
                if key in entry:
                    (self.path / entry[key]).unlink(missing_ok=True)
        gone = {e["segment"] for e in drop}
        self.kept = [e for e in self.kept if e["segment"] not in gone]
        self._segments.close()
        write_bytes_atomic(self.path / "segments.jsonl", "".join(json.dumps(e) + "\n" for e in self.kept).encode())
        self._segments = open(self.path / "segments.jsonl", "a", encoding="utf-8")
        numbers = ", ".join(f"{e['segment']:05d}" for e in drop)
        self.log(f"recording: removed the oldest segment(s) {numbers} ({human_bytes(sum(e['bytes'] for e in drop))}; "
                 f"{self.keep.describe()}, {len(self.kept)} kept, "
                 f"{human_bytes(sum(e['bytes'] for e in self.kept))})")

    def _sidecar(self, seg: "_Segment", entry: dict) -> str:
        """Write the segment's provenance sidecar (atomically) and return its name."""
        from skinedge.atomic import sha256_file, write_bytes_atomic

        name = f"segment-{seg.number:05d}.provenance.json"
        files = [seg.files[s] for s in STREAMS] + [seg.log_file]
        record = {**self.provenance, "segment": {**{k: entry[k] for k in ("segment", "frames", "first_index",
                                                                           "start", "seconds")},
                                                 "files": {f.name: sha256_file(f) for f in files}}}
        write_bytes_atomic(self.path / name, (json.dumps(record, indent=1) + "\n").encode())
        return name

    def _wall(self, at: float) -> float:
        """``clock`` seconds → wall-clock (epoch) seconds."""
        return time.time() - (self.clock() - at)

    def close(self) -> None:
        """Close the last segment and the index; safe to call twice."""
        self._stop.set()
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join(timeout=2)
        with self._lock:
            if self._segments.closed:
                return
            try:
                self._close_segment(self.clock())
            except (OSError, SkinedgeError, self._av.error.FFmpegError) as exc:
                self.log(f"recording: the last segment could not be closed ({exc}); the closed ones are complete")
            finally:
                self._segments.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frames(path: str | os.PathLike) -> list[dict]:
    """Every frame line of a recording, in segment order (the frame logs of kept and open segments)."""
    lines = []
    for log in sorted(Path(path).glob("frames-*.jsonl")):
        lines += [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


class _Segment:
    """One Matroska file per stream and the segment's frame log. Each packet is muxed when the next frame
    arrives (or at close), so it carries its real duration; the timestamps are milliseconds since the segment's
    first frame."""

    def __init__(self, av, folder: Path, number: int, sizes: dict, start: float, first_index: int,
                 wall_start: float):
        self.number, self.start, self.first_index, self.wall_start = number, start, first_index, wall_start
        self.frames, self.carried, self._last_pts = 0, 0, -1
        self._av = av
        self.files = {s: folder / f"{s}-{number:05d}.mkv" for s in STREAMS}
        self.log_file = folder / f"frames-{number:05d}.jsonl"
        self._containers, self._streams, self._pending = {}, {}, {}
        self._lines = None
        try:
            for s in STREAMS:
                container = av.open(str(self.files[s]), "w", format="matroska")
                self._containers[s] = container
                stream = container.add_stream("mjpeg")
                stream.width, stream.height = sizes[s]
                stream.pix_fmt = "yuvj420p"
                stream.time_base = MS
                self._streams[s] = stream
            self._lines = open(self.log_file, "a", encoding="utf-8")
        except BaseException:
            self.discard()
            raise

    def add(self, jpegs: dict[str, bytes], at: float) -> int:
        """Mux the previous frame (now that its duration is known) and hold this one; its pts (ms)."""
        pts = max(self._last_pts + 1, round((at - self.start) * 1000))
        for s in STREAMS:
            packet = self._av.Packet(jpegs[s])
            packet.stream = self._streams[s]
            packet.pts = packet.dts = pts
            packet.time_base = MS
            packet.is_keyframe = True
            self._flush(s, pts)
            self._pending[s] = packet
        self._last_pts, self.frames = pts, self.frames + 1
        return pts

    def log(self, line: dict) -> None:
        """One frame's line, flushed (a kill keeps every line of the frames written)."""
        self._lines.write(json.dumps(line) + "\n")
        self._lines.flush()

    def _flush(self, stream: str, until_pts: int) -> None:
        packet = self._pending.pop(stream, None)
        if packet is not None:
            packet.duration = max(1, until_pts - packet.pts)
            self._containers[stream].mux(packet)

    def close(self, at: float) -> float:
        """Write the held frames (lasting until ``at``) and close the files; the segment's seconds."""
        end = max(self._last_pts + 1, round((at - self.start) * 1000))
        for s in STREAMS:
            self._flush(s, end)
            self._containers.pop(s).close()
        self._lines.close()
        return end / 1000

    def discard(self) -> None:
        """Close what is open without caring for errors and delete the segment's files (it never closed)."""
        for thing in [*self._containers.values(), *([self._lines] if self._lines is not None else [])]:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - already failing (a full disk): the files go anyway
                pass
        self._containers = {}
        for file in [*self.files.values(), self.log_file]:
            file.unlink(missing_ok=True)


def _line(result: FrameResult, index: int, end_to_end_ms: float | None, segment: int, captured: float,
          pts_ms: int) -> dict:
    """One frame log record: plain JSON types only."""
    return {
        "index": int(index),
        "time": round(time.time(), 4),
        "captured": round(captured, 4),
        "pts_ms": int(pts_ms),
        "found": bool(result.found),
        "roi": [int(v) for v in result.roi] if result.roi is not None else None,
        "lesion_area": round(float(result.lesion_area), 6),
        "residual": None if result.residual is None else round(float(result.residual), 3),
        "sr_input_scale": round(float(result.sr_input_scale), 4),
        "segmented": bool(result.segmented),
        "computed": bool(result.found and result.computed),
        "sr_age_ms": None if result.sr_age_ms is None else round(float(result.sr_age_ms), 1),
        "timings_ms": {k: round(float(v), 3) for k, v in result.timings_ms.items()},
        "end_to_end_ms": None if end_to_end_ms is None else round(float(end_to_end_ms), 3),
        "segment": segment,
    }
