"""``skinedge run``'s set-up: check the options, open the source, models, sinks and recorder, choose how frames
are enhanced live (:func:`live_pipeline`), then hand all to the display loop (:mod:`skinedge.runtime.live.loop`).

Cheap checks come first, so a typo is one line before models load or a camera starts.
"""

from __future__ import annotations

import importlib
import signal
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.clinical import provenance
from skinedge.runtime.backends.onnxruntime import physical_cores
from skinedge.runtime.live.display import MAX_AGE_MS, TwoLoopDisplay
from skinedge.runtime.live.loop import _close, check_max_frames, format_summary, run_live
from skinedge.runtime.live.reuse import TemporalReuse
from skinedge.runtime.live.sources import open_source
from skinedge.runtime.live.sr_loop import SRLoop, set_threads
from skinedge.runtime.live.watchdog import Watchdog
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline.budget import BudgetControl, parse_budget, set_budget_measured
from skinedge.runtime.pipeline.host import FrameResult, Pipeline
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.session import open_session
from skinedge.runtime.sinks import Sink
from skinedge.runtime.sinks.recorder import SEGMENT_S, Recorder, check_record_path
from skinedge.runtime.sinks.storage import parse_keep


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
            sink = web.WebSink(*serve, **access, **extra, log=log)
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


@contextmanager
def token_rotation(sinks: list[Sink], token_file: Path | None, log: Callable[[str], None]):
    """While the run lasts, SIGHUP re-reads ``--token-file`` and hands the web viewer the new token (no restart:
    old links, cookies and open streams stop working). A file that no longer passes is refused in one line and
    the old token stays."""
    web = [s for s in sinks if hasattr(s, "rotate")]
    if token_file is None or not web or threading.current_thread() is not threading.main_thread():
        yield
        return
    from skinedge.runtime.sinks.access import read_token

    def reread(signum, frame) -> None:
        try:
            token, where = read_token(token_file, environ={})
        except SkinedgeError as exc:
            log(f"SIGHUP: the viewer token was not changed: {exc}")
            return
        for sink in web:
            sink.rotate(token)
        log(f"SIGHUP: viewer token rotated from {where}: old links, cookies and open streams no longer work")

    previous = signal.signal(signal.SIGHUP, reread)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def run_command(camera: int | None, source: str | None, models: Path, backend: str = "auto",
                precision: str = "auto", mode: str = "roi", engines: Path | None = None, record: Path | None = None,
                serve: str | None = None, no_display: bool = False, max_frames: int | None = None,
                width: int | None = None, height: int | None = None, fps: float | None = None,
                realtime: bool = False, log: Callable[[str], None] = print, fidelity: Fidelity | None = None,
                sr_budget: str | int | None = "auto", target_fps: float = 10.0, reuse: bool = True,
                seg_every: int = 3, token_file: Path | None = None, tls_cert: Path | None = None,
                tls_key: Path | None = None, max_viewers: int | None = None, segment_s: float = SEGMENT_S,
                sr_loop: bool = True, max_sr_age_ms: float = MAX_AGE_MS, sr_threads: int = 0,
                watchdog: bool = False, record_keep: str | None = None) -> dict:
    """Everything ``skinedge run`` does: check the options, open all, run live, print the summary.

    Cheap checks come first (one source, max frames, --serve, the record folder), so a typo is one line
    before models load or a camera starts. Returns the summary of :func:`run_live`.
    """
    uri = source_uri(camera, source)
    check_max_frames(max_frames)
    budget = parse_budget(sr_budget)
    if target_fps <= 0 or seg_every < 1:
        raise SkinedgeError(f"--target-fps must be positive and --seg-every ≥ 1, got {target_fps} and {seg_every}")
    if not max_sr_age_ms > 0 or sr_threads < 0:
        raise SkinedgeError(f"--max-sr-age must be positive and --sr-threads ≥ 0, got {max_sr_age_ms} and "
                            f"{sr_threads}")
    _check_capture(width, height, fps)
    address = parse_serve(serve) if serve else None
    viewer = None
    if address is not None:
        viewer = _sink_module("access", "the web viewer", "install skinedge[cpu]").viewer_access(
            address[0], token_file, tls_cert, tls_key)
    elif token_file or tls_cert or tls_key or max_viewers is not None:
        raise SkinedgeError("--token-file, --tls-cert, --tls-key and --max-viewers are for the web viewer: add "
                            "--serve HOST:PORT")
    keep = parse_keep(record_keep)
    if record is not None:
        check_record_path(record)
        if not segment_s > 0:
            raise SkinedgeError(f"--segment-seconds must be positive, got {segment_s}")
    elif keep is not None:
        raise SkinedgeError("--record-keep is for a recording: add --record FOLDER")
    notify = Watchdog.from_environment() if watchdog else None
    manifest = load_models(models)
    with ExitStack() as stack:
        src = stack.enter_context(open_source(uri, width, height, fps, log=lambda s: log(f"warning: {s}")))
        log(f"source: {src.describe()}")
        session = open_session(models, backend, precision, engines, mode, fidelity=fidelity, log=log, manifest=manifest)
        pipeline = stack.enter_context(session.pipeline)
        live = LiveSettings(budget, target_fps, reuse, seg_every, sr_loop, max_sr_age_ms, sr_threads)
        frame_fn = live_pipeline(pipeline, live, log, stack)
        record_of = provenance.session_record(models, manifest, session.opened, pipeline, mode)
        sinks = open_sinks(no_display, address, log, viewer, max_viewers)
        try:
            recorder = (Recorder(record, segment_s=segment_s, log=log, provenance=record_of, keep=keep)
                        if record is not None else None)
        except BaseException:
            _close(sinks, None, log)
            raise
        stack.enter_context(token_rotation(sinks, token_file, log))
        summary = run_live(src, frame_fn, sinks, recorder, max_frames, log, realtime=realtime,
                           backend=session.opened.backend, variants=session.opened.variants, watchdog=notify)
    log(format_summary(summary))
    control = getattr(frame_fn, "control", None)
    if control is not None:
        log(control.describe())
    if record is not None:
        log(f"recording in {record}/ (raw-*.mkv, enhanced-*.mkv and frames-*.jsonl by wall-clock segments; "
            "segments.jsonl names the closed ones)")
    return summary


@dataclass(frozen=True)
class LiveSettings:
    """How frames are enhanced live (the ``run`` options of the same names)."""

    budget: int | str | None = "auto"  # SR budget: LR pixels, "auto" (measured for target_fps) or None
    target_fps: float = 10.0  # what the auto budget aims at: the SR loop's rate, or the one loop's
    reuse: bool = True  # one loop: temporal reuse
    seg_every: int = 3  # one loop with reuse: the segmenter at least every N frames
    sr_loop: bool = True  # two loops: the display at the camera's rate, SR on its own thread
    max_sr_age_ms: float = MAX_AGE_MS
    sr_threads: int = 0  # intra-op threads of each network in the SR loop (0: all cores but one)


def live_pipeline(pipeline, live: LiveSettings, log: Callable[[str], None],
                  stack: ExitStack) -> Callable[[np.ndarray], FrameResult]:
    """The frame function of a live run on an entered pipeline: the SR budget set (``auto``: measured here for
    ``target_fps``), then either two loops (the SR loop started in ``stack``, closed with it) or one loop with
    or without temporal reuse. The GPU pipeline runs two loops on two CUDA streams, or one loop; it takes no SR
    budget or temporal reuse yet, and says so."""
    if not isinstance(pipeline, Pipeline):
        if live.sr_loop:
            if live.budget is not None:
                log("SR budget: not on the GPU pipeline yet; the generator sees the whole ROI (its time sets the "
                    "SR's age, not the display's rate)")
            return _two_loops(pipeline, live, log, stack, "the SR loop on its own CUDA stream, the display "
                              "on another; ")
        if live.budget is not None or live.reuse:
            log("SR budget and temporal reuse: not on the GPU pipeline yet; every frame runs in full")
        return pipeline
    if live.sr_loop:
        threads = live.sr_threads or max(1, physical_cores() - 1)
        if set_threads(pipeline, threads):
            log(f"SR loop: segmenter and generator on {threads} thread(s) each, the display loop on the rest")
    line, measured = set_budget_measured(pipeline, live.budget, live.target_fps)
    log(line)
    control = BudgetControl(pipeline, measured) if measured is not None else None
    if live.sr_loop:
        def on_result(got) -> None:  # the SR loop's generator time keeps the budget to its target rate
            if control is not None and got.earlier is not None:
                control.observe(got.sr_ms, got.earlier.size[0] / got.lm.roi[2])

        pipeline.camera_resolution = True
        display = _two_loops(pipeline, live, log, stack, "", on_result if control else None)
        display.control = control
        return display
    frame_fn = pipeline
    if live.reuse:
        log(f"temporal reuse: segmenter at least every {live.seg_every} frame(s), the mask tracked in between; "
            "the last SR shown again while the lesion's pixels stay still")
        frame_fn = TemporalReuse(pipeline, seg_every=live.seg_every)
    if control is None:
        return frame_fn
    log("SR budget: kept to the frame time while running (scaled by what each capped frame took)")
    return _Controlled(frame_fn, control)


def _two_loops(pipeline, live: LiveSettings, log: Callable[[str], None], stack: ExitStack, where: str,
               on_result=None) -> TwoLoopDisplay:
    """The display step, with the SR loop started in ``stack`` (stopped before the pipeline closes)."""
    log(f"two loops: every camera frame shown, the SR loop's newest result moved with the camera and projected "
        f"onto it; {where}older than {live.max_sr_age_ms:g} ms or out of place: bicubic")
    loop = stack.enter_context(SRLoop(pipeline, log, on_result))
    return TwoLoopDisplay(pipeline, loop, live.max_sr_age_ms)


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
