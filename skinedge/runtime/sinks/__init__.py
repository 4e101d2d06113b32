"""Where the live loop sends each frame: a window, a web viewer (``view.py``, ``web.py``).

One small contract, so the loop never knows which sinks it feeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from skinedge.runtime.pipeline.host import FrameResult


class Sink(Protocol):
    """``show`` gets every frame: raw is uint8 BGR; result None = no signal (then called at ~2 Hz).

    stats: frame (int index), fps (float, end-to-end over the last ~30 frames), latency_ms (stage → ms of
    this frame, empty when no signal), dropped (int), signal (bool), source (str), backend (str),
    variants (dict).
    """

    def show(self, raw: np.ndarray, result: "FrameResult | None", stats: dict) -> None: ...
    def close(self) -> None: ...
