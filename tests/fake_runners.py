"""A CPU runner around any NumPy function: the stand-in network for pipeline tests (no ONNX, no torch)."""

from __future__ import annotations

from skinedge.runtime.backends.base import Runner


class FnRunner(Runner):
    """``fn(input) → output`` behind the Runner interface; remembers every input it was fed."""

    name = "fn"

    def __init__(self, fn, input_name: str, output_name: str = "out"):
        super().__init__(None)
        self.fn, self.input_name, self.output_name, self.inputs = fn, input_name, output_name, []

    def _activate_impl(self, resolved):
        return [self.input_name]

    def _infer_impl(self, feed):
        self.inputs.append(feed[self.input_name].copy())
        return {self.output_name: self.fn(feed[self.input_name])}
