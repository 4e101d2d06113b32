"""Where the live loop sends each frame: a window and the side-by-side view (``view.py``), a web viewer
(``web.py``), the recorder (``recorder.py``).

One small contract, so the loop never knows which sinks it feeds, and the one letterbox they all draw with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from skinedge.runtime.pipeline.host import FrameResult


class Sink(Protocol):
    """``show`` gets every frame: raw is uint8 BGR; result None = no signal (then called at ~2 Hz).

    stats: frame (int index), fps (float, end-to-end over the last ~30 frames), latency_ms (stage → ms of
    this frame, empty when no signal), sr_age_ms (two loops: the age of the SR shown, else None), dropped (int),
    signal (bool), state ("live" | "stale" | "no signal"),
    lost, reconnects (int), last_lost, last_reconnect (ISO time or None), frame_age_s (float), source (str),
    backend (str), variants (dict).

    Optional: ``status(stats)``, called at ~2 Hz while the source is stale (no new frame, the last view stays).
    """

    def show(self, raw: np.ndarray, result: "FrameResult | None", stats: dict) -> None: ...
    def close(self) -> None: ...


def fit_into(panel: np.ndarray, image: np.ndarray | None) -> None:
    """Draw ``image`` into ``panel`` (both uint8 BGR) scaled to fit with its aspect ratio kept, centred; the rest
    of ``panel`` is left as it is. Shrinking uses area averaging, enlarging bilinear interpolation."""
    import cv2

    if image is None or image.size == 0:
        return
    ph, pw = panel.shape[:2]
    ih, iw = image.shape[:2]
    k = min(ph / ih, pw / iw)
    nh, nw = max(1, round(ih * k)), max(1, round(iw * k))
    y, x = (ph - nh) // 2, (pw - nw) // 2
    panel[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else
                                           cv2.INTER_LINEAR)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit (aspect kept) and centred on a black canvas of ``size`` = (width, height)."""
    cw, ch = size
    if image.shape[1::-1] == (cw, ch):
        return image
    canvas = np.zeros((ch, cw, 3), np.uint8)
    fit_into(canvas, image)
    return canvas


# OpenCV's Hershey fonts draw printable ASCII only; anything else came out as "?" ("AI-ENHANCED ? SR ...").
HERSHEY = {"·": "|", "•": "|", "×": "x", "→": "->", "←": "<-", "–": "-", "—": "-", "−": "-", "≤": "<=", "≥": ">=",
           "±": "+/-", "µ": "u", "μ": "u", "°": "deg", "…": "...", "’": "'", "‘": "'", "“": '"', "”": '"',
           "Δ": "d", "σ": "s", "²": "2", "³": "3", "\u00a0": " "}


def drawable(text: str) -> str:
    """``text`` in the characters a Hershey font can draw: known symbols spelled in ASCII, accents dropped
    (é → e), anything else left out rather than drawn as "?"."""
    import unicodedata

    spelled = "".join(HERSHEY.get(c, c) for c in str(text))
    plain = unicodedata.normalize("NFKD", spelled)
    return "".join(c for c in plain if " " <= c <= "~")


BADGE_BGR = (0, 140, 255)  # orange: no dermoscopy colour, readable on skin and on black


def draw_badge(image: np.ndarray, text: str = "AI-ENHANCED") -> None:
    """Burn a permanent badge into the bottom-left of a uint8 BGR image (in place): an enhanced view never passes
    for a photograph, on screen or in a screenshot. Sized to the image (at least legible at 160 px wide)."""
    import cv2

    h, w = image.shape[:2]
    scale = max(0.35, min(1.0, w / 900))
    text = drawable(text)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = max(3, round(6 * scale))
    x0, y1 = pad, h - pad
    y0, x1 = max(0, y1 - th - base - 2 * pad), min(w, x0 + tw + 2 * pad)
    cv2.rectangle(image, (x0, y0), (x1, y1), BADGE_BGR, -1)
    cv2.putText(image, text, (x0 + pad, y1 - pad - base + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
