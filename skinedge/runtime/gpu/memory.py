"""The device buffers and pinned host staging of one CUDA stream's share of a pipeline.

:class:`~skinedge.runtime.gpu.pipeline.GpuPipeline` keeps one :class:`Memory` for its stream, and the two-loop
display (:mod:`skinedge.runtime.gpu.two_loops`) one for its own: a thread only ever touches the buffers of its
own stream, so the two loops never race on an allocation or on a staging buffer.
"""

from __future__ import annotations

import ctypes

import numpy as np

from skinedge.runtime.gpu.device import check


class Memory:
    """Named device buffers (``buf``: in use, ``owned``: allocated here) and pinned host buffers (``pinned``),
    with async copies between them on ``stream`` (set before the first copy)."""

    def __init__(self):
        self.owned: dict[str, int] = {}  # name → device pointer allocated here
        self.pinned: dict[str, tuple[int, np.ndarray]] = {}  # name → (pinned pointer, uint8 view)
        self.buf: dict[str, int] = {}  # name → device pointer in use (owned, or a network's own)
        self.stream = None

    def alloc(self, name: str, nbytes: int) -> int:
        from cuda.bindings import driver

        self.owned[name] = self.buf[name] = int(check(driver.cuMemAlloc(max(int(nbytes), 1)), f"cuMemAlloc ({name})"))
        return self.owned[name]

    def alloc_pinned(self, name: str, nbytes: int) -> None:
        from cuda.bindings import driver

        ptr = int(check(driver.cuMemAllocHost(max(int(nbytes), 1)), f"cuMemAllocHost ({name})"))
        self.pinned[name] = (ptr, np.ctypeslib.as_array((ctypes.c_uint8 * max(int(nbytes), 1)).from_address(ptr)))

    def free(self, names) -> None:
        from cuda.bindings import driver

        for name in list(names):
            if name in self.owned:
                driver.cuMemFree(self.owned.pop(name))
            if name in self.pinned:
                driver.cuMemFreeHost(self.pinned.pop(name)[0])
            self.buf.pop(name, None)

    def close(self) -> None:
        """Free everything (the stream must have been synchronised)."""
        self.free(list(self.owned) + list(self.pinned))
        self.buf = {}

    def upload(self, name: str, array: np.ndarray) -> None:
        """``array``'s bytes → pinned ``name`` → device ``name``, async on the stream."""
        from cuda.bindings import driver

        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        host = self.pinned[name]
        host[1][:flat.size] = flat
        check(driver.cuMemcpyHtoDAsync(self.buf[name], host[0], flat.size, self.stream), "cuMemcpyHtoDAsync")

    def download(self, name: str, nbytes: int, device: str | None = None) -> None:
        """Device ``device`` (default ``name``) → pinned ``name``, async on the stream."""
        from cuda.bindings import driver

        check(driver.cuMemcpyDtoHAsync(self.pinned[name][0], self.buf[device or name], nbytes, self.stream),
              "cuMemcpyDtoHAsync")

    def host(self, name: str, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of pinned ``name`` (valid after the stream's next sync)."""
        return self.pinned[name][1][:nbytes]
