"""OpenVINO backend on the CPU: where INT8 pays for the SR generator.

Measured on this project's 2-core x86 CPUs, the SR generator's NNCF INT8 model runs ~3× faster in
OpenVINO than FP32 in ONNX Runtime, while ONNX Runtime's own INT8 is *slower* than its FP32 there; the
segmenter is fastest in ONNX Runtime. So ``backend auto`` may put the two networks on different backends
(:mod:`skinedge.runtime.backends.choose`).

The loader reads an ONNX file (FP32 variants) or an OpenVINO IR pair ``.xml`` + ``.bin`` (the ``int8-ov``
variants ``skinedge calibrate`` writes with NNCF) and compiles it for the CPU with one thread per core, the
latency hint, and FP32 inference precision: OpenVINO's default on CPUs with BF16 instructions is BF16, which
is both slower here for these networks and not the precision the gates measured.
Arm CPUs (a Jetson's fallback) run the same code through OpenVINO's ARM plugin; that path is not tested here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from skinedge.errors import SkinedgeError, one_line
from skinedge.runtime.backends.base import Runner
from skinedge.runtime.backends.onnxruntime import physical_cores

EXTRA = "pip install 'skinedge[openvino]'"


def import_openvino():
    """The ``openvino`` module, or a one-line SkinedgeError naming the extra that brings it."""
    try:
        import openvino
    except ImportError:
        raise SkinedgeError(f"the openvino backend needs OpenVINO, which is not installed: {EXTRA}") from None
    return openvino


_CORE = None
_CORE_LOCK = threading.Lock()


def shared_core():
    """The process's one ``openvino.Core``, made on first use and kept until exit.

    Why one: each Core's CPU plugin, on Linux, gives the thread that compiles an alternate signal stack of its
    own (for AMX) and on destruction puts back the one it found and unmaps its own. Cores destroyed out of
    order (a Core per model, freed by the garbage collector) leave the thread's alternate stack pointing at
    unmapped memory, and the next signal handled on it — a Ctrl-C — kills the process with SIGSEGV (seen here:
    OpenVINO 2026.4, a test sending SIGINT after two models had come and gone). One Core never unwinds.
    """
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = import_openvino().Core()
        return _CORE


class CompiledFromFile:
    """Loader: an OpenVINO ``CompiledModel`` for the CPU from an ``.onnx`` file or an ``.xml`` IR (its ``.bin``
    next to it).

    Args:
        path: the model file.
        threads: inference threads; 0: one per usable core.
    """

    def __init__(self, path: str | Path, threads: int = 0):
        self.path, self.threads = Path(path), threads

    def __call__(self):
        import_openvino()  # missing OpenVINO: one line naming the extra, before the file checks
        if not self.path.is_file():
            raise SkinedgeError(f"model file not found: {self.path}")
        if self.path.suffix == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise SkinedgeError(f"{self.path}: its weights {self.path.with_suffix('.bin').name} are missing")
        config = {"INFERENCE_NUM_THREADS": self.threads or physical_cores(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1}
        try:
            core = shared_core()
            return compile_bounded(core, core.read_model(str(self.path)), config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses with long texts
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SkinedgeError(f"{self.path}: OpenVINO cannot load it ({one_line(first)})") from None


RUNTIME_CACHE_SHAPES = 64


def compile_bounded(core, model, config: dict):
    """``compile_model`` on the CPU with its per-shape runtime cache capped at :data:`RUNTIME_CACHE_SHAPES`.

    Why: the CPU plugin keeps compiled primitives for every input shape it has seen, up to 5000 by default. The
    live ROI changes the generator's input shape, so a long run grows without end: 400 distinct shapes of the
    demo's SR generator took RSS +798 MB here, with the cap +57 MB, and 20 recurring shapes ran as fast
    (64 vs 67 ms; OpenVINO 2026.4, ``CPU_RUNTIME_CACHE_CAPACITY``, a plugin key it accepts but does not
    list). An OpenVINO that refuses the key compiles without it."""
    try:
        return core.compile_model(model, "CPU", {**config, "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_SHAPES})
    except RuntimeError as exc:
        if "CPU_RUNTIME_CACHE_CAPACITY" not in str(exc):
            raise
        return core.compile_model(model, "CPU", config)


SIDE_GRID = 8


def fast_side_sizes(h: int, w: int) -> tuple[int, int]:
    """(h', w') ≥ (h, w): each side padded up to the next 8k + 1 (at most 7 more pixels).

    Why, twice over (OpenVINO 2026.4 on a 2-core AMD EPYC, the demo's INT8 generator):
    - the CPU plugin runs the generator 1.4–2.6× slower per pixel when the plane size h·w is a multiple of 32
      (96×96 at 62 ms per 10k LR px, 95×97 at 23; ONNX Runtime shows no such effect), and (8a+1)(8b+1) is odd;
    - it compiles, and caches, kernels per input shape. A live ROI changes shape nearly every frame (130
      distinct shapes in 200 s of a soak), so the cache churned and RSS crept. On the grid, 600 ROI-like shapes
      became 16 instead of 208, ran 36.5 ms instead of 41.0 on average (for 12 % more pixels), and took
      RSS +75 MB instead of +135 (``python benchmarks/ov_shapes.py``)."""
    def up(v: int) -> int:
        return v + ((1 - v) % SIDE_GRID)

    return up(h), up(w)


class OvRunner(Runner):
    """Runs one compiled model through one infer request; outputs are copied (the request reuses its
    buffers), float32, under the model's own tensor names.

    A model whose input height and width are dynamic (the SR generator: fully convolutional, N×3×h×w →
    N×3×sh×sw) gets its input edge-padded to :func:`fast_side_sizes` (at most 7 rows and columns at the
    bottom and right) and its output cropped back to s·h×s·w: few shapes to compile, none of the slow ones.
    """

    name = "openvino"

    def _activate_impl(self, compiled) -> list[str]:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        try:
            self.outputs = self.output_names = [o.get_any_name() for o in compiled.outputs]
            shapes = {i.get_any_name(): i.get_partial_shape() for i in compiled.inputs}
        except Exception as exc:  # noqa: BLE001 - an IR whose tensors have no (or undecodable) names: damaged
            raise SkinedgeError(f"openvino: the model's inputs or outputs have no usable names ({one_line(exc)}); "
                                "re-run `skinedge calibrate`") from None
        self.rank = {name: shape.rank.get_length() for name, shape in shapes.items()}
        self.input_shapes = {name: [d.get_length() if d.is_static else None for d in shape]
                             for name, shape in shapes.items()}
        self.pad = len(shapes) == 1 and all(shape.rank.get_length() == 4 and shape[2].is_dynamic
                                            and shape[3].is_dynamic for shape in shapes.values())
        return list(shapes)

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feed.items():
            if name in self.rank and value.ndim != self.rank[name]:
                raise SkinedgeError(f"openvino: input {name!r} has shape {value.shape}; this model takes "
                                    f"{self.rank[name]}-D NCHW tensors")
        if self.pad:
            (name, x), = feed.items()
            h, w = x.shape[2:]
            ph, pw = fast_side_sizes(h, w)
            if (ph, pw) != (h, w):
                out = self._run({name: np.pad(x, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")})
                if all(v.ndim == 4 and v.shape[2] % ph == 0 and v.shape[3] % pw == 0 for v in out.values()):
                    return {k: np.ascontiguousarray(v[:, :, :h * (v.shape[2] // ph), :w * (v.shape[3] // pw)])
                            for k, v in out.items()}
                self.pad = False  # not an up-scaler after all: run as given from now on
        return self._run(feed)

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self.request.infer({n: np.ascontiguousarray(v) for n, v in feed.items()})
        except Exception as exc:  # noqa: BLE001 - a shape the model cannot take
            raise SkinedgeError(f"openvino: the model refused the input ({one_line(exc)})") from None
        return {name: np.array(results[i], dtype=np.float32) for i, name in enumerate(self.outputs)}

    def _deactivate_impl(self) -> None:
        self.request = self.compiled = None


class OvSession:
    """An ONNX-Runtime-like face (``get_inputs()[0].name``, ``run(None, feed)``) over an OpenVINO model, so the
    export's accuracy gates measure an ``int8-ov`` variant with the same code as the ONNX ones."""

    class _Input:
        def __init__(self, name: str, shape: list):
            self.name, self.shape = name, shape

    def __init__(self, model, threads: int = 0):
        config = {"INFERENCE_NUM_THREADS": threads or physical_cores(), "INFERENCE_PRECISION_HINT": "f32"}
        if isinstance(model, (str, Path)):
            self.runner = OvRunner(CompiledFromFile(model, threads)).activate()
        else:
            compiled = compile_bounded(shared_core(), model, config)
            self.runner = OvRunner(lambda: compiled).activate()  # a CompiledModel is callable: not a loader

    def get_inputs(self) -> list:
        return [self._Input(n, self.runner.input_shapes[n]) for n in self.runner.input_names]

    def run(self, _names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.runner.infer(feed)
        return [out[n] for n in self.runner.outputs]
