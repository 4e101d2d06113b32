"""The networks of :class:`~skinedge.runtime.gpu.pipeline.GpuPipeline`: one interface (:class:`DeviceNet`:
float32 NCHW device input → float32 device output, enqueued on the pipeline's stream) over a TensorRT engine
(:class:`TrtNet`) or a torch module on CUDA (:class:`TorchCudaNet`, with CUDA graphs). torch is imported only
inside :class:`TorchCudaNet`."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from skinedge.errors import SkinedgeError


def numel(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


class DeviceNet:
    """One network on the pipeline's stream: float32 NCHW device input → float32 device output, enqueued only.

    ``buffer`` provides the network's I/O buffers once, at open (default: ``alloc``, the pipeline's own
    ``cuMemAlloc``); ``run`` always gets those buffers' base pointers.
    """

    def open(self, stream: int) -> None:
        """Get ready to run on the CUDA stream with this handle."""

    def buffer(self, role: str, shape: tuple[int, ...], alloc) -> int:
        """A device buffer for the largest ``role`` ("input" or "output") of this ``shape``."""
        return alloc(4 * numel(shape))

    def run(self, x: int, x_shape: tuple[int, ...], y: int, y_shape: tuple[int, ...]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``open`` and ``buffer`` took (the stream has been synchronised)."""


class TrtNet(DeviceNet):
    """A :class:`~skinedge.runtime.backends.tensorrt.TrtRunner` re-activated on the pipeline's stream."""

    def __init__(self, runner, input_name: str, output_name: str):
        self.runner, self.names, self.saved = runner, {"input": input_name, "output": output_name}, None

    def open(self, stream: int) -> None:
        r = self.runner
        if r.active and (r.stream is None or int(r.stream) != stream):
            r.deactivate()  # it made or was given another stream: rebuild its context on ours
        self.saved, r.stream_arg = r.stream_arg, stream
        r.activate()
        for name in self.names.values():
            if r.dtypes[name] != np.float32:
                raise SkinedgeError(f"tensorrt: {name!r} is {r.dtypes[name]}; GpuPipeline needs float32 I/O "
                                    "(precision lives inside the ONNX file, DESIGN.md §3)")

    def buffer(self, role, shape, alloc):
        ptr, nbytes = self.runner.device_buffers[self.names[role]]
        return ptr if nbytes >= 4 * numel(shape) else alloc(4 * numel(shape))

    def run(self, x, x_shape, y, y_shape):
        shapes = self.runner.enqueue({self.names["input"]: (x, x_shape)}, {self.names["output"]: y})
        if tuple(shapes[self.names["output"]]) != tuple(y_shape):
            raise SkinedgeError(f"tensorrt: output {shapes[self.names['output']]} for input {x_shape}; "
                                f"expected {y_shape}")

    def close(self):
        self.runner.deactivate()
        self.runner.stream_arg = self.saved


class TorchCudaNet(DeviceNet):
    """A :class:`~skinedge.runtime.backends.torch.TorchRunner` on CUDA, run on ``torch.cuda.ExternalStream``.

    The network's I/O buffers never move, so a forward pass whose shapes repeat is captured once as a CUDA graph
    and replayed: one launch instead of hundreds (eager EfficientNet-B3 at batch 1 is launch-bound). A shape runs
    eagerly the first time it is seen (warm-up), is captured the second time and replayed from then on; at most
    :attr:`GRAPHS` graphs are kept (least recently used dropped) and they share one memory pool (they replay one
    after another on one stream and copy their result into the fixed output buffer, so no graph's scratch memory
    outlives its replay), so ever-changing ROI sizes cannot pile up memory. If a capture fails the network runs eagerly
    from then on and :attr:`eager_why` says why.
    """

    GRAPHS, SEEN = 8, 4096

    def __init__(self, runner, input_name: str, output_name: str, graphs: bool = True):
        self.runner, self.tensors, self.torch, self.stream = runner, {}, None, None
        self.use_graphs, self.eager_why = graphs, None if graphs else "CUDA graphs turned off"
        self.graphs, self.seen, self.pool = OrderedDict(), set(), None

    def open(self, stream: int) -> None:
        import torch

        self.runner.activate()
        if self.runner.device != "cuda":
            raise SkinedgeError("GpuPipeline needs the torch runner on CUDA (ModuleFromCheckpoint(device='cuda'))")
        self.torch, self.stream = torch, torch.cuda.ExternalStream(stream)
        self.device = next(self.runner.model.parameters()).device
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    def buffer(self, role, shape, alloc):
        tensor = self.torch.empty(numel(shape), dtype=self.torch.float32, device=self.device)
        self.tensors[tensor.data_ptr()] = tensor
        return tensor.data_ptr()

    def _view(self, ptr: int, shape):
        return self.tensors[ptr][:numel(shape)].view(*shape)

    def _forward(self, x, x_shape, y, y_shape):
        torch, r = self.torch, self.runner
        inp = self._view(x, x_shape)
        inp = (inp.half() if r.half else inp).contiguous(memory_format=torch.channels_last)
        out = r.model(inp)
        if r.clamp:
            out = out.clamp(0, 1)
        if tuple(out.shape) != tuple(y_shape):
            raise SkinedgeError(f"torch: output {tuple(out.shape)} for input {x_shape}; expected {y_shape}")
        self._view(y, y_shape).copy_(out)

    def _capture(self, key, x, x_shape, y, y_shape):
        torch = self.torch
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
                self._forward(x, x_shape, y, y_shape)
        except Exception as exc:  # noqa: BLE001 - an op that cannot be captured: eager is still right
            self.use_graphs, self.eager_why = False, f"CUDA graph capture failed: {type(exc).__name__}: {exc}"
            self.graphs.clear()
            return None
        self.graphs[key] = graph
        if len(self.graphs) > self.GRAPHS:
            self.graphs.popitem(last=False)
        return graph

    def run(self, x, x_shape, y, y_shape):
        torch, key = self.torch, (x, tuple(x_shape), y, tuple(y_shape))
        with torch.cuda.stream(self.stream), torch.no_grad():
            graph = self.graphs.get(key)
            if graph is None and self.use_graphs and key in self.seen:
                graph = self._capture(key, x, x_shape, y, y_shape)
            if graph is None:
                if len(self.seen) >= self.SEEN:
                    self.seen.clear()
                self.seen.add(key)
                self._forward(x, x_shape, y, y_shape)
            else:
                self.graphs.move_to_end(key)
                graph.replay()

    def close(self):
        self.graphs.clear()
        self.seen.clear()
        self.tensors = {}
        self.runner.deactivate()


def device_net(net, input_name: str, output_name: str, graphs: bool = True) -> DeviceNet:
    """The adapter of a runner: TensorRT → :class:`TrtNet`, torch → :class:`TorchCudaNet`; a DeviceNet as is."""
    if isinstance(net, DeviceNet):
        return net
    kind = getattr(net, "name", type(net).__name__)
    if kind == "tensorrt":
        return TrtNet(net, input_name, output_name)
    if kind == "torch":
        return TorchCudaNet(net, input_name, output_name, graphs)
    raise SkinedgeError(f"GpuPipeline runs tensorrt or torch (CUDA) runners, not {kind!r}; use Pipeline on the CPU")
