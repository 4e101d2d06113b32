"""Test helpers: the CUDA kernels built for the CPU with g++, and a fake ``cuda.bindings.driver`` that runs them.

Shared by ``test_kernels.py`` (the kernels one by one) and ``test_gpu_pipeline.py`` (the whole GPU pipeline).

- :class:`HostRunner` compiles every ``extern "C" __global__`` kernel of each source with a tiny CUDA shim into a
  shared library (``-ffp-contract=off``, like NVRTC's ``--fmad=false``) whose ``host_<name>(grid_x, grid_y, ...)``
  loops over the grid and the block: same indexing and float32 operation order as on the GPU.
- :class:`FakeDriver` is just enough of the driver API on host memory: "device" pointers are host addresses,
  copies are ``memmove``, streams run everything at once (so synchronising is a no-op), events read the clock, and
  ``cuLaunchKernel`` reads the parameter block as the driver does (an array of pointers to the values, typed by
  the kernel's signature) and runs the host-built kernel. It counts allocations, and logs the calls that order
  two streams (device-to-device copies, event records and waits) in ``ops``.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import time
import types

import numpy as np

from skinedge.runtime.gpu import kernels as ck
from skinedge.runtime.gpu import ptx as nv
from skinedge.runtime.pipeline.reference import resample_taps

_SHIM = r"""
#include <algorithm>
#include <cmath>
#include <cstddef>
#define __global__
#define __device__
#define __forceinline__ inline
using std::min;
inline float atomicAdd(float* p, float v) { float old = *p; *p = old + v; return old; }
struct Dim3 { int x, y, z; };
static Dim3 blockIdx, threadIdx, blockDim;
"""
_CTYPES = {np.uint64: ctypes.c_void_p, np.int32: ctypes.c_int, np.float32: ctypes.c_float}


def kernel_names(source: str) -> list[str]:
    return re.findall(r'extern "C" __global__ void (\w+)\(', source)


def _host_wrapper(name: str, source: str) -> str:
    match = re.search(rf'extern "C" __global__ void {name}\((.*?)\)\s*\{{', source, re.S)
    assert match, name
    params = [" ".join(p.split()) for p in match.group(1).split(",")]
    names = ", ".join(re.findall(r"\w+", p)[-1] for p in params)
    bx, by, _ = ck.BLOCK
    return (f'extern "C" void host_{name}(int grid_x, int grid_y, {", ".join(params)}) {{\n'
            f"  blockDim = {{{bx}, {by}, 1}};\n"
            "  for (int gy_ = 0; gy_ < grid_y; ++gy_) for (int gx_ = 0; gx_ < grid_x; ++gx_)\n"
            f"  for (int ty_ = 0; ty_ < {by}; ++ty_) for (int tx_ = 0; tx_ < {bx}; ++tx_) {{\n"
            "    blockIdx = {gx_, gy_, 0}; threadIdx = {tx_, ty_, 0};\n"
            f"    {name}({names});\n  }}\n}}\n")


class HostRunner:
    """Runs the .cu kernels on the CPU, through the same argument builders as :class:`Kernels`.

    ``extra``: more sources (module name → CUDA text) to build, with their kernels' parameter types in
    ``signatures`` (kernel name → list of NumPy types, as ``kernels.SIGNATURES``).
    """

    def __init__(self, folder, extra: dict[str, str] | None = None, signatures: dict | None = None):
        self.fn = {}
        self.signatures = {**ck.SIGNATURES, **(signatures or {})}
        for module, source in {**nv.kernel_sources(), **(extra or {})}.items():
            names = kernel_names(source)
            cpp, lib = folder / f"{module}.cpp", folder / f"lib{module}.so"
            cpp.write_text(_SHIM + source + "\n" + "".join(_host_wrapper(n, source) for n in names))
            subprocess.run(["g++", "-O2", "-std=c++17", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                            str(cpp), "-o", str(lib)], check=True, capture_output=True, timeout=120)
            library = ctypes.CDLL(str(lib))
            for name in names:
                fn = getattr(library, f"host_{name}")
                fn.argtypes = [ctypes.c_int, ctypes.c_int] + [_CTYPES[t] for t in self.signatures[name]]
                fn.restype = None
                self.fn[name] = fn

    def preprocess(self, frame, size, mean, std, pad=0):
        h, w = frame.shape[:2]
        buffer = np.full((h, w + pad, 3), 255, np.uint8)  # pitched: the padding must never be read
        buffer[:, :w] = frame
        keep = []

        def tables(n_in, n_out):
            index, weight = resample_taps(n_in, n_out)
            keep.extend([index, weight])
            return index.ctypes.data, weight.ctypes.data, index.shape[1]

        oh, ow = (size, size) if isinstance(size, int) else size
        out = np.full((1, 3, oh, ow), np.nan, np.float32)
        grid, args = ck.preprocess_args(tables, buffer.ctypes.data, h, w, out.ctypes.data, size, mean, std,
                                        pitch=buffer.strides[0])
        self.fn["preprocess"](*grid, *args)
        return out

    def masked_roi(self, frame, mask, roi, surround="frame"):
        h, w = frame.shape[:2]
        out = np.full((1, 3, roi[3], roi[2]), np.nan, np.float32)
        mask = np.ascontiguousarray(mask, np.uint8)
        grid, args = ck.masked_roi_args(frame.ctypes.data, h, w, mask.ctypes.data, mask.shape[0], roi, out.ctypes.data,
                                        surround=surround)
        self.fn["masked_roi"](*grid, *args)
        return out

    def project(self, sr, lr, scale, iterations, chroma, lesion=None):
        """The projection kernels in :func:`ck.project_launches` order; returns (projected SR, residual sums).

        ``lesion``: (soft, frame_shape, roi) to accumulate the residual as the pipeline does."""
        x = np.ascontiguousarray(sr, np.float32).copy()
        lr = np.ascontiguousarray(lr, np.float32)
        _, _, h, w = lr.shape
        tmp = np.full(3 * h * w * scale, np.nan, np.float32)
        d = np.full(3 * h * w, np.nan, np.float32)
        sums = np.zeros(2, np.float32)
        keep = []
        residual = None
        if lesion is not None:
            soft, (height, width), roi = lesion
            soft = np.ascontiguousarray(soft, np.float32)
            keep.append(soft)
            residual = (soft.ctypes.data, soft.shape[0], height, width, roi[0], roi[1], sums.ctypes.data)

        def launch(name, grid, args):
            self.fn[name](*grid, *(0 if a is None else a for a in args))

        ck.project_launches(launch, x.ctypes.data, lr.ctypes.data, h, w, scale, iterations, chroma, tmp.ctypes.data,
                            d.ctypes.data, residual)
        return x, sums

    def composite(self, frame, sr, soft, roi, scale, out_rect):
        h, w = frame.shape[:2]
        out = np.zeros((out_rect[3], out_rect[2], 3), np.uint8)
        soft = np.ascontiguousarray(soft, np.float32)
        sr_ptr = None if sr is None else np.ascontiguousarray(sr, np.float32).ctypes.data
        grid, args = ck.composite_args(frame.ctypes.data, h, w, sr_ptr, soft.ctypes.data, soft.shape[0], roi, scale,
                                       out_rect, out.ctypes.data)
        self.fn["composite"](*grid, *args)
        return out


class FakeDriver:
    """Just enough of ``cuda.bindings.driver`` for :class:`Kernels`, the GPU tests' runner and ``GpuPipeline``."""

    class CUresult(int):
        pass

    CUresult.CUDA_SUCCESS = CUresult(0)
    CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION = CUresult(222)

    class CUstream:
        def __init__(self, handle=0):
            self.handle = int(handle)

        def __int__(self):
            return self.handle

    class CUevent:
        def __init__(self):
            self.time = None

    class CUcontext(CUstream):
        pass

    def __init__(self, host_fns, signatures: dict | None = None):
        self.host_fns, self.memory, self.launches, self.freed, self.unloaded = host_fns, {}, [], [], []
        self.signatures = {**ck.SIGNATURES, **(signatures or {})}
        self.ok = self.CUresult.CUDA_SUCCESS
        self.allocs = 0  # cuMemAlloc calls
        self.host_allocs, self.host_freed = 0, []  # cuMemAllocHost calls, cuMemFreeHost pointers
        self.streams, self.events, self.syncs, self.destroyed = [], [], 0, []
        self.ops: list[tuple] = []  # stream-ordering calls in call order: ("copy" | "record" | "wait" | ...)
        self.context = self.CUcontext(0)  # none current until cuCtxSetCurrent
        self.retained = 0

    # ---- errors, context, device
    def cuGetErrorName(self, err):
        return self.ok, b"FAKE_ERROR"

    def cuGetErrorString(self, err):
        return self.ok, b"fake"

    def cuInit(self, flags):
        return (self.ok,)

    def cuDeviceGet(self, ordinal):
        return self.ok, int(ordinal)

    def cuDevicePrimaryCtxRetain(self, device):
        self.retained += 1
        return self.ok, self.CUcontext(1000 + device)

    def cuDevicePrimaryCtxRelease(self, device):
        self.retained -= 1
        return (self.ok,)

    def cuCtxGetCurrent(self):
        return self.ok, self.context

    def cuCtxSetCurrent(self, context):
        self.context = context
        return (self.ok,)

    # ---- modules and launches
    def cuModuleLoadData(self, image):
        text = ctypes.string_at(image).decode()
        return self.ok, ",".join(re.findall(r"\.entry (\w+)", text))

    def cuModuleGetFunction(self, module, name):
        assert name.decode() in module.split(",")
        return self.ok, name.decode()

    def cuModuleUnload(self, module):
        self.unloaded.append(module)
        return (self.ok,)

    def cuLaunchKernel(self, f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        assert (gz, bx, by, bz, shared, extra) == (1, *ck.BLOCK, 0, 0) and isinstance(stream, self.CUstream)
        types_ = self.signatures[f]
        pointers = (ctypes.c_uint64 * len(types_)).from_address(params)
        cvalue = {np.uint64: ctypes.c_uint64, np.int32: ctypes.c_int32, np.float32: ctypes.c_float}
        values = [cvalue[t].from_address(pointers[i]).value for i, t in enumerate(types_)]
        self.launches.append((f, int(stream)))
        self.host_fns[f](gx, gy, *values)
        return (self.ok,)

    # ---- memory
    def cuMemAlloc(self, nbytes):
        self.allocs += 1
        buffer = np.zeros(nbytes, np.uint8)
        self.memory[buffer.ctypes.data] = buffer
        return self.ok, buffer.ctypes.data

    def cuMemFree(self, ptr):
        self.freed.append(int(ptr))
        return (self.ok,)

    def cuMemAllocHost(self, nbytes):
        self.host_allocs += 1
        buffer = np.zeros(nbytes, np.uint8)
        self.memory[buffer.ctypes.data] = buffer
        return self.ok, buffer.ctypes.data

    def cuMemFreeHost(self, ptr):
        self.host_freed.append(int(ptr))
        return (self.ok,)

    def cuMemcpyHtoD(self, dst, src, nbytes):
        ctypes.memmove(int(dst), src, nbytes)
        return (self.ok,)

    def cuMemcpyHtoDAsync(self, dst, src, nbytes, stream):
        assert isinstance(stream, self.CUstream)
        return self.cuMemcpyHtoD(dst, src, nbytes)

    def cuMemcpyDtoH(self, dst, src, nbytes):
        ctypes.memmove(dst, int(src), nbytes)
        return (self.ok,)

    def cuMemcpyDtoHAsync(self, dst, src, nbytes, stream):
        assert isinstance(stream, self.CUstream)
        return self.cuMemcpyDtoH(dst, src, nbytes)

    def cuMemcpyDtoDAsync(self, dst, src, nbytes, stream):
        assert isinstance(stream, self.CUstream)
        self.ops.append(("copy", int(stream), int(dst), int(src)))
        ctypes.memmove(int(dst), int(src), nbytes)
        return (self.ok,)

    def cuMemsetD32Async(self, dst, value, count, stream):
        assert isinstance(stream, self.CUstream)
        np.ctypeslib.as_array((ctypes.c_uint32 * int(count)).from_address(int(dst)))[:] = value
        return (self.ok,)

    # ---- streams and events
    def cuStreamCreate(self, flags):
        stream = self.CUstream(100 + len(self.streams))
        self.streams.append(stream)
        return self.ok, stream

    def cuStreamDestroy(self, stream):
        self.streams.remove(stream)
        self.destroyed.append(stream)
        return (self.ok,)

    def cuStreamSynchronize(self, stream):
        assert not any(stream is gone for gone in self.destroyed), "synchronising a stream that was destroyed"
        self.syncs += 1
        return (self.ok,)

    def cuEventCreate(self, flags):
        event = self.CUevent()
        event.flags = int(flags)
        self.events.append(event)
        return self.ok, event

    def cuEventRecord(self, event, stream):
        assert isinstance(stream, self.CUstream) and event in self.events
        event.time = time.perf_counter()
        self.ops.append(("record", int(stream), event))
        return (self.ok,)

    def cuEventSynchronize(self, event):
        assert event in self.events
        self.ops.append(("event sync", None, event))
        return (self.ok,)

    def cuStreamWaitEvent(self, stream, event, flags):
        assert isinstance(stream, self.CUstream) and stream in self.streams and event in self.events
        self.ops.append(("wait", int(stream), event))
        return (self.ok,)

    def cuEventElapsedTime(self, start, end):
        assert start.time is not None and end.time is not None, "elapsed time of an event never recorded"
        assert not (start.flags | end.flags) & 2, "elapsed time of an event made with CU_EVENT_DISABLE_TIMING"
        return self.ok, (end.time - start.time) * 1000.0

    def cuEventDestroy(self, event):
        self.events.remove(event)
        return (self.ok,)


def install(monkeypatch, fake: FakeDriver) -> None:
    """Make ``from cuda.bindings import driver`` return ``fake`` for the rest of the test."""
    try:
        import cuda.bindings as bindings
    except Exception:
        bindings = types.ModuleType("cuda.bindings")
        monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setattr(bindings, "driver", fake, raising=False)
    monkeypatch.setattr(nv, "cached_ptx", lambda name, arch, cache_dir=None: f"// {arch}\n".encode() + "".join(
        f".entry {fn}(\n" for fn in nv.KERNEL_FUNCTIONS[name]).encode())
