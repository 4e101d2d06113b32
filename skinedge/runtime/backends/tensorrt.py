"""TensorRT backend: one engine, one execution context, buffers allocated once, one CUDA stream.

``TrtRunner(EngineFromPath(path, models_dir))`` deserializes a checked engine
(:func:`skinedge.runtime.engines.load_engine`), binds tensors by name and runs
``execute_async_v3`` on a stream it creates or is given (``stream=``, so the
pipeline's seg engine, SR engine and CUDA kernels share one stream). Device
buffers are sized from the engine's optimization-profile maxima at activate;
frames allocate nothing.

Two ways to run:

- ``infer({name: array})`` (the Runner interface): host→device copy through
  pinned staging buffers, execute, device→host copy, synchronise. Outputs are
  views of the staging buffers (``reuses_outputs``): copy them to keep them.
- ``enqueue(device_inputs, device_outputs)``: the on-GPU pipeline's path; binds
  device pointers the caller owns (or this runner's own buffers, see
  ``device_buffers``), enqueues, and returns the output shapes. No copies, no
  synchronisation.

``tensorrt`` and ``cuda.bindings`` are imported only when a runner activates.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Opened, Runner
from skinedge.runtime.engines.load import find_engine, load_engine
from skinedge.runtime.engines.manifest import read_manifest, sidecar_path
from skinedge.runtime.engines.trt import require_tensorrt, trt_logger
from skinedge.runtime.gpu.device import check


def _cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise SkinedgeError("cuda-python is not installed: pip install 'skinedge[gpu]' "
                            "(cuda-python 12.x on JetPack 6)") from None
    return runtime


def _stream_handle(stream) -> int:
    return int(stream) if stream is not None else 0


class EngineFromPath:
    """Loader: the engine file's bytes, checked against its sidecar and this system (and the
    models directory's ONNX file when ``models_dir`` is given); ``rebuild`` rebuilds on a mismatch."""

    def __init__(self, engine_path: str | Path, models_dir: str | Path | None = None, rebuild: bool = False,
                 log: Callable[[str], None] = print):
        self.engine_path, self.models_dir, self.rebuild, self.log = Path(engine_path), models_dir, rebuild, log

    def __call__(self) -> bytes:
        return load_engine(self.engine_path, self.models_dir, self.rebuild, self.log)


class TrtRunner(Runner):
    """Runs one TensorRT engine; see the module docstring.

    Args:
        loader: bytes of a serialized engine, or a callable returning them (:class:`EngineFromPath`).
        stream: a CUDA stream (``cudaStream_t``/``CUstream`` or its integer handle) to run on;
            None: the runner creates one and destroys it on deactivate.
    """

    name = "tensorrt"
    reuses_outputs = True

    def __init__(self, loader, stream=None):
        super().__init__(loader)
        self.stream_arg = stream
        self.engine = self.context = self.runtime = None
        self.stream = None
        self.own_stream = False
        self.device_buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.host_buffers: dict[str, tuple[int, np.ndarray]] = {}  # name -> (pinned pointer, uint8 view)
        self.dtypes: dict[str, np.dtype] = {}
        self.ranges: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # input -> (min, max)
        self.output_names: list[str] = []

    # ---- activate / deactivate
    def _activate_impl(self, blob) -> list[str]:
        trt = require_tensorrt()
        cudart = _cudart()
        try:
            self._setup(trt, cudart, blob)
        except BaseException:
            self._deactivate_impl()
            raise
        return list(self.ranges)

    def _setup(self, trt, cudart, blob) -> None:
        self.runtime = trt.Runtime(trt_logger())
        self.engine = self.runtime.deserialize_cuda_engine(bytes(blob))
        if self.engine is None:
            raise SkinedgeError("TensorRT could not deserialize the engine (built by another TensorRT version or "
                                "for another GPU?); rebuild it with `skinedge build-engines`")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise SkinedgeError("TensorRT could not create an execution context (out of GPU memory?)")

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in inputs]
        for name in names:
            self.dtypes[name] = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
        for name in inputs:
            lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
            self.ranges[name] = (tuple(lo), tuple(hi))
            if not self.context.set_input_shape(name, tuple(hi)):
                raise SkinedgeError(f"TensorRT rejected the maximum shape {tuple(hi)} of input {name!r}")
        sizes = {n: tuple(self.ranges[n][1]) for n in inputs}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise SkinedgeError(f"TensorRT cannot size output {name!r} from the maximum input shapes ({shape})")
            sizes[name] = shape
        for name, shape in sizes.items():
            nbytes = max(int(np.prod(shape)) * self.dtypes[name].itemsize, 1)
            ptr = int(check(cudart.cudaMalloc(nbytes), f"cudaMalloc ({name}, {nbytes} bytes)"))
            self.device_buffers[name] = (ptr, nbytes)
            self.context.set_tensor_address(name, ptr)
        if self.stream_arg is not None:
            self.stream = self.stream_arg
        else:
            self.stream = check(cudart.cudaStreamCreate(), "cudaStreamCreate")
            self.own_stream = True

    def _deactivate_impl(self) -> None:
        cudart = _cudart()
        if self.stream is not None:
            cudart.cudaStreamSynchronize(self.stream)
        self.context = None  # the context before its engine, the engine before its runtime
        self.engine = None
        self.runtime = None
        for ptr, _ in self.device_buffers.values():
            cudart.cudaFree(ptr)
        for ptr, _ in self.host_buffers.values():
            cudart.cudaFreeHost(ptr)
        self.device_buffers, self.host_buffers = {}, {}
        if self.own_stream and self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
        self.stream, self.own_stream = None, False
        self.ranges, self.dtypes, self.output_names = {}, {}, []

    # ---- helpers
    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        lo, hi = self.ranges[name]
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise SkinedgeError(f"tensorrt: input {name!r} has shape {tuple(shape)}; this engine takes "
                                f"{'x'.join(map(str, lo))} to {'x'.join(map(str, hi))} (rebuild with a wider profile)")

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        self._check_shape(name, shape)
        if not self.context.set_input_shape(name, tuple(int(s) for s in shape)):
            raise SkinedgeError(f"TensorRT rejected shape {tuple(shape)} for input {name!r}")

    def _execute(self) -> None:
        if not self.context.execute_async_v3(_stream_handle(self.stream)):
            raise SkinedgeError("TensorRT execute_async_v3 failed (see the TensorRT messages above)")

    def _host(self, name: str) -> tuple[int, np.ndarray]:
        """Pinned host staging buffer of one tensor, allocated on first use (once)."""
        if name not in self.host_buffers:
            nbytes = self.device_buffers[name][1]
            ptr = int(check(_cudart().cudaMallocHost(nbytes), f"cudaMallocHost ({name})"))
            view = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))
            self.host_buffers[name] = (ptr, view)
        return self.host_buffers[name]

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shapes for the input shapes set last."""
        return {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}

    # ---- running
    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.ranges:
            array = np.ascontiguousarray(feed[name], dtype=self.dtypes[name])
            self._set_shape(name, array.shape)
            ptr, view = self._host(name)
            view[:array.nbytes] = array.reshape(-1).view(np.uint8)
            dev = self.device_buffers[name][0]
            self.context.set_tensor_address(name, dev)
            check(cudart.cudaMemcpyAsync(dev, ptr, array.nbytes, h2d, self.stream), "cudaMemcpyAsync (to device)")
        for name in self.output_names:
            self.context.set_tensor_address(name, self.device_buffers[name][0])
        self._execute()
        outputs = {}
        for name, shape in self.output_shapes().items():
            nbytes = int(np.prod(shape)) * self.dtypes[name].itemsize
            ptr, view = self._host(name)
            check(cudart.cudaMemcpyAsync(ptr, self.device_buffers[name][0], nbytes, d2h, self.stream),
                "cudaMemcpyAsync (to host)")
            outputs[name] = view[:nbytes].view(self.dtypes[name]).reshape(shape)
        check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return outputs

    def enqueue(self, device_inputs: dict[str, tuple[int, tuple[int, ...]]],
                device_outputs: dict[str, int] | None = None) -> dict[str, tuple[int, ...]]:
        """Enqueue one run on the stream with device pointers; no copies, no synchronisation.

        Args:
            device_inputs: every input name -> (device pointer, shape); the data must be ready on
                (or ordered before, on) this runner's stream.
            device_outputs: output name -> device pointer, big enough for the output of these
                shapes; an output not given is written to this runner's own buffer
                (``device_buffers[name][0]``).

        Returns:
            Output name -> shape.
        """
        if not self.active:
            raise SkinedgeError("tensorrt runner used before activate() (use `with runner:`)")
        missing = [n for n in self.ranges if n not in device_inputs]
        if missing:
            raise SkinedgeError(f"tensorrt: missing input(s) {missing}; this engine takes {list(self.ranges)}")
        for name, (ptr, shape) in device_inputs.items():
            if name not in self.ranges:
                raise SkinedgeError(f"tensorrt: {name!r} is not an input of this engine ({list(self.ranges)})")
            self._set_shape(name, tuple(shape))
            self.context.set_tensor_address(name, int(ptr))
        device_outputs = device_outputs or {}
        for name in self.output_names:
            self.context.set_tensor_address(name, int(device_outputs.get(name, self.device_buffers[name][0])))
        self._execute()
        return self.output_shapes()


def open_engines(models_dir: Path, manifest: dict, precision: str, engines: Path | None, why: str):
    """The two TensorRT runners for :func:`skinedge.runtime.backends.open_runners` (not yet activated)."""
    require_tensorrt()
    if engines is None:
        raise SkinedgeError("the tensorrt backend needs --engines DIR (made by `skinedge build-engines`)")
    paths = {net: find_engine(engines, net, None if precision == "auto" else precision) for net in ("seg", "sr")}
    variants = {net: read_manifest(sidecar_path(path)).get("variant", precision) for net, path in paths.items()}
    seg, sr = (TrtRunner(EngineFromPath(paths[net], models_dir)) for net in ("seg", "sr"))
    biggest = next(iter(read_manifest(sidecar_path(paths["sr"]))["shapes"].values()))["max"]  # N, C, H, W
    return Opened(seg, sr, "tensorrt", variants, why, tile=min(biggest[2], biggest[3]), max_batch=biggest[0])
