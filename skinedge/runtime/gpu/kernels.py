"""The pipeline's CUDA kernels: their signatures, argument blocks and stream-ordered launches.

The kernels (``cu/*.cu``, compiled by :mod:`.ptx`) compute exactly the math of
:mod:`skinedge.runtime.pipeline.reference`:

- ``preprocess`` (a): uint8 BGR frame → float32 RGB NCHW, resized (per-axis tap tables from
  :func:`~skinedge.runtime.pipeline.reference.resample_taps`) and normalised;
- ``masked_roi`` (b): the ROI as the SR input (real surround, or everything outside the lesion zeroed);
- ``composite`` (c): bicubic ×scale background with SR blended in by the soft mask, for the ROI view or
  the full frame; no SR pointer means background only;
- ``projection`` (d, three kernels): the data-consistency projection of
  :mod:`skinedge.runtime.pipeline.projection` (``resample_axis`` passes, ``keep_luma``) and the lesion's consistency
  residual (``lesion_residual``), sequenced by :func:`project_launches`.

Only NumPy and the standard library are imported here; ``cuda.bindings`` is imported inside the functions
that need it.
"""

from __future__ import annotations

import os

import numpy as np

from skinedge.runtime.gpu import ptx
from skinedge.runtime.gpu.device import CudaError, check

BLOCK = (32, 8, 1)


class Launcher:
    """One kernel: its function handle and a reusable parameter block (no allocation per launch)."""

    def __init__(self, function, dtypes: list[type]):
        self.function = function
        self.values = [np.zeros(1, dtype) for dtype in dtypes]
        self.pointers = np.array([v.ctypes.data for v in self.values], dtype=np.uint64)

    def __call__(self, stream, grid: tuple[int, int], args: tuple) -> None:
        from cuda.bindings import driver

        if len(args) != len(self.values):
            raise TypeError(f"kernel takes {len(self.values)} arguments, got {len(args)}")
        for slot, value in zip(self.values, args):
            slot[0] = value
        # cuLaunchKernel copies the parameters at the call, so the block may be refilled right after.
        check(driver.cuLaunchKernel(self.function, grid[0], grid[1], 1, *BLOCK, 0, stream,
                                        self.pointers.ctypes.data, 0), "cuLaunchKernel")


PTR, INT, FLOAT = np.uint64, np.int32, np.float32  # device pointer, int, float kernel parameters
SIGNATURES = {
    "preprocess": [PTR, INT, PTR, PTR, INT, PTR, PTR, INT, PTR, INT, INT, FLOAT, FLOAT, FLOAT, FLOAT, FLOAT, FLOAT],
    "masked_roi": [PTR, INT, INT, INT, PTR, INT, INT, INT, INT, INT, PTR, INT],
    "composite": [PTR, INT, INT, INT, PTR, PTR, INT, INT, INT, INT, INT, INT, INT, INT, INT, INT, PTR, INT],
    "resample_axis": [PTR, INT, INT, PTR, INT, INT, INT, PTR, FLOAT, INT],
    "keep_luma": [PTR, INT, INT, PTR, INT, INT, INT],
    "lesion_residual": [PTR, INT, INT, PTR, INT, INT, INT, INT, INT, PTR],
}


def _ptr(pointer) -> int:
    """A device pointer (int, ``CUdeviceptr`` or None → 0) as an int."""
    return 0 if pointer is None else int(pointer)


def grid(width: int, height: int) -> tuple[int, int]:
    return (width + BLOCK[0] - 1) // BLOCK[0], (height + BLOCK[1] - 1) // BLOCK[1]


def _check_roi(roi, height: int, width: int) -> tuple[int, int, int, int]:
    x0, y0, w, h = (int(v) for v in roi)
    if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"ROI {(x0, y0, w, h)} is empty or not inside the {width}×{height} frame")
    return x0, y0, w, h


def preprocess_args(tables, frame: int, height: int, width: int, out: int, size, mean, std,
                    pitch: int | None = None) -> tuple[tuple[int, int], tuple]:
    """(grid, kernel arguments) of kernel (a); ``tables(in_size, out_size)`` → (index ptr, weight ptr, K)."""
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    iy, wy, ky = tables(height, out_h)
    ix, wx, kx = tables(width, out_w)
    m = [float(v) for v in mean]
    s = [float(v) for v in std]
    if len(m) != 3 or len(s) != 3:
        raise ValueError("mean and std need 3 values (RGB)")
    return grid(out_w, out_h), (_ptr(frame), pitch or width * 3, iy, wy, ky, ix, wx, kx, _ptr(out), out_h, out_w,
                                 *m, *s)


def masked_roi_args(frame: int, height: int, width: int, mask: int, mask_size: int, roi, out: int,
                    pitch: int | None = None, surround: str = "frame") -> tuple[tuple[int, int], tuple]:
    """(grid, kernel arguments) of kernel (b); ``surround`` ``frame`` (real image) or ``black`` (masked)."""
    x0, y0, w, h = _check_roi(roi, height, width)
    if surround not in ("frame", "black"):
        raise ValueError(f"surround must be frame or black, got {surround!r}")
    return grid(w, h), (_ptr(frame), pitch or width * 3, height, width, _ptr(mask), mask_size, x0, y0, w, h,
                         _ptr(out), int(surround == "black"))


def project_launches(launch, sr: int, lr: int, h: int, w: int, scale: int, iterations: int, chroma: str,
                     tmp: int, d: int, residual: tuple | None = None) -> None:
    """Enqueue the projection of :func:`skinedge.runtime.pipeline.projection.project` through
    ``launch(name, grid, args)``.

    ``sr``: float32 3×(h·scale)×(w·scale), corrected in place; ``lr``: float32 3×h×w (the camera's ROI);
    ``tmp``: 3·h·w·scale floats (one axis resized); ``d``: 3·h·w floats. ``residual``: (soft, s, height, width,
    x0, y0, sums) to add the lesion's Σ|LR − down(SR)|·255 and pixel count into ``sums`` (2 floats, zeroed by
    the caller) before any correction.
    """
    big_h, big_w = h * scale, w * scale

    def down_into_d(x: int, clamp: int = 0) -> None:  # d = LR − down(x)
        launch("resample_axis", grid(big_w, h), (x, big_h, big_w, tmp, h, big_w, 0, 0, 1.0, 0))
        launch("resample_axis", grid(w, h), (tmp, h, big_w, d, h, w, 1, lr, -1.0, clamp))

    def add_up(x: int, clamp: int) -> None:  # x += up(d)
        launch("resample_axis", grid(w, big_h), (d, h, w, tmp, big_h, w, 0, 0, 1.0, 0))
        launch("resample_axis", grid(big_w, big_h), (tmp, big_h, w, x, big_h, big_w, 1, x, 1.0, clamp))

    if residual is not None:
        soft, s, height, width, x0, y0, sums = residual
        down_into_d(sr)
        launch("lesion_residual", grid(w, h), (d, h, w, soft, s, height, width, x0, y0, sums))
    if chroma == "camera":
        launch("keep_luma", grid(big_w, big_h), (lr, h, w, sr, big_h, big_w, int(iterations == 0)))
    for i in range(iterations):
        down_into_d(sr)
        add_up(sr, int(i == iterations - 1))


def composite_args(frame: int, height: int, width: int, sr: int | None, soft: int | None, mask_size: int, roi,
                   scale: int, out_rect, out: int, pitch: int | None = None,
                   out_pitch: int | None = None) -> tuple[tuple[int, int], tuple]:
    """(grid, kernel arguments) of kernel (c); ``sr`` None or 0: background only (``roi``/``soft`` unused)."""
    scale = int(scale)
    x0, y0, w, h = _check_roi(roi, height, width) if _ptr(sr) else (0, 0, 0, 0)
    ox, oy, ow, oh = (int(v) for v in out_rect)
    if scale < 1 or ow <= 0 or oh <= 0 or ox < 0 or oy < 0 or ox + ow > width * scale or oy + oh > height * scale:
        raise ValueError(f"out_rect {(ox, oy, ow, oh)} is empty or not inside the {width * scale}×{height * scale} "
                         "up-scaled frame")
    sr, soft = _ptr(sr), _ptr(soft)
    if sr and not soft:
        raise ValueError("composite with SR needs the soft mask")
    return grid(ow, oh), (_ptr(frame), pitch or width * 3, height, width, sr, soft if sr else 0, mask_size,
                           x0, y0, w, h, scale, ox, oy, ow, oh, _ptr(out), out_pitch or ow * 3)


class Kernels:
    """The three kernels, loaded into the current CUDA context and enqueued on one stream.

    The caller owns the context (it must be current when this is built and used) and the stream
    (a ``CUstream`` or its integer handle; 0 is the legacy default stream). Every launch method takes device
    pointers as ints and enqueues asynchronously: nothing is allocated per launch, and nothing synchronises.
    The tap tables of :meth:`preprocess` are uploaded once per (input size, output size) — call
    :meth:`prepare` at start-up to do it before the first frame. Not thread-safe; one instance per stream.
    """

    def __init__(self, stream=0, arch: str | int | None = None, cache_dir: str | os.PathLike | None = None):
        from cuda.bindings import driver

        self.stream = stream if isinstance(stream, driver.CUstream) else driver.CUstream(int(stream))
        self.arch = ptx.normalize_arch(arch) if arch is not None else ptx.device_arch()
        self._modules = []
        self._launch: dict[str, Launcher] = {}
        self._taps: dict[tuple[int, int], tuple[int, int, int]] = {}  # (in, out) → (index ptr, weight ptr, K)
        self._allocations: list = []
        self._host_taps: list[np.ndarray] = []  # kept alive: async uploads read them
        try:
            for source_name, functions in ptx.KERNEL_FUNCTIONS.items():
                code = np.frombuffer(ptx.cached_ptx(source_name, self.arch, cache_dir) + b"\0", dtype=np.uint8)
                module = self._load(code, source_name)
                self._modules.append(module)
                for name in functions:
                    function = check(driver.cuModuleGetFunction(module, name.encode()),
                                         f"cuModuleGetFunction {name}")
                    self._launch[name] = Launcher(function, SIGNATURES[name])
        except BaseException:
            self.close()
            raise

    def _load(self, code: np.ndarray, name: str):
        from cuda.bindings import driver

        err, module = driver.cuModuleLoadData(code.ctypes.data)
        if err == driver.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
            _, version = driver.cuDriverGetVersion()
            raise CudaError(f"the driver (CUDA {version // 1000}.{version % 1000 // 10}) cannot load PTX from "
                            f"NVRTC {'.'.join(map(str, ptx.nvrtc_version()))}: use a cuda-python/NVRTC release no "
                            "newer than the driver")
        return check((err, module), f"cuModuleLoadData {name}")

    # -------------------------------------------------------- tap tables

    def _tables(self, in_size: int, out_size: int) -> tuple[int, int, int]:
        from cuda.bindings import driver

        from skinedge.runtime.pipeline.reference import resample_taps

        key = (int(in_size), int(out_size))
        if key not in self._taps:
            index, weight = resample_taps(*key)
            ptrs = []
            for host in (np.ascontiguousarray(index, np.int32), np.ascontiguousarray(weight, np.float32)):
                dptr = check(driver.cuMemAlloc(host.nbytes), "cuMemAlloc")
                self._allocations.append(dptr)
                self._host_taps.append(host)
                check(driver.cuMemcpyHtoDAsync(dptr, host.ctypes.data, host.nbytes, self.stream),
                          "cuMemcpyHtoDAsync")
                ptrs.append(int(dptr))
            self._taps[key] = (ptrs[0], ptrs[1], int(index.shape[1]))
        return self._taps[key]

    def prepare(self, height: int, width: int, size: int | tuple[int, int]) -> None:
        """Upload the tap tables for preprocessing a ``height``×``width`` frame to ``size`` ahead of time."""
        out_h, out_w = (size, size) if isinstance(size, int) else size
        self._tables(height, out_h)
        self._tables(width, out_w)

    # -------------------------------------------------------- launches

    def preprocess(self, frame: int, height: int, width: int, out: int, size: int | tuple[int, int],
                   mean, std, pitch: int | None = None) -> None:
        """Kernel (a): uint8 BGR ``height``×``width``×3 at ``frame`` → float32 RGB 1×3×out_h×out_w at ``out``.

        ``size``: int (square) or (out_h, out_w); ``mean``/``std``: 3 floats, RGB; ``pitch``: frame row
        bytes (default ``width``·3).
        """
        self._launch["preprocess"](self.stream, *preprocess_args(self._tables, frame, height, width, out, size,
                                                                  mean, std, pitch))

    def masked_roi(self, frame: int, height: int, width: int, mask: int, mask_size: int, roi, out: int,
                   pitch: int | None = None, surround: str = "frame") -> None:
        """Kernel (b): the ``roi`` (x0, y0, w, h) of the frame → float32 RGB 1×3×h×w at ``out``; with
        ``surround="black"``, zero outside the uint8 S×S ``mask``."""
        self._launch["masked_roi"](self.stream, *masked_roi_args(frame, height, width, mask, mask_size, roi, out,
                                                                  pitch, surround))

    def project(self, sr: int, lr: int, h: int, w: int, scale: int, iterations: int, chroma: str, tmp: int,
                d: int, residual: tuple | None = None) -> None:
        """Kernels (d): the data-consistency projection of ``sr`` against ``lr`` (see :func:`project_launches`)."""
        project_launches(lambda name, grid, args: self._launch[name](self.stream, grid, args), sr, lr, h, w, scale,
                         iterations, chroma, tmp, d, residual)

    def composite(self, frame: int, height: int, width: int, sr: int | None, soft: int, mask_size: int, roi,
                  scale: int, out_rect, out: int, pitch: int | None = None, out_pitch: int | None = None) -> None:
        """Kernel (c): background ×``scale`` with ``sr`` (float32 RGB 1×3×(h·scale)×(w·scale), or None/0 for
        background only) blended in by the float32 S×S ``soft`` mask → uint8 BGR OH×OW×3 at ``out``.

        ``out_rect`` (X0, Y0, OW, OH) in up-scaled frame pixels: ``roi``×scale for the ROI view,
        (0, 0, W·scale, H·scale) for the full frame. ``out_pitch``: output row bytes (default OW·3).
        """
        self._launch["composite"](self.stream, *composite_args(frame, height, width, sr, soft, mask_size, roi,
                                                                scale, out_rect, out, pitch, out_pitch))

    # -------------------------------------------------------- teardown

    def close(self) -> None:
        """Free the tap tables and unload the modules (synchronises the stream first)."""
        from cuda.bindings import driver

        if self._allocations or self._modules:
            driver.cuStreamSynchronize(self.stream)
        for dptr in self._allocations:
            driver.cuMemFree(dptr)
        for module in self._modules:
            driver.cuModuleUnload(module)
        self._allocations, self._modules, self._taps, self._launch, self._host_taps = [], [], {}, {}, []

    def __enter__(self) -> Kernels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
