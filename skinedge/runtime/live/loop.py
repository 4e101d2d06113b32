"""``skinedge run``'s display loop: newest frame → frame function → sinks → recorder, until the source ends or
Ctrl-C. The frame function is chosen by :mod:`skinedge.runtime.live.command`: with two loops it is the display
step (:mod:`skinedge.runtime.live.display`), the networks running beside it (:mod:`skinedge.runtime.live.sr_loop`).

The loop is short on purpose (jetson-inference's ``segnet.py`` shape): the
capture thread (:mod:`skinedge.runtime.live.capture`) hides cameras, drops and
reconnects; the sinks (:mod:`skinedge.runtime.sinks`) hide windows and
browsers; the recorder (:mod:`skinedge.runtime.sinks.recorder`) hides files. What is
left here is timing: latency is measured end to end, from the moment the
frame left the camera to the moment its result exists — the number a user
feels, not the network time alone — and fps is counted on finished frames.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.live.capture import STALE_S, LatestFrame
from skinedge.runtime.live.display import Pacer
from skinedge.runtime.live.flicker import FlickerMeter
from skinedge.runtime.live.stats import Meter
from skinedge.runtime.live.sources import Source
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks import Sink
from skinedge.runtime.sinks.recorder import Recorder

IDLE_S = 0.5  # with no signal the sinks hear from the loop at ~2 Hz
BLACK = np.zeros((480, 640, 3), np.uint8)  # the raw image shown with "no signal" before any frame came


def check_max_frames(max_frames: int | None) -> None:
    """``--max-frames`` must be a positive count (or absent: run until the source ends)."""
    if max_frames is not None and max_frames <= 0:
        raise SkinedgeError(f"--max-frames must be a positive number of frames, got {max_frames}")


def run_live(source: Source, pipeline: Callable[[np.ndarray], FrameResult], sinks: list[Sink],
             recorder: Recorder | None = None, max_frames: int | None = None, log: Callable[[str], None] = print,
             *, realtime: bool = False, backend: str = "", variants: dict | None = None,
             warmup: bool = True, watchdog=None) -> dict:
    """Run the live loop; closes the sinks and the recorder (not the source) when it ends.

    Args:
        source: an open source (:func:`~skinedge.runtime.live.sources.open_source`).
        pipeline: an activated :class:`~skinedge.runtime.pipeline.host.Pipeline` (or any frame → FrameResult).
        sinks: each gets ``show(raw, result, stats)`` per frame, and ``result=None`` at ~2 Hz without signal.
            A sink whose ``quit`` attribute turns True (window closed, 'q') ends the run.
        recorder: writes raw frames, enhanced views and the frame logs.
        max_frames: stop after this many processed frames (None: until the source ends or Ctrl-C).
        realtime: read a file or folder at its own fps and drop what the pipeline cannot keep up with.
        warmup: run the first frame once untimed, so one-off start-up cost does not count as latency.
        watchdog: a :class:`~skinedge.runtime.live.watchdog.Watchdog` told of every shown frame (systemd).
    Returns:
        Summary: frames, dropped, the signal (state, lost, reconnects, last_lost, last_reconnect, frame_age_s),
        latency_p50_ms / p95 / p99 (end to end), fps (mean), stage_p50_ms, seconds, stopped (end of source |
        max frames | viewer closed | interrupted | terminated | capture failed: see ``EXIT_CODES``), source,
        flicker (the enhanced view's temporal instability against a bicubic up-scale's,
        :mod:`skinedge.runtime.live.flicker`), and how many frames ran the segmenter and the generator
        (``segmented``, ``computed``; the rest reused earlier work).
    """
    check_max_frames(max_frames)
    loop = _Loop(source, pipeline, sinks, recorder, realtime=realtime, log=log, warmup=warmup,
                 info={"source": source.describe(), "backend": backend, "variants": dict(variants or {})})
    loop.watchdog = watchdog
    stopped, started = "end of source", time.perf_counter()
    stack = ExitStack()
    try:
        stack.enter_context(_warnings_to(log))
        stack.enter_context(_terminate_as_interrupt())
        loop.capture.start()
        while max_frames is None or loop.meter.frames < max_frames:
            if any(getattr(sink, "quit", False) for sink in sinks):
                stopped = "viewer closed"
                break
            got = loop.capture.get(IDLE_S)
            if got is None and loop.capture.ended:
                stopped = "capture failed" if loop.capture.error else stopped
                break
            loop.step(got)
        else:
            stopped = "max frames"
    except Terminated:
        stopped = "terminated"
        log("terminated (SIGTERM): closing the recording and the viewers")
    except KeyboardInterrupt:
        stopped = "interrupted"
        log("interrupted (Ctrl-C): closing the recording and the viewers")
    finally:
        loop.capture.stop()
        if watchdog is not None:
            watchdog.stopping()
        _close(sinks, recorder, log)
        stack.close()
    return {**loop.meter.summary(), "dropped": loop.capture.dropped, **loop.signal_stats(),
            "seconds": round(time.perf_counter() - started, 2), "stopped": stopped,
            "source": loop.info["source"], "flicker": loop.flicker.summary(), **loop.work()}


# How `skinedge run` ends, as its exit status: scripts tell a finished run from an interrupted or failed one.
EXIT_CODES = {"end of source": 0, "max frames": 0, "viewer closed": 0, "interrupted": 130, "terminated": 143,
              "capture failed": 1}


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, systemd, kill): stop like Ctrl-C, closing the recording."""


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises :class:`Terminated` in the main thread while the loop runs (elsewhere: left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _warnings_to(log: Callable[[str], None]):
    """Python warnings raised by libraries during the run go to our log as one line each, not raw to stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log(
            f"warning: {category.__name__}: {message} ({Path(filename).name}:{lineno})")
        yield


class _Loop:
    """The state of one run: capture thread, meter, the last frame (shown greyed while there is no signal)."""

    def __init__(self, source: Source, pipeline: Callable[[np.ndarray], FrameResult], sinks: list[Sink],
                 recorder: Recorder | None, *, realtime: bool, log: Callable[[str], None], warmup: bool, info: dict):
        self.capture = LatestFrame(source, realtime=realtime, log=log)
        self.pipeline, self.sinks, self.recorder, self.warmup, self.info = pipeline, sinks, recorder, warmup, info
        self.meter, self.raw, self.index, self.latency = Meter(), BLACK, -1, {}
        self.paused = False  # the recorder was told the signal is gone
        self.flicker = FlickerMeter()
        self.segmented = self.computed = 0
        self.sr_age: float | None = None  # of the last frame shown
        self.watchdog = None
        self.pacer = None
        hold_intervals = getattr(pipeline, "hold_intervals", None)
        if hold_intervals:  # the two-loop display: a constant delay, capped in camera frame intervals
            self.pacer = Pacer(hold_intervals * 1000.0 / (source.fps or 30.0))

    def signal_stats(self) -> dict:
        """The source's signal: state (live | stale | no signal), losses, comebacks and when the last was."""
        c = self.capture
        return {"state": c.state, "lost": c.lost, "reconnects": c.reconnects,
                "last_lost": _iso(c.last_lost), "last_reconnect": _iso(c.last_reconnect),
                "frame_age_s": round(c.frame_age(), 2)}

    def work(self) -> dict:
        """Frames that ran the segmenter / the generator (the others reused earlier frames' work); with two
        loops, the SR loop's counts (it takes the newest frame whenever it is free)."""
        sr_loop = getattr(self.pipeline, "sr_loop", None)
        if sr_loop is not None:
            return {"segmented": sr_loop.counts["segmented"], "computed": sr_loop.counts["computed"],
                    "sr_loop_error": sr_loop.error}
        return {"segmented": self.segmented, "computed": self.computed}

    def step(self, got: tuple[np.ndarray, int] | None) -> None:
        """One frame through pipeline → sinks → recorder; with no frame, tell the sinks if the signal is gone."""
        if got is None:
            if not self.capture.signal:
                if self.recorder is not None and not self.paused:  # the last frame was live until it went stale
                    self.recorder.pause(min(time.perf_counter(), self.capture.stamp + STALE_S))
                self.paused = True
                _show(self.sinks, self.raw, None, self.stats({}, signal=False))
            else:  # stale: the last view stays up; the stats (state, frame age) still move
                stats = self.stats(self.latency, signal=True)
                for sink in self.sinks:
                    getattr(sink, "status", lambda stats: None)(stats)
            return
        self.raw, self.index = got
        self.paused = False
        if self.warmup and self.meter.frames == 0:
            self.pipeline(self.raw)
            self.capture.stamp = max(self.capture.stamp, time.perf_counter())  # waiting for warm-up is not latency
        result = self.pipeline(self.raw)
        if self.pacer is not None:
            self.pacer.hold(self.capture.stamp)
        end_to_end = (time.perf_counter() - self.capture.stamp) * 1000
        self.meter.add(result.timings_ms, end_to_end, result.sr_age_ms)
        self.sr_age = result.sr_age_ms
        self.segmented += bool(result.segmented)
        self.computed += bool(result.found and result.computed)
        self.flicker.add(self.raw, result)
        self.latency = {**result.timings_ms, "end_to_end": end_to_end}
        _show(self.sinks, self.raw, result, self.stats(self.latency, signal=True))
        if self.recorder is not None:
            self.recorder.write(self.raw, result, self.index, end_to_end, at=self.capture.stamp)
        if self.watchdog is not None:
            self.watchdog.frame()

    def stats(self, latency: dict, *, signal: bool) -> dict:
        """What every sink gets with each frame (the keys are the Sink contract)."""
        return {"frame": self.index, "fps": self.meter.fps(), "latency_ms": latency, "sr_age_ms": self.sr_age,
                "dropped": self.capture.dropped, "signal": signal,
                "recording": None if self.recorder is None else self.recorder.state, **self.signal_stats(),
                **self.info}


def _iso(epoch: float | None) -> str | None:
    """Epoch seconds → local ISO 8601 time with its offset (None stays None)."""
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _show(sinks: list[Sink], raw: np.ndarray, result: FrameResult | None, stats: dict) -> None:
    for sink in sinks:
        sink.show(raw, result, stats)


def _close(sinks: list[Sink], recorder: Recorder | None, log: Callable[[str], None]) -> None:
    """Close the recorder first (it holds the data), then every sink, each even if another fails."""
    for thing in ([recorder] if recorder is not None else []) + list(reversed(sinks)):
        try:
            thing.close()
        except Exception as exc:  # noqa: BLE001 - one failing sink must not leave the others (or files) open
            log(f"closing {type(thing).__name__} failed: {exc}")


def format_summary(summary: dict) -> str:
    """The run's summary in four lines, for the terminal."""
    stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_p50_ms"].items() if k != "total")
    flicker = summary.get("flicker") or {}
    steady = (f"flicker {flicker['flicker_enhanced']:.2f} vs bicubic {flicker['flicker_bicubic']:.2f} grey levels "
              f"({flicker['flicker_excess']:+.2f}) over {flicker['pairs']} frame pairs"
              if flicker.get("pairs") else "flicker: fewer than 2 comparable frames")
    age = (f"; an earlier frame's SR shown on {summary['sr_shown']}, its age p50 {summary['sr_age_p50_ms']:.0f} ms, "
           f"p95 {summary['sr_age_p95_ms']:.0f} ms" if summary.get("sr_shown") else "")
    return (f"{summary['frames']} frames in {summary['seconds']:.1f} s ({summary['stopped']}): "
            f"{summary['fps']:.1f} fps, end-to-end latency p50 {summary['latency_p50_ms']:.1f} ms, "
            f"p95 {summary['latency_p95_ms']:.1f} ms, p99 {summary.get('latency_p99_ms', 0.0):.1f} ms\n"
            f"dropped {summary['dropped']}, signal lost {summary['lost']}×, reconnected {summary['reconnects']}×"
            f"{' (last at ' + summary['last_reconnect'] + ')' if summary.get('last_reconnect') else ''}; "
            f"segmenter ran on {summary.get('segmented', 0)}, generator on {summary.get('computed', 0)} frames"
            f"{age}\n{steady}\n"
            f"stage p50 (ms): {stages or 'none'}")
