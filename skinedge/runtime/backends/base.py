"""The runner template every backend fills in, and :class:`Opened`: the two runners a backend opened."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from skinedge.errors import SkinedgeError


class Runner:
    """``with Runner(loader) as r: outputs = r.infer({name: array})``.

    Subclasses implement ``_activate_impl`` (build the session/engine from the
    loader, return input names), ``_infer_impl`` and optionally
    ``_deactivate_impl``. Outputs may be reused by the next ``infer`` call on
    backends that say ``reuses_outputs = True``: copy them to keep them.
    """

    name = "runner"
    reuses_outputs = False
    output_names: list[str] | None = None  # the model's output tensors once active (None: this backend does not say)

    def __init__(self, loader: Callable[[], Any] | Any):
        self.loader = loader
        self.active = False
        self.input_names: list[str] = []
        self.last_ms = 0.0

    def check_names(self, net: str, input_name: str, output_name: str) -> None:
        """Raise a one-line error when models.json names tensors the active model does not have (a damaged or
        hand-edited manifest: found by tests/test_fuzz.py, it used to fail at the first frame)."""
        outputs = self.output_names
        if input_name not in self.input_names or (outputs is not None and output_name not in outputs):
            raise SkinedgeError(f"models.json names the {net} network's tensors {input_name!r} → {output_name!r}, but "
                                f"its model file has {self.input_names} → {outputs}; re-run `skinedge export`")

    def _resolve(self) -> Any:
        return self.loader() if callable(self.loader) else self.loader

    def activate(self) -> "Runner":
        if not self.active:
            self.input_names = list(self._activate_impl(self._resolve()))
            self.active = True
        return self

    def deactivate(self) -> None:
        if self.active:
            self._deactivate_impl()
            self.active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; ``feed`` must name every input, as float32 NCHW arrays."""
        if not self.active:
            raise SkinedgeError(f"{self.name} runner used before activate() (use `with runner:`)")
        missing = [n for n in self.input_names if n not in feed]
        if missing:
            raise SkinedgeError(f"{self.name}: missing input(s) {missing}; this model takes {self.input_names}")
        for n, value in feed.items():
            if value.dtype != np.float32:
                raise SkinedgeError(f"{self.name}: input {n!r} is {value.dtype}; expected float32")
        start = time.perf_counter()
        outputs = self._infer_impl(feed)
        self.last_ms = (time.perf_counter() - start) * 1000
        return outputs

    # ---- what a backend implements
    def _activate_impl(self, resolved: Any) -> list[str]:
        raise NotImplementedError

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _deactivate_impl(self) -> None:
        pass


@dataclass
class Opened:
    """The seg and SR runners (not yet activated) one backend opened, and what was chosen and why."""

    seg: Runner
    sr: Runner
    backend: str
    variants: dict[str, str]
    why: str
    tile: int = 256  # SR tile side: ONNX Runtime and torch take any size; engines their profile's maximum
    max_batch: int = 4
    backends: dict[str, str] | None = None  # per network, where the CPU choice put them on different backends

    def describe(self) -> str:
        """``seg V, sr V`` (with each network's backend when they differ), for the log."""
        on = self.backends or {}
        where = lambda net: f" on {on[net]}" if on and on.get("seg") != on.get("sr") else ""  # noqa: E731
        return f"seg {self.variants['seg']}{where('seg')}, sr {self.variants['sr']}{where('sr')}"
