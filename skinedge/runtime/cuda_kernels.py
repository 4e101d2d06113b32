"""The pipeline's CUDA kernels: NVRTC compilation, a PTX disk cache, and stream-ordered launches.

The kernels (``kernels/*.cu``) compute exactly the math of :mod:`skinedge.runtime.reference`:

- ``preprocess`` (a): uint8 BGR frame → float32 RGB NCHW, resized (per-axis tap tables from
  :func:`~skinedge.runtime.reference.resample_taps`) and normalised;
- ``masked_roi`` (b): the ROI as the SR input (real surround, or everything outside the lesion zeroed);
- ``composite`` (c): bicubic ×scale background with SR blended in by the soft mask, for the ROI view or
  the full frame; no SR pointer means background only;
- ``projection`` (d, three kernels): the data-consistency projection of
  :mod:`skinedge.runtime.projection` (``resample_axis`` passes, ``keep_luma``) and the lesion's consistency
  residual (``lesion_residual``), sequenced by :func:`project_launches`.

They are compiled at run time with NVRTC to PTX for ``compute_XX`` (no fast math, no FMA contraction: the
results must match NumPy's float32 arithmetic) and cached on disk, keyed by the source, the architecture,
the NVRTC version and the compile options. Only NumPy and the standard library are imported here;
``cuda.bindings`` is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

from skinedge.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

KERNEL_FUNCTIONS = {"preprocess": ("preprocess",), "masked_roi": ("masked_roi",), "composite": ("composite",),
                    "projection": ("resample_axis", "keep_luma", "lesion_residual")}  # .cu file → its kernels
KERNEL_NAMES = tuple(KERNEL_FUNCTIONS)
# Reference-exact float32: IEEE division/sqrt (the default), denormals kept, and no a*b+c → fma contraction.
NVRTC_OPTIONS = ("--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false")
BLOCK = (32, 8, 1)


class CudaError(RuntimeError):
    """A CUDA driver or NVRTC call failed (the message names the call and the error)."""


# ---------------------------------------------------------------- sources, NVRTC, disk cache

def kernel_sources() -> dict[str, str]:
    """The CUDA source text of each kernel, read from the package's ``kernels/`` folder."""
    folder = resources.files("skinedge.runtime").joinpath("kernels")
    return {name: folder.joinpath(f"{name}.cu").read_text(encoding="utf-8") for name in KERNEL_NAMES}


def normalize_arch(arch: str | int) -> str:
    """``87``, ``"87"``, ``"sm_87"`` or ``"compute_87"`` → ``"compute_87"`` (PTX is emitted for a virtual arch)."""
    match = re.fullmatch(r"(?:compute_|sm_)?(\d{2,3})", str(arch).strip())
    if not match:
        raise ValueError(f"not a CUDA architecture: {arch!r} (expected e.g. 87, 'sm_87' or 'compute_87')")
    return f"compute_{match.group(1)}"


def _nvrtc_check(result, what: str):
    from cuda.bindings import nvrtc

    err, *values = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        raise CudaError(f"{what} failed: {err.name}: {msg.decode(errors='replace') if msg else ''}")
    return values[0] if len(values) == 1 else tuple(values)


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor)."""
    from cuda.bindings import nvrtc

    return tuple(_nvrtc_check(nvrtc.nvrtcVersion(), "nvrtcVersion"))


def supported_archs() -> list[int]:
    """The compute capabilities this NVRTC can target (e.g. NVRTC 13.0: 75 … 121; no 72)."""
    from cuda.bindings import nvrtc

    return sorted(int(a) for a in _nvrtc_check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


def compile_ptx(source: str, name: str, arch: str | int) -> bytes:
    """Compile CUDA ``source`` to PTX for ``arch`` with NVRTC; raises :class:`CudaError` with the NVRTC log."""
    from cuda.bindings import nvrtc

    arch = normalize_arch(arch)
    options = [f"--gpu-architecture={arch}".encode(), *(o.encode() for o in NVRTC_OPTIONS)]
    prog = _nvrtc_check(nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], []),
                        "nvrtcCreateProgram")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), options)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = _nvrtc_check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
            text = b" " * size
            _nvrtc_check(nvrtc.nvrtcGetProgramLog(prog, text), "nvrtcGetProgramLog")
            log_text = text.rstrip(b"\0 ").decode(errors="replace")
            raise CudaError(f"NVRTC could not compile {name}.cu for {arch} ({err.name}):\n{log_text}")
        size = _nvrtc_check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
        ptx = b" " * size
        _nvrtc_check(nvrtc.nvrtcGetPTX(prog, ptx), "nvrtcGetPTX")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return ptx.rstrip(b"\0")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/skinedge/ptx``, else ``~/.cache/skinedge/ptx``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "skinedge" / "ptx"


def cache_key(source: str, arch: str | int, version: tuple[int, int] | None = None) -> str:
    """sha256 over the source, the arch, the NVRTC version and the compile options."""
    version = nvrtc_version() if version is None else version
    parts = [source, normalize_arch(arch), "nvrtc-%d.%d" % tuple(version), " ".join(NVRTC_OPTIONS)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cached_ptx(name: str, arch: str | int, cache_dir: str | os.PathLike | None = None) -> bytes:
    """The PTX of kernel ``name`` for ``arch``: read from the disk cache, else compiled and cached."""
    sources = kernel_sources()
    if name not in sources:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(KERNEL_NAMES)}")
    return cached_source_ptx(sources[name], name, arch, cache_dir)


def cached_source_ptx(source: str, name: str, arch: str | int, cache_dir: str | os.PathLike | None = None) -> bytes:
    """PTX of any kernel ``source`` through the disk cache.

    The cache file is ``<cache_dir>/<name>.<arch>.<key>.ptx`` with the key of :func:`cache_key`; it is
    written atomically. A cache that cannot be written is reported in the log, and the PTX returned anyway.
    """
    arch = normalize_arch(arch)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{name}.{arch}.{cache_key(source, arch)}.ptx"
    try:
        ptx = path.read_bytes()
        if b".entry" in ptx:
            return ptx
    except OSError:
        pass
    ptx = compile_ptx(source, name, arch)
    try:
        write_bytes_atomic(path, ptx)
    except OSError as exc:
        log.warning("PTX cache not written (%s): %s; kernels will be recompiled next time", path, exc)
    return ptx


# ---------------------------------------------------------------- CUDA driver helpers

def _cu_check(result, what: str):
    """Unpack a ``cuda.bindings.driver`` result tuple; raise :class:`CudaError` on an error code."""
    from cuda.bindings import driver

    err, *values = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
        raise CudaError(f"{what} failed: {name.decode() if name else err}: {text.decode() if text else ''}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_available() -> bool:
    """True when cuda.bindings imports, the driver initialises and at least one GPU is visible. Never raises."""
    try:
        from cuda.bindings import driver

        (err,) = driver.cuInit(0)
        if err != driver.CUresult.CUDA_SUCCESS:
            return False
        err, count = driver.cuDeviceGetCount()
        return err == driver.CUresult.CUDA_SUCCESS and count > 0
    except Exception:  # any failure (no package, no driver, no device) means "no GPU"
        return False


def device_arch(device: int | None = None) -> str:
    """The ``compute_XX`` NVRTC should target for ``device`` (default: the current context's device).

    The device's own capability when NVRTC supports it, else the highest supported one below it (PTX is
    JIT-compiled forward). Raises :class:`CudaError` when NVRTC supports nothing at or below the device
    (e.g. NVRTC 13 on an sm_72 Xavier: use cuda-python 12.x there).
    """
    from cuda.bindings import driver

    if device is None:
        dev = _cu_check(driver.cuCtxGetDevice(), "cuCtxGetDevice")
    else:
        _cu_check(driver.cuInit(0), "cuInit")
        dev = _cu_check(driver.cuDeviceGet(device), "cuDeviceGet")
    attr = driver.CUdevice_attribute
    major = _cu_check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cc")
    minor = _cu_check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cc")
    cc = major * 10 + minor
    usable = [a for a in supported_archs() if a <= cc]
    if not usable:
        raise CudaError(f"NVRTC {'.'.join(map(str, nvrtc_version()))} cannot target sm_{cc} "
                        f"(supported: {supported_archs()}); install a cuda-python/NVRTC release that does")
    return f"compute_{max(usable)}"


class _Launcher:
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
        _cu_check(driver.cuLaunchKernel(self.function, grid[0], grid[1], 1, *BLOCK, 0, stream,
                                        self.pointers.ctypes.data, 0), "cuLaunchKernel")


_P, _I, _F = np.uint64, np.int32, np.float32  # device pointer, int, float kernel parameters
_SIGNATURES = {
    "preprocess": [_P, _I, _P, _P, _I, _P, _P, _I, _P, _I, _I, _F, _F, _F, _F, _F, _F],
    "masked_roi": [_P, _I, _I, _I, _P, _I, _I, _I, _I, _I, _P, _I],
    "composite": [_P, _I, _I, _I, _P, _P, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _P, _I],
    "resample_axis": [_P, _I, _I, _P, _I, _I, _I, _P, _F, _I],
    "keep_luma": [_P, _I, _I, _P, _I, _I, _I],
    "lesion_residual": [_P, _I, _I, _P, _I, _I, _I, _I, _I, _P],
}


def _ptr(pointer) -> int:
    """A device pointer (int, ``CUdeviceptr`` or None → 0) as an int."""
    return 0 if pointer is None else int(pointer)


def _grid(width: int, height: int) -> tuple[int, int]:
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
    return _grid(out_w, out_h), (_ptr(frame), pitch or width * 3, iy, wy, ky, ix, wx, kx, _ptr(out), out_h, out_w,
                                 *m, *s)


def masked_roi_args(frame: int, height: int, width: int, mask: int, mask_size: int, roi, out: int,
                    pitch: int | None = None, surround: str = "frame") -> tuple[tuple[int, int], tuple]:
    """(grid, kernel arguments) of kernel (b); ``surround`` ``frame`` (real image) or ``black`` (masked)."""
    x0, y0, w, h = _check_roi(roi, height, width)
    if surround not in ("frame", "black"):
        raise ValueError(f"surround must be frame or black, got {surround!r}")
    return _grid(w, h), (_ptr(frame), pitch or width * 3, height, width, _ptr(mask), mask_size, x0, y0, w, h,
                         _ptr(out), int(surround == "black"))


def project_launches(launch, sr: int, lr: int, h: int, w: int, scale: int, iterations: int, chroma: str,
                     tmp: int, d: int, residual: tuple | None = None) -> None:
    """Enqueue the projection of :func:`skinedge.runtime.projection.project` through ``launch(name, grid, args)``.

    ``sr``: float32 3×(h·scale)×(w·scale), corrected in place; ``lr``: float32 3×h×w (the camera's ROI);
    ``tmp``: 3·h·w·scale floats (one axis resized); ``d``: 3·h·w floats. ``residual``: (soft, s, height, width,
    x0, y0, sums) to add the lesion's Σ|LR − down(SR)|·255 and pixel count into ``sums`` (2 floats, zeroed by
    the caller) before any correction.
    """
    big_h, big_w = h * scale, w * scale

    def down_into_d(x: int, clamp: int = 0) -> None:  # d = LR − down(x)
        launch("resample_axis", _grid(big_w, h), (x, big_h, big_w, tmp, h, big_w, 0, 0, 1.0, 0))
        launch("resample_axis", _grid(w, h), (tmp, h, big_w, d, h, w, 1, lr, -1.0, clamp))

    def add_up(x: int, clamp: int) -> None:  # x += up(d)
        launch("resample_axis", _grid(w, big_h), (d, h, w, tmp, big_h, w, 0, 0, 1.0, 0))
        launch("resample_axis", _grid(big_w, big_h), (tmp, big_h, w, x, big_h, big_w, 1, x, 1.0, clamp))

    if residual is not None:
        soft, s, height, width, x0, y0, sums = residual
        down_into_d(sr)
        launch("lesion_residual", _grid(w, h), (d, h, w, soft, s, height, width, x0, y0, sums))
    if chroma == "camera":
        launch("keep_luma", _grid(big_w, big_h), (lr, h, w, sr, big_h, big_w, int(iterations == 0)))
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
    return _grid(ow, oh), (_ptr(frame), pitch or width * 3, height, width, sr, soft if sr else 0, mask_size,
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
        self.arch = normalize_arch(arch) if arch is not None else device_arch()
        self._modules = []
        self._launch: dict[str, _Launcher] = {}
        self._taps: dict[tuple[int, int], tuple[int, int, int]] = {}  # (in, out) → (index ptr, weight ptr, K)
        self._allocations: list = []
        self._host_taps: list[np.ndarray] = []  # kept alive: async uploads read them
        try:
            for source_name, functions in KERNEL_FUNCTIONS.items():
                ptx = np.frombuffer(cached_ptx(source_name, self.arch, cache_dir) + b"\0", dtype=np.uint8)
                module = self._load(ptx, source_name)
                self._modules.append(module)
                for name in functions:
                    function = _cu_check(driver.cuModuleGetFunction(module, name.encode()),
                                         f"cuModuleGetFunction {name}")
                    self._launch[name] = _Launcher(function, _SIGNATURES[name])
        except BaseException:
            self.close()
            raise

    def _load(self, ptx: np.ndarray, name: str):
        from cuda.bindings import driver

        err, module = driver.cuModuleLoadData(ptx.ctypes.data)
        if err == driver.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
            _, version = driver.cuDriverGetVersion()
            raise CudaError(f"the driver (CUDA {version // 1000}.{version % 1000 // 10}) cannot load PTX from "
                            f"NVRTC {'.'.join(map(str, nvrtc_version()))}: use a cuda-python/NVRTC release no "
                            "newer than the driver")
        return _cu_check((err, module), f"cuModuleLoadData {name}")

    # -------------------------------------------------------- tap tables

    def _tables(self, in_size: int, out_size: int) -> tuple[int, int, int]:
        from cuda.bindings import driver

        from skinedge.runtime.reference import resample_taps

        key = (int(in_size), int(out_size))
        if key not in self._taps:
            index, weight = resample_taps(*key)
            ptrs = []
            for host in (np.ascontiguousarray(index, np.int32), np.ascontiguousarray(weight, np.float32)):
                dptr = _cu_check(driver.cuMemAlloc(host.nbytes), "cuMemAlloc")
                self._allocations.append(dptr)
                self._host_taps.append(host)
                _cu_check(driver.cuMemcpyHtoDAsync(dptr, host.ctypes.data, host.nbytes, self.stream),
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
