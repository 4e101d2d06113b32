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
stream, read after the frame's final sync. Not thread-safe, with one exception: the live view's two loops
(:mod:`skinedge.runtime.gpu.two_loops`) call :meth:`GpuPipeline.segment` and :meth:`GpuPipeline.generate_frame`
from the SR loop's thread and :meth:`GpuPipeline.enhance` from the display loop's, each on its own stream, with
buffers and kernels of its own (made on first use: ~3 frame-sized ×scale² float32 buffers more).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.gpu import kernels as ck
from skinedge.runtime.gpu.device import check
from skinedge.runtime.gpu.device_nets import device_net
from skinedge.runtime.gpu.memory import Memory
from skinedge.runtime.gpu.ptx import cached_source_ptx
from skinedge.runtime.pipeline.camera_plane import CAMERA, sr_channels
from skinedge.runtime.pipeline.host import MODES, EarlierSR, FrameResult, check_frame
from skinedge.runtime.pipeline.mask import LesionMask, MaskSettings, lesion_mask
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.pipeline.tiling import tile_side, tile_starts

STAGES = ("preprocess", "seg", "mask", "sr", "project", "composite")
CAMERA_BITS = int(np.float32(CAMERA).view(np.uint32))  # the camera plane's 1.0 as cuMemsetD32 writes it
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


# ---------------------------------------------------------------- stages shared by both lanes

def project_roi(lane, sr: int, h: int, w: int, roi) -> None:
    """Enqueue, on ``lane``'s stream, the projection of the ROI's SR (in place) against the camera's ROI of the
    frame in ``lane``'s buffers, and the lesion's residual into its ``sums``. ``lane``: a :class:`GpuPipeline`
    or the two-loop display (:class:`~skinedge.runtime.gpu.two_loops.DisplayLane`)."""
    from cuda.bindings import driver

    buf, fid = lane.memory.buf, lane.fidelity
    x0, y0, rw, rh = roi
    lane.kernels.masked_roi(buf["frame"], h, w, buf["mask"], lane.size, roi, buf["lr"], surround="frame")
    check(driver.cuMemsetD32Async(buf["sums"], 0, 2, lane.stream), "cuMemsetD32Async")
    lane.kernels.project(sr, buf["lr"], rh, rw, lane.scale, fid.iterations if fid.active else 0,
                         fid.chroma if fid.active else "generator", buf["tmp"], buf["d"],
                         (buf["soft"], lane.size, h, w, x0, y0, buf["sums"]))


def composite_view(lane, h: int, w: int, lm: LesionMask, sr: int | None) -> tuple[int, int, int, int]:
    """Enqueue the composite (``sr`` None: the bicubic background alone) into ``lane``'s ``out`` and its
    download; returns the output rectangle (X0, Y0, OW, OH) in up-scaled frame pixels."""
    buf, scale = lane.memory.buf, lane.scale
    full = (0, 0, w * scale, h * scale)
    if not lm.found:
        lane.kernels.composite(buf["frame"], h, w, None, None, lane.size, (0, 0, 0, 0), scale, full, buf["out"])
        rect = full
    else:
        x0, y0, rw, rh = lm.roi
        rect = full if lane.mode == "full" else (x0 * scale, y0 * scale, rw * scale, rh * scale)
        lane.kernels.composite(buf["frame"], h, w, sr, buf["soft"], lane.size, lm.roi, scale, rect, buf["out"])
    lane.memory.download("out", rect[2] * rect[3] * 3)
    return rect


def view_image(lane, rect) -> np.ndarray:
    """The downloaded composite (after the stream's sync), copied out of the pinned buffer."""
    nbytes = rect[2] * rect[3] * 3
    return lane.memory.host("out", nbytes).reshape(rect[3], rect[2], 3).copy()


def lesion_residual(lane) -> float | None:
    """Mean |down(SR) − LR| in the lesion from the downloaded sums (after the stream's sync)."""
    total, count = lane.memory.host("sums", 8).view(np.float32)
    return float(total / count) if count else None


def frame_bytes(name: str, h: int, w: int, scale: int) -> int:
    """Bytes of a frame-sized buffer of either lane for an h×w frame (``up``: the frame ×scale²)."""
    hw, up = h * w, h * w * scale * scale
    return {"frame": hw * 3, "out": up * 3, "acc": up * 12, "shown": up * 12, "weight": up * 4, "lr": hw * 12,
            "d": hw * 12, "tmp": hw * 12 * scale}[name]


def reserve_frame_buffers(memory: Memory, names: tuple[str, ...], h: int, w: int, scale: int) -> None:
    """(Re)allocate a lane's frame-sized device buffers ``names`` and its pinned frame and result staging."""
    memory.free(names)
    for name in names:
        memory.alloc(name, frame_bytes(name, h, w, scale))
    memory.alloc_pinned("frame", frame_bytes("frame", h, w, scale))
    memory.alloc_pinned("out", frame_bytes("out", h, w, scale))


def elapsed_ms(events, i: int, j: int) -> float:
    from cuda.bindings import driver

    return float(check(driver.cuEventElapsedTime(events[i], events[j]), "cuEventElapsedTime"))


# ---------------------------------------------------------------- the pipeline

class GpuPipeline:
    """``with GpuPipeline(seg, sr, manifest) as p: result = p(frame_bgr)``; see the module docstring.

    Args: those of :class:`~skinedge.runtime.pipeline.host.Pipeline` (``seg``/``sr``: TensorRT or torch-CUDA runners,
    or :class:`DeviceNet` adapters), and ``max_frame`` (H, W) to size the frame buffers for, ``device`` (CUDA
    ordinal; a context already current on the thread is used instead), ``arch``/``cache_dir`` for the kernels,
    ``graphs`` to let torch networks replay CUDA graphs (:class:`TorchCudaNet`).

    The live view's two loops use it by halves, as they use the CPU :class:`Pipeline`: the SR loop's thread
    calls :meth:`segment` and :meth:`generate_frame` (this stream), the display loop's thread :meth:`enhance`
    (a second stream with its own kernels and buffers, :mod:`skinedge.runtime.gpu.two_loops`).
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
        self.scale, self.sr_channels = int(sr_net["scale"]), sr_channels(sr_net)
        self.seg = device_net(seg, seg_net["input"]["name"], seg_net["output"]["name"], graphs)
        self.sr = device_net(sr, sr_net["input"]["name"], sr_net["output"]["name"], graphs)
        self.max_frame, self.device, self.arch, self.cache_dir = tuple(max_frame), device, arch, cache_dir
        self.stream = self.kernels = self.context = self._primary = self._module = None
        self.memory = Memory()
        self._events: list = []
        self._opened, self._nets_open, self._pixels = False, [], 0
        self.slots = self.display = None  # the two loops' hand-over and display lane, made on first use
        self._segmented = None  # the frame whose pixels are in the "frame" buffer (segment → generate_frame)

    # -------------------------------------------------------- setup and teardown

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
            self.stream = self.memory.stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
            self.kernels = ck.Kernels(self.stream, self.arch, self.cache_dir)
            self._load_blend()
            self._events = [check(driver.cuEventCreate(0), "cuEventCreate") for _ in range(len(STAGES) + 1)]
            for net in (self.seg, self.sr):
                net.open(int(self.stream))
                self._nets_open.append(net)
            s, b, t, k, mem = self.size, self.max_batch, self.tile, self.scale, self.memory
            for name, net, role, shape in (("seg_in", self.seg, "input", (1, 3, s, s)),
                                           ("seg_out", self.seg, "output", (1, 1, s, s)),
                                           ("sr_in", self.sr, "input", (b, self.sr_channels, t, t)),
                                           ("sr_out", self.sr, "output", (b, 3, t * k, t * k))):
                mem.buf[name] = net.buffer(role, shape, lambda n, name=name: mem.alloc(name, n))
            for name, nbytes in (("mask", s * s), ("soft", 4 * s * s), ("sums", 8)):
                mem.alloc(name, nbytes)
            for name, nbytes in (("logits", 4 * s * s), ("mask", s * s), ("soft", 4 * s * s), ("sums", 8)):
                mem.alloc_pinned(name, nbytes)
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
        reserve_frame_buffers(self.memory, ("frame", "out", "acc", "weight", "lr", "d", "tmp"), h, w, self.scale)
        self._pixels = h * w
        self._segmented = None
        self.kernels.prepare(h, w, self.size)
        if self.slots is not None:
            self.slots.reserve(frame_bytes("shown", h, w, self.scale))

    def close(self) -> None:
        """Synchronise, then free every buffer, the networks' hold on the stream, the kernels and the stream
        (the two loops' hand-over slots and display lane first)."""
        if not self._opened:
            return
        from cuda.bindings import driver

        for part in (self.slots, self.display):  # the slots wait for both streams, then the display's goes
            if part is not None:
                part.close()
        self.display = self.slots = None
        if self.stream is not None:
            driver.cuStreamSynchronize(self.stream)
        for net in self._nets_open:
            net.close()
        self._nets_open = []
        self.memory.close()
        self._pixels, self._segmented = 0, None
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

    def _begin(self, frame: np.ndarray) -> tuple[int, int]:
        """Check the frame; open, make the context current on this thread, size the buffers."""
        from cuda.bindings import driver

        h, w = check_frame(frame)
        self.open()
        check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._reserve(h, w)
        return h, w

    def _mark(self, i: int) -> None:
        from cuda.bindings import driver

        check(driver.cuEventRecord(self._events[i], self.stream), "cuEventRecord")

    def _super_resolve(self, h: int, w: int, roi) -> int:
        """Enqueue SR of the masked ROI; returns the device pointer of its 1×3×(rh·s)×(rw·s) float32 result."""
        from cuda.bindings import driver

        k, buf, s, c = self.kernels, self.memory.buf, self.scale, self.sr_channels
        x0, y0, rw, rh = roi
        surround = self.fidelity.surround
        if rw <= self.tile and rh <= self.tile:  # one piece, as Pipeline does
            k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, roi, buf["sr_in"], surround=surround)
            self._camera_plane(buf["sr_in"], rh, rw)
            self.sr.run(buf["sr_in"], (1, c, rh, rw), buf["sr_out"], (1, 3, rh * s, rw * s))
            return buf["sr_out"]
        th, tw = tile_side(rh, self.tile, self.overlap), tile_side(rw, self.tile, self.overlap)
        overlap = min(self.overlap, th // 2, tw // 2)
        boxes = [(y, x) for y in tile_starts(rh, th, overlap) for x in tile_starts(rw, tw, overlap)]
        oh, ow = rh * s, rw * s
        check(driver.cuMemsetD32Async(buf["acc"], 0, 3 * oh * ow, self.stream), "cuMemsetD32Async")
        check(driver.cuMemsetD32Async(buf["weight"], 0, oh * ow, self.stream), "cuMemsetD32Async")
        tile_in, tile_out = 4 * c * th * tw, 4 * 3 * th * s * tw * s
        for i in range(0, len(boxes), self.max_batch):
            chunk = boxes[i:i + self.max_batch]
            for j, (y, x) in enumerate(chunk):
                k.masked_roi(buf["frame"], h, w, buf["mask"], self.size, (x0 + x, y0 + y, tw, th),
                             buf["sr_in"] + j * tile_in, surround=surround)
                self._camera_plane(buf["sr_in"] + j * tile_in, th, tw)
            self.sr.run(buf["sr_in"], (len(chunk), c, th, tw), buf["sr_out"], (len(chunk), 3, th * s, tw * s))
            for j, (y, x) in enumerate(chunk):
                self._launch["tile_accumulate"](self.stream, ck.grid(tw * s, th * s), (
                    buf["sr_out"] + j * tile_out, th * s, tw * s, buf["acc"], buf["weight"], oh, ow, y * s, x * s,
                    overlap * s))
        self._launch["tile_normalize"](self.stream, ck.grid(ow, oh), (buf["acc"], buf["weight"], ow, oh))
        return buf["acc"]

    def _camera_plane(self, ptr: int, h: int, w: int) -> None:
        """Fill the 4th input plane of a generator that has one (after the 3 RGB planes the kernel wrote) with the
        camera value: this path serves camera frames and projects fully, it measures no noise level."""
        if self.sr_channels == 4:
            from cuda.bindings import driver

            check(driver.cuMemsetD32Async(ptr + 4 * 3 * h * w, CAMERA_BITS, h * w, self.stream), "cuMemsetD32Async")

    def _segment(self, frame: np.ndarray, h: int, w: int) -> LesionMask:
        """Upload, preprocess, seg (events 0–2), the logits down (the one mid-frame sync), the mask in NumPy."""
        from cuda.bindings import driver

        s, buf = self.size, self.memory.buf
        self._mark(0)
        self.memory.upload("frame", frame)
        self._segmented = frame
        self.kernels.preprocess(buf["frame"], h, w, buf["seg_in"], s, self.mean, self.std)
        self._mark(1)
        self.seg.run(buf["seg_in"], (1, 3, s, s), buf["seg_out"], (1, 1, s, s))
        self._mark(2)
        self.memory.download("logits", 4 * s * s, device="seg_out")
        check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        logits = self.memory.host("logits", 4 * s * s).view(np.float32).reshape(s, s)
        return lesion_mask(logits, (h, w), self.settings)

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Enhance one uint8 BGR H×W×3 frame."""
        from cuda.bindings import driver

        h, w = self._begin(frame)
        lm = self._segment(frame, h, w)
        if lm.found:
            self.memory.upload("mask", lm.mask.astype(np.uint8))
            self.memory.upload("soft", lm.soft.astype(np.float32))
        self._mark(3)
        sr = None
        if lm.found:
            sr = self._super_resolve(h, w, lm.roi)
            self._mark(4)
            project_roi(self, sr, h, w, lm.roi)
        else:
            self._mark(4)
        self._mark(5)
        rect = composite_view(self, h, w, lm, sr)
        if lm.found:
            self.memory.download("sums", 8)
        self._mark(6)
        check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        image = view_image(self, rect)
        t = {stage: elapsed_ms(self._events, i, i + 1) for i, stage in enumerate(STAGES)}
        if not lm.found:
            t["sr"] = t["project"] = 0.0
            t["total"] = sum(t.values())
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only")
        t["total"] = sum(t.values())
        return FrameResult(image, True, lm.roi, lm.area, lm, t, residual=lesion_residual(self))

    # -------------------------------------------------------- the two loops' halves

    def segment(self, frame: np.ndarray, t: dict[str, float], start: float) -> LesionMask:
        """The SR loop's first half: preprocess, segmenter and mask of one frame (timings into ``t``)."""
        h, w = self._begin(frame)
        lm = self._segment(frame, h, w)
        t["preprocess"], t["seg"] = elapsed_ms(self._events, 0, 1), elapsed_ms(self._events, 1, 2)
        t["mask"] = max(0.0, (time.perf_counter() - start) * 1000 - t["preprocess"] - t["seg"])
        return lm

    def generate_frame(self, frame: np.ndarray, lm: LesionMask) -> EarlierSR:
        """The SR loop's second half: the generator's output for the ROI of a frame with a lesion, unprojected,
        published into a hand-over slot (:class:`~skinedge.runtime.gpu.two_loops.SrSlots`) for the display."""
        from skinedge.runtime.gpu.two_loops import SrSlots

        h, w = self._begin(frame)
        if self.slots is None:
            self.slots = SrSlots(self.scale)
            self.slots.reserve(frame_bytes("shown", self._pixels, 1, self.scale))  # the reserved frame size
        if frame is not self._segmented:
            self.memory.upload("frame", frame)
            self._segmented = frame
        self.memory.upload("mask", lm.mask.astype(np.uint8))
        sr = self._super_resolve(h, w, lm.roi)
        return self.slots.publish(sr, lm.roi[2:], self.stream)

    def enhance(self, frame: np.ndarray, lm: LesionMask, t: dict[str, float], start: float,
                earlier: EarlierSR | None = None) -> FrameResult:
        """The display loop's step on its own stream: an SR from :meth:`generate_frame` (``earlier``, already
        moved to where the lesion is now) projected onto *this* frame's camera pixels and composited; without
        one (or when its slot was reused meanwhile), the bicubic up-scale."""
        from skinedge.runtime.gpu.two_loops import DisplayLane

        check_frame(frame)
        self.open()
        if self.display is None:
            self.display = DisplayLane(self).open()
        return self.display.enhance(frame, lm, t, earlier)
