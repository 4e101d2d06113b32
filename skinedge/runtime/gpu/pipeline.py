"""The pipeline of :mod:`skinedge.runtime.pipeline.host` on one CUDA stream (DESIGN.md §1, §5).

``with GpuPipeline(seg, sr, manifest, max_frame=(1080, 1920)) as p: result = p(frame_bgr)`` — the same
arguments, the same :class:`FrameResult` and the same pictures as :class:`Pipeline` (≤ 1 LSB for the same
network outputs), with every pixel stage a CUDA kernel on the pipeline's own stream:

upload (pinned, async) → preprocess kernel → seg network → the S×S logits to the host (the one small D→H copy
and the one mid-frame sync) → :func:`lesion_mask` in NumPy → mask and soft mask up → masked_roi kernel (per tile
when the ROI is larger than the tile, straight into the batch buffer) → SR network → tile blend kernels →
projection kernels (the residual summed on the device) → composite kernel → download (pinned, async) → one sync.

Tiles are blended on the device by two small kernels compiled here (:data:`BLEND_SOURCE`): ``tile_accumulate``
adds each tile × its feathered weight (the ramps of :mod:`skinedge.runtime.pipeline.tiling`) into a float32 ROI
buffer and a weight buffer, one launch per tile in tile order, and ``tile_normalize`` divides — the reference's float32
operations in its order, so the blend matches the CPU exactly.

Every buffer is allocated when the pipeline opens: the frame, the output image and the blend buffers for
``max_frame`` (they grow once when a larger frame arrives), the networks' I/O for 1×3×S×S and
``max_batch``×3×tile×tile (×scale²), the S×S masks, the tap tables of the frame size, and pinned host staging for
the frame, the logits, the masks and the result. The result image is copied out of the pinned buffer.

The networks run behind :mod:`skinedge.runtime.gpu.device_nets`: :class:`TrtNet` (``TrtRunner.enqueue`` on the
pipeline's stream, the engine's own device buffers, no copies) or :class:`TorchCudaNet` (the module on
``torch.cuda.ExternalStream(stream)``; its I/O buffers are torch CUDA tensors whose ``data_ptr()`` the kernels
write and read — the robust route: torch owns memory it reads, no foreign-pointer views). torch is imported only
inside :class:`TorchCudaNet`; ``cuda.bindings`` only when the pipeline opens. Stage times are CUDA events on the
stream, read after the frame's final sync. Not thread-safe: one pipeline per thread.
"""

from __future__ import annotations

from dataclasses import replace

import ctypes
import os

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.gpu import kernels as ck
from skinedge.runtime.gpu.device import check
from skinedge.runtime.gpu.device_nets import device_net
from skinedge.runtime.gpu.ptx import cached_source_ptx
from skinedge.runtime.pipeline.host import MODES, FrameResult, check_frame
from skinedge.runtime.pipeline.mask import MaskSettings, lesion_mask
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.pipeline.tiling import tile_side, tile_starts

STAGES = ("preprocess", "seg", "mask", "sr", "project", "composite")
BLEND_SOURCE = r"""
// Feathered tile blend of skinedge/runtime/pipeline/tiling.py::super_resolve_tiled: out += tile·w, weight += w per tile
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
    "tile_accumulate": [ck.PTR, ck.INT, ck.INT, ck.PTR, ck.PTR, ck.INT, ck.INT, ck.INT, ck.INT, ck.INT],
    "tile_normalize": [ck.PTR, ck.PTR, ck.INT, ck.INT],
}


def blend_ptx(arch: str | int, cache_dir: str | os.PathLike | None = None) -> bytes:
    """PTX of :data:`BLEND_SOURCE`, through the same disk cache and key as the pipeline's kernels."""
    return cached_source_ptx(BLEND_SOURCE, "tile_blend", arch, cache_dir)


# ---------------------------------------------------------------- the pipeline

class GpuPipeline:
    """``with GpuPipeline(seg, sr, manifest) as p: result = p(frame_bgr)``; see the module docstring.

    Args: those of :class:`~skinedge.runtime.pipeline.host.Pipeline` (``seg``/``sr``: TensorRT or torch-CUDA runners,
    or :class:`DeviceNet` adapters), and ``max_frame`` (H, W) to size the frame buffers for, ``device`` (CUDA
    ordinal; a context already current on the thread is used instead), ``arch``/``cache_dir`` for the kernels,
    ``graphs`` to let torch networks replay CUDA graphs (:class:`TorchCudaNet`).
    """

    def __init__(self, seg, sr, manifest: dict, mode: str = "roi", settings: MaskSettings = MaskSettings(),
                 tile: int = 128, overlap: int = 8, max_batch: int = 4, max_frame: tuple[int, int] = (1080, 1920),
                 device: int = 0, arch: str | int | None = None, cache_dir: str | os.PathLike | None = None,
                 graphs: bool = True, fidelity: Fidelity = Fidelity()):
        if mode not in MODES:
            raise SkinedgeError(f"unknown mode {mode!r}; choose roi or full")
        self.mode, self.settings, self.tile, self.overlap, self.max_batch = mode, settings, tile, overlap, max_batch
        self.fidelity = replace(fidelity, noise="off")  # the CUDA kernel projects fully (no noise-floor stop yet)
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

    def _alloc(self, name: str, nbytes: int) -> int:
        from cuda.bindings import driver

        self._owned[name] = int(check(driver.cuMemAlloc(max(int(nbytes), 1)), f"cuMemAlloc ({name})"))
        return self._owned[name]

    def _alloc_pinned(self, name: str, nbytes: int) -> None:
        from cuda.bindings import driver

        ptr = int(check(driver.cuMemAllocHost(max(int(nbytes), 1)), f"cuMemAllocHost ({name})"))
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

        check(driver.cuInit(0), "cuInit")
        self.context = check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if self.context is None or not int(self.context):  # none yet: the primary one (torch, cudart use it too)
            self._primary = check(driver.cuDeviceGet(self.device), "cuDeviceGet")
            self.context = check(driver.cuDevicePrimaryCtxRetain(self._primary), "cuDevicePrimaryCtxRetain")
            check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._opened = True
        try:
            self.stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
            self.kernels = ck.Kernels(self.stream, self.arch, self.cache_dir)
            self._load_blend()
            self._events = [check(driver.cuEventCreate(0), "cuEventCreate") for _ in range(len(STAGES) + 1)]
            for net in (self.seg, self.sr):
                net.open(int(self.stream))
                self._nets_open.append(net)
            s, b, t, k = self.size, self.max_batch, self.tile, self.scale
            for name, net, role, shape in (("seg_in", self.seg, "input", (1, 3, s, s)),
                                           ("seg_out", self.seg, "output", (1, 1, s, s)),
                                           ("sr_in", self.sr, "input", (b, 3, t, t)),
                                           ("sr_out", self.sr, "output", (b, 3, t * k, t * k))):
                self._buf[name] = net.buffer(role, shape, lambda n, name=name: self._alloc(name, n))
            for name, nbytes in (("mask", s * s), ("soft", 4 * s * s), ("sums", 8)):
                self._buf[name] = self._alloc(name, nbytes)
            for name, nbytes in (("logits", 4 * s * s), ("mask", s * s), ("soft", 4 * s * s), ("sums", 8)):
                self._alloc_pinned(name, nbytes)
            self._reserve(*self.max_frame)
        except BaseException:
            self.close()
            raise
        return self

    def _load_blend(self) -> None:
        from cuda.bindings import driver

        ptx = np.frombuffer(blend_ptx(self.kernels.arch, self.cache_dir) + b"\0", dtype=np.uint8)
        self._module = check(driver.cuModuleLoadData(ptx.ctypes.data), "cuModuleLoadData tile_blend")
        self._launch = {name: ck.Launcher(check(driver.cuModuleGetFunction(self._module, name.encode()),
                                                       f"cuModuleGetFunction {name}"), types)
                        for name, types in BLEND_SIGNATURES.items()}

    def _reserve(self, h: int, w: int) -> None:
        """Frame-sized buffers for an h×w frame (freed and made again only when a larger frame arrives)."""
        from cuda.bindings import driver

        if h * w <= self._pixels:
            return
        if self._pixels:
            check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        names = ("frame", "out", "acc", "weight", "lr", "d", "tmp")
        self._free(names)
        up = h * w * self.scale * self.scale
        for name, nbytes in zip(names, (h * w * 3, up * 3, up * 3 * 4, up * 4, h * w * 12, h * w * 12,
                                        h * w * 12 * self.scale)):
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
            check(driver.cuMemcpyHtoDAsync(dev, host, nbytes, self.stream), "cuMemcpyHtoDAsync")
        else:
            check(driver.cuMemcpyDtoHAsync(host, dev, nbytes, self.stream), "cuMemcpyDtoHAsync")

    def _upload(self, name: str, array: np.ndarray) -> None:
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self._pinned[name][1][:flat.size] = flat
        self._copy("up", name, flat.size)

    def _super_resolve(self, h: int, w: int, roi) -> int:
        """Enqueue SR of the masked ROI; returns the device pointer of its 1×3×(rh·s)×(rw·s) float32 result."""
        from cuda.bindings import driver

        k, buf, s = self.kernels, self._buf, self.scale
        x0, y0, rw, rh = roi
        surround = self.fidelity.surround
        if rw <= self.tile and rh <= self.tile:  # one piece, as Pipeline does
            k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, roi, buf["sr_in"], surround=surround)
            self.sr.run(buf["sr_in"], (1, 3, rh, rw), buf["sr_out"], (1, 3, rh * s, rw * s))
            return buf["sr_out"]
        th, tw = tile_side(rh, self.tile, self.overlap), tile_side(rw, self.tile, self.overlap)
        overlap = min(self.overlap, th // 2, tw // 2)
        boxes = [(y, x) for y in tile_starts(rh, th, overlap) for x in tile_starts(rw, tw, overlap)]
        oh, ow = rh * s, rw * s
        check(driver.cuMemsetD32Async(buf["acc"], 0, 3 * oh * ow, self.stream), "cuMemsetD32Async")
        check(driver.cuMemsetD32Async(buf["weight"], 0, oh * ow, self.stream), "cuMemsetD32Async")
        tile_in, tile_out = 4 * 3 * th * tw, 4 * 3 * th * s * tw * s
        for i in range(0, len(boxes), self.max_batch):
            chunk = boxes[i:i + self.max_batch]
            for j, (y, x) in enumerate(chunk):
                k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, (x0 + x, y0 + y, tw, th),
                             buf["sr_in"] + j * tile_in, surround=surround)
            self.sr.run(buf["sr_in"], (len(chunk), 3, th, tw), buf["sr_out"], (len(chunk), 3, th * s, tw * s))
            for j, (y, x) in enumerate(chunk):
                self._launch["tile_accumulate"](self.stream, ck.grid(tw * s, th * s), (
                    buf["sr_out"] + j * tile_out, th * s, tw * s, buf["acc"], buf["weight"], oh, ow, y * s, x * s,
                    overlap * s))
        self._launch["tile_normalize"](self.stream, ck.grid(ow, oh), (buf["acc"], buf["weight"], ow, oh))
        return buf["acc"]

    def _project(self, sr: int, h: int, w: int, roi) -> None:
        """Enqueue the projection of the ROI's SR (in place) against the camera's ROI, and the lesion's residual."""
        from cuda.bindings import driver

        buf, fid = self._buf, self.fidelity
        x0, y0, rw, rh = roi
        self.kernels.masked_roi(buf["frame"], h, w, buf["mask"], self.size, roi, buf["lr"], surround="frame")
        check(driver.cuMemsetD32Async(buf["sums"], 0, 2, self.stream), "cuMemsetD32Async")
        self.kernels.project(sr, buf["lr"], rh, rw, self.scale, fid.iterations if fid.active else 0,
                             fid.chroma if fid.active else "generator", buf["tmp"], buf["d"],
                             (buf["soft"], self.size, h, w, x0, y0, buf["sums"]))

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Enhance one uint8 BGR H×W×3 frame."""
        from cuda.bindings import driver

        h, w = check_frame(frame)
        self.open()
        check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._reserve(h, w)
        k, buf, s, scale = self.kernels, self._buf, self.size, self.scale

        def mark(i: int) -> None:
            check(driver.cuEventRecord(self._events[i], self.stream), "cuEventRecord")

        mark(0)
        self._upload("frame", frame)
        k.preprocess(buf["frame"], h, w, buf["seg_in"], s, self.mean, self.std)
        mark(1)
        self.seg.run(buf["seg_in"], (1, 3, s, s), buf["seg_out"], (1, 1, s, s))
        mark(2)
        self._copy("down", "logits", 4 * s * s)
        check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
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
            self._project(sr, h, w, lm.roi)
            mark(5)
            k.composite(buf["frame"], h, w, sr, buf["soft"], s, lm.roi, scale, rect, buf["out"])
        else:
            rect = full
            mark(4)
            mark(5)
            k.composite(buf["frame"], h, w, None, None, s, (0, 0, 0, 0), scale, rect, buf["out"])
        nbytes = rect[2] * rect[3] * 3
        self._copy("down", "out", nbytes)
        if lm.found:
            self._copy("down", "sums", 8)
        mark(6)
        check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        image = self._pinned["out"][1][:nbytes].reshape(rect[3], rect[2], 3).copy()
        t = {stage: float(check(driver.cuEventElapsedTime(self._events[i], self._events[i + 1]),
                                      "cuEventElapsedTime")) for i, stage in enumerate(STAGES)}
        if not lm.found:
            t["sr"] = t["project"] = 0.0
            t["total"] = sum(t.values())
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only")
        t["total"] = sum(t.values())
        total, count = self._pinned["sums"][1][:8].view(np.float32)
        return FrameResult(image, True, lm.roi, lm.area, lm, t, residual=float(total / count) if count else None)
