"""The live view: camera frame and enhanced view side by side, a status bar, and an OpenCV window sink.

``compose_view`` is shared by every sink (window, web viewer, recorder), so
they all show the same picture. It is deterministic (the same inputs give the
same bytes) and cheap: two resizes, a few cv2 drawing calls.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING

import cv2
import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.clinical.departure import live_departure
from skinedge.runtime.pipeline.host import as_bgr
from skinedge.runtime.sinks import draw_badge, drawable, fit_into

if TYPE_CHECKING:
    from skinedge.runtime.pipeline.host import FrameResult

MIN_HEIGHT, MAX_HEIGHT = 360, 540  # default panel height: the frame's, clamped to this range
DEFAULT_SHAPE = (480, 640)  # a grey canvas of this size when there is no frame at all
GREEN, YELLOW, WHITE, GREY, RED = (0, 220, 0), (0, 215, 255), (255, 255, 255), (170, 170, 170), (40, 40, 230)
FONT = cv2.FONT_HERSHEY_SIMPLEX
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc


def end_to_end_ms(latency: dict) -> float | None:
    """The end-to-end latency in ms: ``e2e`` if the loop measured it, else ``total``, else the sum of the stages."""
    for key in ("e2e", "end_to_end", "total"):
        if key in latency:
            return float(latency[key])
    return float(sum(latency.values())) if latency else None


def compose_view(raw: np.ndarray | None, result: "FrameResult | None", stats: dict, *,
                 height: int | None = None, departure: bool = False) -> np.ndarray:
    """Side-by-side view of one frame, as every sink shows it.

    Left: the camera frame with the lesion outline (green) and the ROI box
    (yellow). Right: the enhanced view (``result.image``) letterboxed into a
    panel of the same size. Below: a status bar with fps, end-to-end and
    per-stage latency, dropped frames, backend and precision variants.
    ``result is None`` means no signal: the frame is darkened (a grey canvas
    when ``raw`` is None or empty) under a big NO SIGNAL label. The canvas size
    depends only on the frame size and ``height``, so a stream keeps its size.

    Args:
        raw: H×W×3 uint8 BGR camera frame (H×W grey and H×W×4 BGRA are accepted).
        result: the pipeline's ``FrameResult``, or None when there is no signal.
        stats: the loop's stats (``fps``, ``latency_ms``, ``dropped``, ``frame``,
            ``source``, ``backend``, ``variants``); missing keys are left out.
        height: panel height in pixels; default the frame's, clamped to [360, 540].
        departure: show, instead of the enhanced view, where it departs from the camera
            (:func:`~skinedge.runtime.clinical.departure.live_departure`); the badge stays.

    Returns:
        (height + bar)×(2·panel width)×3 uint8 BGR, panel width = W·height/H.
    """
    raw = as_bgr(raw)
    h, w = raw.shape[:2] if raw is not None else DEFAULT_SHAPE
    ph = int(height) if height else min(MAX_HEIGHT, max(MIN_HEIGHT, h))
    pw = max(1, round(w * ph / h))
    lh = max(16, round(ph * 0.045))  # status line height
    scale = lh / 30
    canvas = np.full((ph + 3 * lh + lh // 2, 2 * pw, 3), 24, np.uint8)
    left, right = canvas[:ph, :pw], canvas[:ph, pw:]
    if raw is not None:
        left[:] = cv2.resize(raw, (pw, ph), interpolation=cv2.INTER_AREA if ph < h else cv2.INTER_LINEAR)
    if result is None:
        left[:] = cv2.convertScaleAbs(left, alpha=0.35) if raw is not None else 48
        right[:] = 48
    else:
        if result.found:
            _outline(left, result, (w, h))
        heat = live_departure(raw, result) if departure and raw is not None else None
        fit_into(right, result.image if heat is None else heat)
        _label(right, _right_label(result, (h, w)) + (": departure from the camera" if heat is not None else ""),
               (8, lh), scale)
        if result.found:  # the generator changed this view: say so on it, permanently
            sr = (stats.get("variants") or {}).get("sr")
            draw_badge(right, f"AI-ENHANCED  sr {os.path.basename(str(sr))}" if sr else "AI-ENHANCED")
    _label(left, f"camera {w}x{h}" if raw is not None else "no frame", (8, lh), scale)
    cv2.line(canvas, (pw, 0), (pw, ph - 1), (90, 90, 90), 2)
    if result is None:
        _no_signal(canvas[:ph])
    _status(canvas[ph:], result, stats, lh, scale)
    return canvas


def _right_label(result: "FrameResult", frame_hw: tuple[int, int]) -> str:
    if not result.found:
        return "no lesion: smooth x4"
    roi_view = result.image is not None and result.image.shape[:2] != tuple(4 * v for v in frame_hw)
    return "lesion ROI x4" if roi_view else "full frame x4"


def _outline(panel: np.ndarray, result: "FrameResult", frame_wh: tuple[int, int]) -> None:
    """Lesion contour (the feathered mask at 0.5, i.e. the cleaned lesion) and the ROI box, in panel pixels."""
    ph, pw = panel.shape[:2]
    lm = result.mask
    src = lm.soft if lm is not None and lm.soft is not None and lm.soft.size else None
    binary = (src >= 0.5).astype(np.uint8) if src is not None else None
    if binary is None or not binary.any():
        binary = lm.mask.astype(np.uint8) if lm is not None and lm.mask is not None else None
    if binary is not None and binary.any():
        s_y, s_x = binary.shape
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        sx, sy = pw / s_x * 16, ph / s_y * 16  # 4 fractional bits for polylines(shift=4)
        pts = [np.round((c.reshape(-1, 2) + 0.5) * (sx, sy)).astype(np.int32) for c in contours]
        cv2.polylines(panel, pts, True, GREEN, 2, cv2.LINE_AA, shift=4)
    if result.roi is not None:
        x0, y0, rw, rh = result.roi
        fx, fy = pw / frame_wh[0], ph / frame_wh[1]
        cv2.rectangle(panel, (round(x0 * fx), round(y0 * fy)),
                      (round((x0 + rw) * fx) - 1, round((y0 + rh) * fy) - 1), YELLOW, 1, cv2.LINE_AA)


def _label(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text on a darkened box, readable on any background (ASCII only: Hershey fonts)."""
    text = drawable(text)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x0, y0 = max(0, org[0] - 4), max(0, org[1] - th - 4)
    box = img[y0:org[1] + base + 2, x0:org[0] + tw + 4]
    box[:] = box >> 2
    cv2.putText(img, text, org, FONT, scale, WHITE, 1, cv2.LINE_AA)


def _no_signal(area: np.ndarray) -> None:
    h, w = area.shape[:2]
    text = "NO SIGNAL"
    (tw, _), _ = cv2.getTextSize(text, FONT, 1.0, 3)
    scale = 0.5 * w / tw
    thick = max(2, round(3 * scale))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = (w - tw) // 2, (h + th) // 2
    pad = th // 2
    cv2.rectangle(area, (x - pad, y - th - pad), (x + tw + pad, y + base + pad), (16, 16, 16), -1)
    cv2.rectangle(area, (x - pad, y - th - pad), (x + tw + pad, y + base + pad), RED, 2)
    cv2.putText(area, text, (x, y), FONT, scale, WHITE, thick, cv2.LINE_AA)


def status_lines(result: "FrameResult | None", stats: dict) -> list[str]:
    """The three status-bar lines (also useful for logs)."""
    lat = dict(stats.get("latency_ms") or {})
    e2e = end_to_end_ms(lat)
    first = [f"fps {float(stats.get('fps', 0.0)):.1f}",
             f"e2e {e2e:.1f} ms" if e2e is not None else "e2e -",
             f"dropped {int(stats.get('dropped', 0))}", f"frame {int(stats.get('frame', 0))}"]
    if result is None:
        first.append("NO SIGNAL")
    elif result.found:
        first.append(f"lesion {100 * result.lesion_area:.1f}%")
        if getattr(result, "residual", None) is not None:
            first.append(f"invented {result.residual:.1f}/255")
        if getattr(result, "sr_age_ms", None) is not None:
            first.append(f"SR age {result.sr_age_ms:.0f} ms")
        elif not getattr(result, "computed", True) and "bicubic" in (result.note or ""):
            first.append("SR old: bicubic")
    else:
        first.append("no lesion")
    stages = [f"{k} {float(v):.1f}" for k, v in lat.items() if k not in ("e2e", "end_to_end", "total")]
    second = "stages ms: " + (" | ".join(stages) if stages else "-")
    variants = stats.get("variants") or {}
    prec = " ".join(f"{k}={os.path.basename(str(v))}" for k, v in variants.items())
    third = f"backend {stats.get('backend', '-')} {prec}".rstrip() + f"   source {stats.get('source', '-')}"
    return ["   ".join(first), second, third]


def _status(bar: np.ndarray, result: "FrameResult | None", stats: dict, lh: int, scale: float) -> None:
    width = bar.shape[1] - 16
    for i, line in enumerate(status_lines(result, stats)):
        line = drawable(line)
        tw = cv2.getTextSize(line, FONT, scale, 1)[0][0]
        if tw > width:  # cut to fit, proportionally (Hershey glyphs are near fixed width)
            line = line[:max(4, math.floor(len(line) * width / tw) - 2)] + ".."
        color = RED if i == 0 and result is None else WHITE if i == 0 else GREY
        cv2.putText(bar, line, (8, (i + 1) * lh), FONT, scale, color, 1, cv2.LINE_AA)


def window_available() -> bool:
    """Whether an OpenCV highgui window can open here.

    False for OpenCV builds without a GUI backend (opencv-python-headless) and,
    on Linux, when neither DISPLAY nor WAYLAND_DISPLAY is set (GTK/Qt builds
    abort the whole process there rather than raise). Opens no window.
    """
    gui = [line.split(":", 1)[1].strip().upper() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    if gui and gui[0] in ("NONE", "NO", ""):
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return True


class WindowSink:
    """Shows ``compose_view`` in an OpenCV window; 'q' or Esc (or closing the window) sets ``quit``.

    Construction raises ``SkinedgeError`` where no window can open (headless
    OpenCV, no display): a caller that wants to carry on without a window checks
    ``window_available()`` first and skips this sink.
    """

    def __init__(self, title: str = "skinedge", *, height: int | None = None):
        if not window_available():
            raise SkinedgeError("cannot open a window: this OpenCV has no GUI (opencv-python-headless) or there is "
                                "no display; run with --no-display, or watch in a browser with --serve HOST:PORT")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error as exc:
            raise SkinedgeError(f"cannot open a window ({str(exc).strip().splitlines()[-1]}); run with "
                                "--no-display, or watch in a browser with --serve HOST:PORT") from None
        self.title, self.height, self.quit = title, height, False
        self._last_raw: np.ndarray | None = None

    def show(self, raw: np.ndarray, result: "FrameResult | None", stats: dict) -> None:
        if raw is not None and raw.size:
            self._last_raw = raw
        cv2.imshow(self.title, compose_view(self._last_raw if raw is None or not raw.size else raw, result, stats,
                                            height=self.height))
        if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
            self.quit = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.quit = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
