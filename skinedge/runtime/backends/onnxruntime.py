"""ONNX Runtime backend on the CPU, and the one ONNX Runtime session factory (the export's gates and timings use it
too, so a variant is judged and timed under the settings it will run with)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from skinedge.errors import SkinedgeError, one_line
from skinedge.runtime.backends.base import Runner

def physical_cores() -> int:
    """Cores ORT should use: hyper-threads add contention in convolution-heavy graphs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SessionFromOnnx:
    """Loader: an ``InferenceSession`` with the options that matter for a fixed per-frame graph.

    Full graph optimisation (fusions), sequential execution, one intra-op thread
    per core, no spinning between frames. Memory: a fixed-shape model (the
    segmenter, ``fixed_shape``) gets memory-pattern planning and the arena (the
    same shapes every frame reuse one plan); a model with dynamic spatial inputs
    (the SR generator, fed a differently sized ROI nearly every frame) gets
    neither, because ORT keeps one plan per input shape and its arena never
    shrinks: measured here, the INT8 generator on 640×480 frames grew past 11 GB
    RSS with them and stays at ~0.3 GB between frames without.

    Args:
        source: an ``.onnx`` path, or a serialized model (bytes).
        threads: intra-op threads; 0: one per usable core.
        fixed_shape: the model's inputs have fixed spatial sizes (memory plans and the arena pay off).
    """

    def __init__(self, source: str | Path | bytes, threads: int = 0, fixed_shape: bool = True):
        self.source = source if isinstance(source, bytes) else Path(source)
        self.threads, self.fixed_shape = threads, fixed_shape

    def __call__(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_mem_pattern = options.enable_cpu_mem_arena = self.fixed_shape
        options.intra_op_num_threads = self.threads or physical_cores()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        source = self.source if isinstance(self.source, bytes) else str(self.source)
        try:
            return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/NoSuchFile types
            name = "model" if isinstance(self.source, bytes) else str(self.source)
            raise SkinedgeError(f"{name}: ONNX Runtime cannot load it ({one_line(exc)})") from None


class OrtRunner(Runner):
    """Runs one session; a fixed-shape model (the segmenter) gets its output bound to one
    preallocated buffer through IO binding, so frames do not allocate (``reuses_outputs``)."""

    name = "onnxruntime"

    def _activate_impl(self, session) -> list[str]:
        self.session = session
        self.outputs = self.output_names = [o.name for o in session.get_outputs()]
        self.binding = None
        shapes = [o.shape for o in session.get_outputs()]
        if len(shapes) == 1 and all(isinstance(d, int) for d in shapes[0][1:]):
            self.fixed_tail = tuple(shapes[0][1:])
            self.buffers: dict[int, np.ndarray] = {}
            self.binding = session.io_binding()
            self.reuses_outputs = True
        return [i.name for i in session.get_inputs()]

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self._run(feed)
        except Exception as exc:  # noqa: BLE001 - ORT's InvalidArgument/Fail/RuntimeException: a model and an
            # input that do not fit (found by tests/test_fuzz.py: a damaged model that loads but cannot run)
            raise SkinedgeError(f"onnxruntime: the model refused the input ({one_line(exc)})") from None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.binding is None:
            return dict(zip(self.outputs, self.session.run(None, feed)))
        batch = next(iter(feed.values())).shape[0]
        out = self.buffers.get(batch)
        if out is None:
            out = self.buffers[batch] = np.empty((batch, *self.fixed_tail), np.float32)
        for name, value in feed.items():
            self.binding.bind_cpu_input(name, np.ascontiguousarray(value))
        self.binding.bind_output(self.outputs[0], "cpu", 0, np.float32, out.shape, out.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        return {self.outputs[0]: out}

    def _deactivate_impl(self) -> None:
        self.session = self.binding = None
