"""The live view's two loops on :class:`~skinedge.runtime.gpu.pipeline.GpuPipeline`: two CUDA streams, one per loop.

The SR loop's thread runs the segmenter and the generator on the pipeline's stream
(:meth:`~skinedge.runtime.gpu.pipeline.GpuPipeline.segment`, :meth:`~.GpuPipeline.generate_frame`) and publishes
each SR into a hand-over slot (:class:`SrSlots`); the display loop's thread projects the newest one onto the
current frame and composites it on a stream, kernels and buffers of its own (:class:`DisplayLane`). So the
generator's time sets how old the SR on screen is, never how long a shown frame takes, as on the CPU
(:mod:`skinedge.runtime.live.sr_loop`).

The hand-over is ordered by events, not by host locks around GPU work:

- the SR stream, before it overwrites a slot, waits for the display stream's last copy out of it (``read``);
- the display stream, before it copies a slot, waits for the SR stream's write into it (``ready``; the SR loop
  also synchronises on it before publishing, so the display never waits for a generator on the GPU);
- a slot's generation changes when the SR loop claims it, and the display copies only a slot whose generation
  is the one it was handed: a result the SR loop has since overwritten shows the bicubic up-scale, never
  another frame's SR. A lock makes "check the generation, enqueue the copy, record ``read``" one step
  against "bump the generation, wait for ``read``".

Two slots suffice: the display shows the newest result, and the SR loop writes into the other one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from skinedge.runtime.gpu import kernels as ck
from skinedge.runtime.gpu.device import check
from skinedge.runtime.gpu.memory import Memory
from skinedge.runtime.pipeline.host import BICUBIC_NOTE, EarlierSR, FrameResult, check_frame
from skinedge.runtime.pipeline.mask import LesionMask

SLOTS = 2
EVENT_DISABLE_TIMING = 2  # CU_EVENT_DISABLE_TIMING: the hand-over events only order the two streams
DISPLAY_STAGES = ("project", "composite")  # events 0→1: upload, copy-in and projection; 1→2: composite, download


@dataclass(frozen=True)
class DeviceSR:
    """The ``sr`` of an :class:`EarlierSR` made on the GPU: which slot holds it, and in which generation."""

    index: int
    generation: int
    shape: tuple[int, int, int, int]  # 1×3×(rh·scale)×(rw·scale), float32

    @property
    def nbytes(self) -> int:
        return 4 * int(np.prod(self.shape))


class SrSlots:
    """Device buffers the SR loop publishes into and the display loop copies out of (see the module docstring).

    Made on the SR loop's thread with the pipeline's context current; :meth:`reserve` sizes them.
    """

    def __init__(self, scale: int, count: int = SLOTS):
        from cuda.bindings import driver

        self.scale, self.count = scale, count
        self.lock = threading.Lock()
        self.memory = Memory()
        self.generation = [0] * count
        self.next = 0
        self.nbytes = 0
        self.ready = [check(driver.cuEventCreate(EVENT_DISABLE_TIMING), "cuEventCreate") for _ in range(count)]
        self.read = [check(driver.cuEventCreate(EVENT_DISABLE_TIMING), "cuEventCreate") for _ in range(count)]
        self.streams: list = []  # every stream that may have work on the slots (synchronised before a resize)

    def reserve(self, nbytes: int) -> None:
        """Slots of at least ``nbytes`` each; a resize waits for both streams and invalidates every slot."""
        from cuda.bindings import driver

        with self.lock:
            if nbytes <= self.nbytes:
                return
            for stream in self.streams:
                check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            self.memory.free([f"slot{i}" for i in range(self.count)])
            for i in range(self.count):
                self.memory.alloc(f"slot{i}", nbytes)
                self.generation[i] += 1
            self.nbytes = nbytes

    def publish(self, sr: int, size: tuple[int, int], stream) -> EarlierSR:
        """Copy the SR at ``sr`` (1×3×(h·scale)×(w·scale) float32 for a ``size`` = (w, h) ROI) into the next slot
        on ``stream``, after the display's last copy out of it; returns once it is there."""
        from cuda.bindings import driver

        shape = (1, 3, size[1] * self.scale, size[0] * self.scale)
        with self.lock:
            if stream not in self.streams:
                self.streams.append(stream)
            i, self.next = self.next, (self.next + 1) % self.count
            self.generation[i] += 1
            got = DeviceSR(i, self.generation[i], shape)
            check(driver.cuStreamWaitEvent(stream, self.read[i], 0), "cuStreamWaitEvent")
            dst = self.memory.buf[f"slot{i}"]
        check(driver.cuMemcpyDtoDAsync(dst, sr, got.nbytes, stream), "cuMemcpyDtoDAsync")
        check(driver.cuEventRecord(self.ready[i], stream), "cuEventRecord")
        check(driver.cuEventSynchronize(self.ready[i]), "cuEventSynchronize")
        return EarlierSR(got, None, size)

    def copy_out(self, got: DeviceSR, dst: int, stream) -> bool:
        """Enqueue on ``stream`` the copy of ``got``'s slot into ``dst``; False (nothing enqueued) when the SR
        loop has claimed that slot again since."""
        from cuda.bindings import driver

        with self.lock:
            if stream not in self.streams:
                self.streams.append(stream)
            if self.generation[got.index] != got.generation or got.nbytes > self.nbytes:
                return False
            check(driver.cuStreamWaitEvent(stream, self.ready[got.index], 0), "cuStreamWaitEvent")
            check(driver.cuMemcpyDtoDAsync(dst, self.memory.buf[f"slot{got.index}"], got.nbytes, stream),
                  "cuMemcpyDtoDAsync")
            check(driver.cuEventRecord(self.read[got.index], stream), "cuEventRecord")
        return True

    def close(self) -> None:
        """Wait for both streams, then free the slots and the events."""
        from cuda.bindings import driver

        with self.lock:
            for stream in self.streams:
                driver.cuStreamSynchronize(stream)
            self.memory.close()
            for event in self.ready + self.read:
                driver.cuEventDestroy(event)
            self.ready, self.read, self.streams, self.nbytes = [], [], [], 0


class DisplayLane:
    """The display loop's half: projection and composite of one frame on a stream of its own.

    Same kernels, same arithmetic as the one-loop frame of :class:`GpuPipeline` (its :func:`project_roi` and
    :func:`composite_view`), so a frame shown from an earlier SR equals what the CPU pipeline's
    ``enhance(..., earlier=...)`` makes of the same SR. Buffers for ``owner.max_frame``, grown once for a larger
    frame. Used by one thread (the display loop's).
    """

    def __init__(self, owner):
        self.owner = owner
        self.size, self.scale, self.mode, self.fidelity = owner.size, owner.scale, owner.mode, owner.fidelity
        self.memory = Memory()
        self.stream = self.kernels = None
        self._events: list = []
        self._pixels = 0

    def open(self) -> "DisplayLane":
        from cuda.bindings import driver

        check(driver.cuCtxSetCurrent(self.owner.context), "cuCtxSetCurrent")
        try:
            self.stream = self.memory.stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
            self.kernels = ck.Kernels(self.stream, self.owner.arch, self.owner.cache_dir)
            self._events = [check(driver.cuEventCreate(0), "cuEventCreate") for _ in range(len(DISPLAY_STAGES) + 1)]
            s = self.size
            for name, nbytes in (("mask", s * s), ("soft", 4 * s * s), ("sums", 8)):
                self.memory.alloc(name, nbytes)
                self.memory.alloc_pinned(name, nbytes)
            self._reserve(*self.owner.max_frame)
        except BaseException:
            self.close()
            raise
        return self

    def _reserve(self, h: int, w: int) -> None:
        from cuda.bindings import driver

        if h * w <= self._pixels:
            return
        if self._pixels:
            check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        from skinedge.runtime.gpu.pipeline import reserve_frame_buffers

        reserve_frame_buffers(self.memory, ("frame", "out", "shown", "lr", "d", "tmp"), h, w, self.scale)
        self._pixels = h * w

    def close(self) -> None:
        from cuda.bindings import driver

        if self.stream is not None:
            driver.cuStreamSynchronize(self.stream)
        self.memory.close()
        if self.kernels is not None:
            self.kernels.close()
        for event in self._events:
            driver.cuEventDestroy(event)
        if self.stream is not None:
            driver.cuStreamDestroy(self.stream)
        self.stream = self.kernels = None
        self._events, self._pixels = [], 0

    def _mark(self, i: int) -> None:
        from cuda.bindings import driver

        check(driver.cuEventRecord(self._events[i], self.stream), "cuEventRecord")

    def enhance(self, frame: np.ndarray, lm: LesionMask, t: dict[str, float],
                earlier: EarlierSR | None) -> FrameResult:
        """See :meth:`GpuPipeline.enhance`."""
        from cuda.bindings import driver

        from skinedge.runtime.gpu.pipeline import composite_view, elapsed_ms, lesion_residual, project_roi, view_image

        h, w = check_frame(frame)
        check(driver.cuCtxSetCurrent(self.owner.context), "cuCtxSetCurrent")
        self._reserve(h, w)
        mem, slots = self.memory, self.owner.slots
        self._mark(0)
        mem.upload("frame", frame)
        sr = None
        if lm.found:
            mem.upload("mask", lm.mask.astype(np.uint8))
            mem.upload("soft", lm.soft.astype(np.float32))
            got = earlier.sr if earlier is not None else None
            rw, rh = lm.roi[2:]
            if (isinstance(got, DeviceSR) and slots is not None and got.shape[2:] == (rh * self.scale, rw * self.scale)
                    and slots.copy_out(got, mem.buf["shown"], self.stream)):
                sr = mem.buf["shown"]
                project_roi(self, sr, h, w, lm.roi)
                mem.download("sums", 8)
        self._mark(1)
        rect = composite_view(self, h, w, lm, sr)
        self._mark(2)
        check(driver.cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        image = view_image(self, rect)
        t.update({stage: elapsed_ms(self._events, i, i + 1) for i, stage in enumerate(DISPLAY_STAGES)})
        t["sr"] = 0.0  # the generator ran on the SR loop's stream
        t["total"] = sum(v for k, v in t.items() if k != "total")
        if not lm.found:
            return FrameResult(image, False, None, lm.area, lm, t, "no lesion found: smooth up-scale only",
                               computed=False)
        return FrameResult(image, True, lm.roi, lm.area, lm, t, "" if sr is not None else BICUBIC_NOTE,
                           residual=lesion_residual(self) if sr is not None else None, computed=False)
