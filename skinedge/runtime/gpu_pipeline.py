"""The pipeline of :mod:`skinedge.runtime.pipeline` on one CUDA stream (DESIGN.md §1, §5).

``with GpuPipeline(seg, sr, manifest, max_frame=(1080, 1920)) as p: result = p(frame_bgr)`` — the same
arguments, the same :class:`FrameResult` and the same pictures as :class:`Pipeline` (≤ 1 LSB for the same
network outputs), with every pixel stage a CUDA kernel on the pipeline's own stream:

upload (pinned, async) → preprocess kernel → seg network → the S×S logits to the host (the one small D→H copy
and the one mid-frame sync) → :func:`lesion_mask` in NumPy → mask and soft mask up → masked_roi kernel (per tile
when the ROI is larger than the tile, straight into the batch buffer) → SR network → tile blend kernels →
composite kernel → download (pinned, async) → one sync.

Tiles are blended on the device by two small kernels compiled here (:data:`BLEND_SOURCE`): ``tile_accumulate``
adds each tile × its feathered weight (the ramps of :mod:`skinedge.runtime.tiling`) into a float32 ROI buffer and
a weight buffer, one launch per tile in tile order, and ``tile_normalize`` divides — the reference's float32
operations in its order, so the blend matches the CPU exactly.

Every buffer is allocated when the pipeline opens: the frame, the output image and the blend buffers for
``max_frame`` (they grow once when a larger frame arrives), the networks' I/O for 1×3×S×S and
``max_batch``×3×tile×tile (×scale²), the S×S masks, the tap tables of the frame size, and pinned host staging for
the frame, the logits, the masks and the result. The result image is copied out of the pinned buffer.

The networks run behind :class:`DeviceNet`: :class:`TrtNet` (``TrtRunner.enqueue`` on the pipeline's stream, the
engine's own device buffers, no copies) or :class:`TorchCudaNet` (the module on
``torch.cuda.ExternalStream(stream)``; its I/O buffers are torch CUDA tensors whose ``data_ptr()`` the kernels
write and read — the robust route: torch owns memory it reads, no foreign-pointer views). torch is imported only
inside :class:`TorchCudaNet`; ``cuda.bindings`` only when the pipeline opens. Stage times are CUDA events on the
stream, read after the frame's final sync. Not thread-safe: one pipeline per thread.
"""

from __future__ import annotations

import ctypes
import os
from collections import OrderedDict

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime import cuda_kernels as ck
from skinedge.runtime.mask import MaskSettings, lesion_mask
from skinedge.runtime.pipeline import MODES, FrameResult, check_frame
from skinedge.runtime.tiling import tile_side, tile_starts

STAGES = ("preprocess", "seg", "mask", "sr", "composite")
BLEND_SOURCE = r"""
// Feathered tile blend of skinedge/runtime/tiling.py::super_resolve_tiled: out += tile·w, weight += w per tile
// (w = wy·wx, linear ramps over the overlap toward a neighbour, 1 at the ROI border), then out /= weight.
__device__ float ramp(int i, int length, int start, int total, int overlap)
{
    float w = 1.0f;
    if (overlap > 0 && start > 0 && i < overlap) w = ((float)i + 0.5f) / (float)overlap;
    if (overlap > 0 && start + length < total && i >= length - overlap)
        w = fminf(w, ((float)(length - 1 - i) + 0.5f) / (float)overlap);
    return w;
}

extern "C" __global__ void tile_accumulate(const float* __restrict__ tile, int th, int tw, float* __restrict__ out,
                                           float* __restrict__ weight, int oh, int ow, int y0, int x0, int overlap)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= tw || y >= th) return;
    const float w = ramp(y, th, y0, oh, overlap) * ramp(x, tw, x0, ow, overlap);
    const size_t o = (size_t)(y0 + y) * ow + x0 + x, plane = (size_t)oh * ow, tplane = (size_t)th * tw;
    for (int c = 0; c < 3; ++c) {
        const float v = tile[c * tplane + (size_t)y * tw + x] * w;
        out[c * plane + o] = out[c * plane + o] + v;
    }
    weight[o] = weight[o] + w;
}

extern "C" __global__ void tile_normalize(float* __restrict__ out, const float* __restrict__ weight, int ow, int oh)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= ow || y >= oh) return;
    const size_t o = (size_t)y * ow + x, plane = (size_t)oh * ow;
    for (int c = 0; c < 3; ++c) out[c * plane + o] = out[c * plane + o] / weight[o];
}
"""
BLEND_SIGNATURES = {
    "tile_accumulate": [ck._P, ck._I, ck._I, ck._P, ck._P, ck._I, ck._I, ck._I, ck._I, ck._I],
    "tile_normalize": [ck._P, ck._P, ck._I, ck._I],
}


def blend_ptx(arch: str | int, cache_dir: str | os.PathLike | None = None) -> bytes:
    """PTX of :data:`BLEND_SOURCE`, through the same disk cache and key as the pipeline's kernels."""
    return ck.cached_source_ptx(BLEND_SOURCE, "tile_blend", arch, cache_dir)


def _numel(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


# ---------------------------------------------------------------- network adapters

class DeviceNet:
    """One network on the pipeline's stream: float32 NCHW device input → float32 device output, enqueued only.

    ``buffer`` provides the network's I/O buffers once, at open (default: ``alloc``, the pipeline's own
    ``cuMemAlloc``); ``run`` always gets those buffers' base pointers.
    """

    def open(self, stream: int) -> None:
        """Get ready to run on the CUDA stream with this handle."""

    def buffer(self, role: str, shape: tuple[int, ...], alloc) -> int:
        """A device buffer for the largest ``role`` ("input" or "output") of this ``shape``."""
        return alloc(4 * _numel(shape))

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
        return ptr if nbytes >= 4 * _numel(shape) else alloc(4 * _numel(shape))

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
        tensor = self.torch.empty(_numel(shape), dtype=self.torch.float32, device=self.device)
        self.tensors[tensor.data_ptr()] = tensor
        return tensor.data_ptr()

    def _view(self, ptr: int, shape):
        return self.tensors[ptr][:_numel(shape)].view(*shape)

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


# ---------------------------------------------------------------- the pipeline

class GpuPipeline:
    """``with GpuPipeline(seg, sr, manifest) as p: result = p(frame_bgr)``; see the module docstring.

    Args: those of :class:`~skinedge.runtime.pipeline.Pipeline` (``seg``/``sr``: TensorRT or torch-CUDA runners,
    or :class:`DeviceNet` adapters), and ``max_frame`` (H, W) to size the frame buffers for, ``device`` (CUDA
    ordinal; a context already current on the thread is used instead), ``arch``/``cache_dir`` for the kernels,
    ``graphs`` to let torch networks replay CUDA graphs (:class:`TorchCudaNet`).
    """

    def __init__(self, seg, sr, manifest: dict, mode: str = "roi", settings: MaskSettings = MaskSettings(),
                 tile: int = 128, overlap: int = 8, max_batch: int = 4, max_frame: tuple[int, int] = (1080, 1920),
                 device: int = 0, arch: str | int | None = None, cache_dir: str | os.PathLike | None = None,
                 graphs: bool = True):
        if mode not in MODES:
            raise SkinedgeError(f"unknown mode {mode!r}; choose roi or full")
        self.mode, self.settings, self.tile, self.overlap, self.max_batch = mode, settings, tile, overlap, max_batch
        seg_net, sr_net = manifest["networks"]["seg"], manifest["networks"]["sr"]
        self.size = int(seg_net["input"]["shape"][2])
        self.mean, self.std = seg_net["input"]["mean"], seg_net["input"]["std"]
        self.scale = int(sr_net["scale"])
        self.seg = device_net(seg, seg_net["input"]["name"], seg_net["output"]["name"], graphs)
        self.sr = device_net(sr, sr_net["input"]["name"], sr_net["output"]["name"], graphs)
        self.max_frame, self.device, self.arch, self.cache_dir = tuple(max_frame), device, arch, cache_dir
        self.stream = self.kernels = self.context = self._primary = self._module = None
        self._owned: dict[str, int] = {}  # name → device pointer this pipeline allocated
        self._pinned: dict[str, tuple[int, np.ndarray]] = {}  # name → (pinned pointer, uint8 view)
        self._buf: dict[str, int] = {}  # name → device pointer in use (owned or a network's)
        self._events: list = []
        self._opened, self._nets_open, self._pixels = False, [], 0

    # -------------------------------------------------------- setup and teardown

    def _check(self, result, what: str):
        return ck._cu_check(result, what)

    def _alloc(self, name: str, nbytes: int) -> int:
        from cuda.bindings import driver

        self._owned[name] = int(self._check(driver.cuMemAlloc(max(int(nbytes), 1)), f"cuMemAlloc ({name})"))
        return self._owned[name]

    def _alloc_pinned(self, name: str, nbytes: int) -> None:
        from cuda.bindings import driver

        ptr = int(self._check(driver.cuMemAllocHost(max(int(nbytes), 1)), f"cuMemAllocHost ({name})"))
        self._pinned[name] = (ptr, np.ctypeslib.as_array((ctypes.c_uint8 * max(int(nbytes), 1)).from_address(ptr)))

    def _free(self, names) -> None:
        from cuda.bindings import driver

        for name in names:
            if name in self._owned:
                driver.cuMemFree(self._owned.pop(name))
            if name in self._pinned:
                driver.cuMemFreeHost(self._pinned.pop(name)[0])
            self._buf.pop(name, None)

    def open(self) -> "GpuPipeline":
        """Context, stream, kernels, networks and every buffer (done by ``with`` or the first frame)."""
        if self._opened:
            return self
        from cuda.bindings import driver

        self._check(driver.cuInit(0), "cuInit")
        self.context = self._check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if self.context is None or not int(self.context):  # none yet: the primary one (torch, cudart use it too)
            self._primary = self._check(driver.cuDeviceGet(self.device), "cuDeviceGet")
            self.context = self._check(driver.cuDevicePrimaryCtxRetain(self._primary), "cuDevicePrimaryCtxRetain")
            self._check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._opened = True
        try:
            self.stream = self._check(driver.cuStreamCreate(0), "cuStreamCreate")
            self.kernels = ck.Kernels(self.stream, self.arch, self.cache_dir)
            self._load_blend()
            self._events = [self._check(driver.cuEventCreate(0), "cuEventCreate") for _ in range(len(STAGES) + 1)]
            for net in (self.seg, self.sr):
                net.open(int(self.stream))
                self._nets_open.append(net)
            s, b, t, k = self.size, self.max_batch, self.tile, self.scale
            for name, net, role, shape in (("seg_in", self.seg, "input", (1, 3, s, s)),
                                           ("seg_out", self.seg, "output", (1, 1, s, s)),
                                           ("sr_in", self.sr, "input", (b, 3, t, t)),
                                           ("sr_out", self.sr, "output", (b, 3, t * k, t * k))):
                self._buf[name] = net.buffer(role, shape, lambda n, name=name: self._alloc(name, n))
            for name, nbytes in (("mask", s * s), ("soft", 4 * s * s)):
                self._buf[name] = self._alloc(name, nbytes)
            for name, nbytes in (("logits", 4 * s * s), ("mask", s * s), ("soft", 4 * s * s)):
                self._alloc_pinned(name, nbytes)
            self._reserve(*self.max_frame)
        except BaseException:
            self.close()
            raise
        return self

    def _load_blend(self) -> None:
        from cuda.bindings import driver

        ptx = np.frombuffer(blend_ptx(self.kernels.arch, self.cache_dir) + b"\0", dtype=np.uint8)
        self._module = self._check(driver.cuModuleLoadData(ptx.ctypes.data), "cuModuleLoadData tile_blend")
        self._launch = {name: ck._Launcher(self._check(driver.cuModuleGetFunction(self._module, name.encode()),
                                                       f"cuModuleGetFunction {name}"), types)
                        for name, types in BLEND_SIGNATURES.items()}

    def _reserve(self, h: int, w: int) -> None:
        """Frame-sized buffers for an h×w frame (freed and made again only when a larger frame arrives)."""
        from cuda.bindings import driver

        if h * w <= self._pixels:
            return
        if self._pixels:
            self._check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        names = ("frame", "out", "acc", "weight")
        self._free(names)
        up = h * w * self.scale * self.scale
        for name, nbytes in zip(names, (h * w * 3, up * 3, up * 3 * 4, up * 4)):
            self._buf[name] = self._alloc(name, nbytes)
        self._alloc_pinned("frame", h * w * 3)
        self._alloc_pinned("out", up * 3)
        self._pixels = h * w
        self.kernels.prepare(h, w, self.size)

    def close(self) -> None:
        """Synchronise, then free every buffer, the networks' hold on the stream, the kernels and the stream."""
        if not self._opened:
            return
        from cuda.bindings import driver

        if self.stream is not None:
            driver.cuStreamSynchronize(self.stream)
        for net in self._nets_open:
            net.close()
        self._nets_open = []
        self._free(list(self._owned) + list(self._pinned))
        self._buf, self._pixels = {}, 0
        if self.kernels is not None:
            self.kernels.close()
        if self._module is not None:
            driver.cuModuleUnload(self._module)
        for event in self._events:
            driver.cuEventDestroy(event)
        if self.stream is not None:
            driver.cuStreamDestroy(self.stream)
        if self._primary is not None:
            driver.cuDevicePrimaryCtxRelease(self._primary)
        self.stream = self.kernels = self._module = self._primary = None
        self._events, self._opened = [], False

    def __enter__(self) -> "GpuPipeline":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------- one frame

    def _copy(self, direction: str, name: str, nbytes: int) -> None:
        from cuda.bindings import driver

        host, dev = self._pinned[name][0], self._buf[name if name != "logits" else "seg_out"]
        if direction == "up":
            self._check(driver.cuMemcpyHtoDAsync(dev, host, nbytes, self.stream), "cuMemcpyHtoDAsync")
        else:
            self._check(driver.cuMemcpyDtoHAsync(host, dev, nbytes, self.stream), "cuMemcpyDtoHAsync")

    def _upload(self, name: str, array: np.ndarray) -> None:
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self._pinned[name][1][:flat.size] = flat
        self._copy("up", name, flat.size)

    def _super_resolve(self, h: int, w: int, roi) -> int:
        """Enqueue SR of the masked ROI; returns the device pointer of its 1×3×(rh·s)×(rw·s) float32 result."""
        from cuda.bindings import driver

        k, buf, s = self.kernels, self._buf, self.scale
        x0, y0, rw, rh = roi
        if rw <= self.tile and rh <= self.tile:  # one piece, as Pipeline does
            k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, roi, buf["sr_in"])
            self.sr.run(buf["sr_in"], (1, 3, rh, rw), buf["sr_out"], (1, 3, rh * s, rw * s))
            return buf["sr_out"]
        th, tw = tile_side(rh, self.tile, self.overlap), tile_side(rw, self.tile, self.overlap)
        overlap = min(self.overlap, th // 2, tw // 2)
        boxes = [(y, x) for y in tile_starts(rh, th, overlap) for x in tile_starts(rw, tw, overlap)]
        oh, ow = rh * s, rw * s
        self._check(driver.cuMemsetD32Async(buf["acc"], 0, 3 * oh * ow, self.stream), "cuMemsetD32Async")
        self._check(driver.cuMemsetD32Async(buf["weight"], 0, oh * ow, self.stream), "cuMemsetD32Async")
        tile_in, tile_out = 4 * 3 * th * tw, 4 * 3 * th * s * tw * s
        for i in range(0, len(boxes), self.max_batch):
            chunk = boxes[i:i + self.max_batch]
            for j, (y, x) in enumerate(chunk):
                k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, (x0 + x, y0 + y, tw, th),
                             buf["sr_in"] + j * tile_in)
            self.sr.run(buf["sr_in"], (len(chunk), 3, th, tw), buf["sr_out"], (len(chunk), 3, th * s, tw * s))
            for j, (y, x) in enumerate(chunk):
                self._launch["tile_accumulate"](self.stream, ck._grid(tw * s, th * s), (
                    buf["sr_out"] + j * tile_out, th * s, tw * s, buf["acc"], buf["weight"], oh, ow, y * s, x * s,
                    overlap * s))
        self._launch["tile_normalize"](self.stream, ck._grid(ow, oh), (buf["acc"], buf["weight"], ow, oh))
        return buf["acc"]

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Enhance one uint8 BGR H×W×3 frame."""
        from cuda.bindings import driver

        h, w = check_frame(frame)
        self.open()
        self._check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._reserve(h, w)
        k, buf, s, scale = self.kernels, self._buf, self.size, self.scale

        def mark(i: int) -> None:
            self._check(driver.cuEventRecord(self._events[i], self.stream), "cuEventRecord")

        mark(0)
        self._upload("frame", frame)
        k.preprocess(buf["frame"], h, w, buf["seg_in"], s, self.mean, self.std)
        mark(1)
        self.seg.run(buf["seg_in"], (1, 3, s, s), buf["seg_out"], (1, 1, s, s))
        mark(2)
        self._copy("down", "logits", 4 * s * s)
        self._check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        logits = self._pinned["logits"][1][:4 * s * s].view(np.float32).reshape(s, s)
        lm = lesion_mask(logits, (h, w), self.settings)
        full = (0, 0, w * scale, h * scale)
        if lm.found:
            self._upload("mask", lm.mask.astype(np.uint8))
            self._upload("soft", lm.soft.astype(np.float32))
        mark(3)
        if lm.found:
            sr = self._super_resolve(h, w, lm.roi)
            x0, y0, rw, rh = lm.roi
            rect = full if self.mode == "full" else (x0 * scale, y0 * scale, rw * scale, rh * scale)
            mark(4)
            k.composite(buf["frame"], h, w, sr, buf["soft"], s, lm.roi, scale, rect, buf["out"])
        else:
            rect = full
            mark(4)
            k.composite(buf["frame"], h, w, None, None, s, (0, 0, 0, 0), scale, rect, buf["out"])
        nbytes = rect[2] * rect[3] * 3
        self._copy("down", "out", nbytes)
        mark(5)
        self._check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        image = self._pinned["out"][1][:nbytes].reshape(rect[3], rect[2], 3).copy()
        t = {stage: float(self._check(driver.cuEventElapsedTime(self._events[i], self._events[i + 1]),
                                      "cuEventElapsedTime")) for i, stage in enumerate(STAGES)}
        if not lm.found:
            t["sr"] = 0.0
            t["total"] = sum(t.values())
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only")
        t["total"] = sum(t.values())
        return FrameResult(image, True, lm.roi, lm.area, lm, t)
