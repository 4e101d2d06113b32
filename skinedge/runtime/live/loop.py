"""``skinedge run``: newest frame → pipeline → sinks → recorder, until the source ends or Ctrl-C.

The loop is short on purpose (jetson-inference's ``segnet.py`` shape): the
capture thread (:mod:`skinedge.runtime.live.capture`) hides cameras, drops and
reconnects; the sinks (:mod:`skinedge.runtime.sinks`) hide windows and
browsers; the recorder (:mod:`skinedge.runtime.sinks.recorder`) hides files. What is
left here is timing: latency is measured end to end, from the moment the
frame left the camera to the moment its result exists — the number a user
feels, not the network time alone — and fps is counted on finished frames.
"""

from __future__ import annotations

import importlib
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
from skinedge.runtime.live.flicker import FlickerMeter
from skinedge.runtime.live.reuse import TemporalReuse
from skinedge.runtime.live.stats import Meter
from skinedge.runtime.live.sources import Source, open_source
from skinedge.runtime import provenance
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline.budget import BudgetControl, parse_budget, set_budget_measured
from skinedge.runtime.pipeline.host import FrameResult, Pipeline
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.session import open_session
from skinedge.runtime.sinks import Sink
from skinedge.runtime.sinks.recorder import SEGMENT_S, Recorder, check_record_path

IDLE_S = 0.5  # with no signal the sinks hear from the loop at ~2 Hz
BLACK = np.zeros((480, 640, 3), np.uint8)  # the raw image shown with "no signal" before any frame came


def check_max_frames(max_frames: int | None) -> None:
    """``--max-frames`` must be a positive count (or absent: run until the source ends)."""
    if max_frames is not None and max_frames <= 0:
        raise SkinedgeError(f"--max-frames must be a positive number of frames, got {max_frames}")


def run_live(source: Source, pipeline: Callable[[np.ndarray], FrameResult], sinks: list[Sink],
             recorder: Recorder | None = None, max_frames: int | None = None, log: Callable[[str], None] = print,
             *, realtime: bool = False, backend: str = "", variants: dict | None = None,
             warmup: bool = True) -> dict:
    """Run the live loop; closes the sinks and the recorder (not the source) when it ends.

    Args:
        source: an open source (:func:`~skinedge.runtime.live.sources.open_source`).
        pipeline: an activated :class:`~skinedge.runtime.pipeline.host.Pipeline` (or any frame → FrameResult).
        sinks: each gets ``show(raw, result, stats)`` per frame, and ``result=None`` at ~2 Hz without signal.
            A sink whose ``quit`` attribute turns True (window closed, 'q') ends the run.
        recorder: writes raw frames, enhanced views and frames.jsonl.
        max_frames: stop after this many processed frames (None: until the source ends or Ctrl-C).
        realtime: read a file or folder at its own fps and drop what the pipeline cannot keep up with.
        warmup: run the first frame once untimed, so one-off start-up cost does not count as latency.
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

    def signal_stats(self) -> dict:
        """The source's signal: state (live | stale | no signal), losses, comebacks and when the last was."""
        c = self.capture
        return {"state": c.state, "lost": c.lost, "reconnects": c.reconnects,
                "last_lost": _iso(c.last_lost), "last_reconnect": _iso(c.last_reconnect),
                "frame_age_s": round(c.frame_age(), 2)}

    def work(self) -> dict:
        """Frames that ran the segmenter / the generator (the others reused earlier frames' work)."""
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
        end_to_end = (time.perf_counter() - self.capture.stamp) * 1000
        self.meter.add(result.timings_ms, end_to_end)
        self.segmented += bool(result.segmented)
        self.computed += bool(result.found and result.computed)
        self.flicker.add(self.raw, result)
        self.latency = {**result.timings_ms, "end_to_end": end_to_end}
        _show(self.sinks, self.raw, result, self.stats(self.latency, signal=True))
        if self.recorder is not None:
            self.recorder.write(self.raw, result, self.index, end_to_end, at=self.capture.stamp)

    def stats(self, latency: dict, *, signal: bool) -> dict:
        """What every sink gets with each frame (the keys are the Sink contract)."""
        return {"frame": self.index, "fps": self.meter.fps(), "latency_ms": latency,
                "dropped": self.capture.dropped, "signal": signal, **self.signal_stats(), **self.info}


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
    return (f"{summary['frames']} frames in {summary['seconds']:.1f} s ({summary['stopped']}): "
            f"{summary['fps']:.1f} fps, end-to-end latency p50 {summary['latency_p50_ms']:.1f} ms, "
            f"p95 {summary['latency_p95_ms']:.1f} ms, p99 {summary.get('latency_p99_ms', 0.0):.1f} ms\n"
            f"dropped {summary['dropped']}, signal lost {summary['lost']}×, reconnected {summary['reconnects']}×"
            f"{' (last at ' + summary['last_reconnect'] + ')' if summary.get('last_reconnect') else ''}; "
            f"segmenter ran on {summary.get('segmented', 0)}, generator on {summary.get('computed', 0)} frames\n"
            f"{steady}\n"
            f"stage p50 (ms): {stages or 'none'}")


# ---------------------------------------------------------------------- the command
def source_uri(camera: int | None, source: str | None) -> str:
    """``--camera N`` or ``--source URI`` (exactly one) as one URI."""
    if (camera is None) == (source is None):
        raise SkinedgeError("give exactly one of --camera N or --source URI (e.g. --camera 0, --source csi://0, "
                            "--source clip.mp4)")
    if camera is not None:
        if camera < 0:
            raise SkinedgeError(f"--camera must be a camera number (0, 1, ...), got {camera}")
        return f"camera://{camera}"
    return str(source)


def parse_serve(serve: str) -> tuple[str, int]:
    """``--serve`` → (host, port), by the web viewer's rules (127.0.0.1 unless a host is named)."""
    return _sink_module("web", "the web viewer", "install skinedge[cpu]").parse_serve(serve)


def _sink_module(name: str, what: str, fix: str):
    """``skinedge.runtime.sinks.NAME``, imported only when that sink is wanted."""
    module = f"skinedge.runtime.sinks.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = "it is not in this install" if exc.name == module else f"it needs {exc.name}, which is missing"
        raise SkinedgeError(f"{what} ({module}) cannot be loaded: {missing}; {fix}") from None


def open_sinks(no_display: bool, serve: tuple[str, int] | None, log: Callable[[str], None],
               viewer: tuple[dict, str] | None = None, max_viewers: int | None = None) -> list[Sink]:
    """The window (when wanted and a display exists) and the web viewer (``--serve``, with ``viewer``'s
    token and TLS from :func:`~skinedge.runtime.sinks.access.viewer_access`)."""
    sinks: list[Sink] = []
    try:
        if not no_display:
            view = _sink_module("view", "the window viewer", "run with --no-display")
            if view.window_available():
                sinks.append(view.WindowSink())
            else:
                log("no window: this OpenCV has no GUI or there is no display; running without one "
                    "(--serve HOST:PORT shows the view in a browser, --no-display silences this)")
        if serve is not None:
            web = _sink_module("web", "the web viewer", "run without --serve")
            access, where = viewer or ({}, "")
            extra = {"max_viewers": max_viewers} if max_viewers is not None else {}
            sink = web.WebSink(*serve, **access, **extra)
            sinks.append(sink)
            if where == "made":
                log(f"web viewer: {sink.login_url()}\n  (a new secret for this run, shown only here: the link "
                    "lets a browser in; scripts send Authorization: Bearer TOKEN)")
            else:
                log(f"web viewer: {sink.url}" + (f" (token from {where})" if where else ""))
    except BaseException:
        _close(sinks, None, log)
        raise
    return sinks


def run_command(camera: int | None, source: str | None, models: Path, backend: str = "auto",
                precision: str = "auto", mode: str = "roi", engines: Path | None = None, record: Path | None = None,
                serve: str | None = None, no_display: bool = False, max_frames: int | None = None,
                width: int | None = None, height: int | None = None, fps: float | None = None,
                realtime: bool = False, log: Callable[[str], None] = print, fidelity: Fidelity | None = None,
                sr_budget: str | int | None = "auto", target_fps: float = 10.0, reuse: bool = True,
                seg_every: int = 3, token_file: Path | None = None, tls_cert: Path | None = None,
                tls_key: Path | None = None, max_viewers: int | None = None, segment_s: float = SEGMENT_S) -> dict:
    """Everything ``skinedge run`` does: check the options, open all, run live, print the summary.

    Cheap checks come first (one source, max frames, --serve, the record folder), so a typo is one line
    before models load or a camera starts. Returns the summary of :func:`run_live`.
    """
    uri = source_uri(camera, source)
    check_max_frames(max_frames)
    budget = parse_budget(sr_budget)
    if target_fps <= 0 or seg_every < 1:
        raise SkinedgeError(f"--target-fps must be positive and --seg-every ≥ 1, got {target_fps} and {seg_every}")
    _check_capture(width, height, fps)
    address = parse_serve(serve) if serve else None
    viewer = None
    if address is not None:
        viewer = _sink_module("access", "the web viewer", "install skinedge[cpu]").viewer_access(
            address[0], token_file, tls_cert, tls_key)
    elif token_file or tls_cert or tls_key or max_viewers is not None:
        raise SkinedgeError("--token-file, --tls-cert, --tls-key and --max-viewers are for the web viewer: add "
                            "--serve HOST:PORT")
    if record is not None:
        check_record_path(record)
        if not segment_s > 0:
            raise SkinedgeError(f"--segment-seconds must be positive, got {segment_s}")
    manifest = load_models(models)
    with ExitStack() as stack:
        src = stack.enter_context(open_source(uri, width, height, fps, log=lambda s: log(f"warning: {s}")))
        log(f"source: {src.describe()}")
        session = open_session(models, backend, precision, engines, mode, fidelity=fidelity, log=log, manifest=manifest)
        pipeline = stack.enter_context(session.pipeline)
        frame_fn = live_pipeline(pipeline, budget, target_fps, reuse, seg_every, log)
        record_of = provenance.session_record(models, manifest, session.opened, pipeline, mode)
        sinks = open_sinks(no_display, address, log, viewer, max_viewers)
        try:
            recorder = (Recorder(record, segment_s=segment_s, log=log, provenance=record_of)
                        if record is not None else None)
        except BaseException:
            _close(sinks, None, log)
            raise
        summary = run_live(src, frame_fn, sinks, recorder, max_frames, log, realtime=realtime,
                           backend=session.opened.backend, variants=session.opened.variants)
    log(format_summary(summary))
    if isinstance(frame_fn, _Controlled):
        log(frame_fn.control.describe())
    if record is not None:
        log(f"recording in {record}/ (raw-*.mkv, enhanced-*.mkv by wall-clock segments, frames.jsonl)")
    return summary


def live_pipeline(pipeline, budget: int | str | None, target_fps: float, reuse: bool, seg_every: int,
                  log: Callable[[str], None]) -> Callable[[np.ndarray], FrameResult]:
    """The entered pipeline with the SR budget set (``auto``: measured here for ``target_fps``) and temporal
    reuse around it; the GPU pipeline takes neither yet, and says so."""
    if not isinstance(pipeline, Pipeline):
        if budget is not None or reuse:
            log("SR budget and temporal reuse: not on the GPU pipeline yet; every frame runs in full")
        return pipeline
    line, measured = set_budget_measured(pipeline, budget, target_fps)
    log(line)
    frame_fn = pipeline
    if reuse:
        log(f"temporal reuse: segmenter at least every {seg_every} frame(s), the mask tracked in between; the last "
            "SR shown again while the lesion's pixels stay still")
        frame_fn = TemporalReuse(pipeline, seg_every=seg_every)
    if measured is None:
        return frame_fn
    log("SR budget: kept to the frame time while running (scaled by what each capped frame took)")
    return _Controlled(frame_fn, BudgetControl(pipeline, measured))


class _Controlled:
    """A frame function whose results feed a :class:`BudgetControl` (``control.describe()`` for the summary)."""

    def __init__(self, frame_fn: Callable[[np.ndarray], FrameResult], control: BudgetControl):
        self.frame_fn, self.control = frame_fn, control

    def __call__(self, frame: np.ndarray) -> FrameResult:
        result = self.frame_fn(frame)
        self.control(result)
        return result


def _check_capture(width: int | None, height: int | None, fps: float | None) -> None:
    for name, value in (("--width", width), ("--height", height), ("--fps", fps)):
        if value is not None and value <= 0:
            raise SkinedgeError(f"{name} must be positive, got {value}")
