"""CUDA sources → PTX: the kernels' ``cu/*.cu`` sources, NVRTC compilation, a PTX disk cache, the target arch.

Kernels are compiled at run time with NVRTC to PTX for ``compute_XX`` (no fast math, no FMA contraction: the
results must match NumPy's float32 arithmetic) and cached on disk, keyed by the source, the architecture, the
NVRTC version and the compile options. ``cuda.bindings`` is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from importlib import resources
from pathlib import Path

from skinedge.atomic import write_bytes_atomic
from skinedge.runtime.gpu.device import CudaError, check

log = logging.getLogger(__name__)

KERNEL_FUNCTIONS = {"preprocess": ("preprocess",), "masked_roi": ("masked_roi",), "composite": ("composite",),
                    "projection": ("resample_axis", "keep_luma", "lesion_residual")}  # .cu file → its kernels
KERNEL_NAMES = tuple(KERNEL_FUNCTIONS)
# Reference-exact float32: IEEE division/sqrt (the default), denormals kept, and no a*b+c → fma contraction.
NVRTC_OPTIONS = ("--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false")

def kernel_sources() -> dict[str, str]:
    """The CUDA source text of each kernel, read from the package's ``cu/`` folder."""
    folder = resources.files("skinedge.runtime.gpu").joinpath("cu")
    return {name: folder.joinpath(f"{name}.cu").read_text(encoding="utf-8") for name in KERNEL_NAMES}


def normalize_arch(arch: str | int) -> str:
    """``87``, ``"87"``, ``"sm_87"`` or ``"compute_87"`` → ``"compute_87"`` (PTX is emitted for a virtual arch)."""
    match = re.fullmatch(r"(?:compute_|sm_)?(\d{2,3})", str(arch).strip())
    if not match:
        raise ValueError(f"not a CUDA architecture: {arch!r} (expected e.g. 87, 'sm_87' or 'compute_87')")
    return f"compute_{match.group(1)}"


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor)."""
    from cuda.bindings import nvrtc

    return tuple(check(nvrtc.nvrtcVersion(), "nvrtcVersion"))


def supported_archs() -> list[int]:
    """The compute capabilities this NVRTC can target (e.g. NVRTC 13.0: 75 … 121; no 72)."""
    from cuda.bindings import nvrtc

    return sorted(int(a) for a in check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


def compile_ptx(source: str, name: str, arch: str | int) -> bytes:
    """Compile CUDA ``source`` to PTX for ``arch`` with NVRTC; raises :class:`CudaError` with the NVRTC log."""
    from cuda.bindings import nvrtc

    arch = normalize_arch(arch)
    options = [f"--gpu-architecture={arch}".encode(), *(o.encode() for o in NVRTC_OPTIONS)]
    prog = check(nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], []),
                        "nvrtcCreateProgram")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), options)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
            text = b" " * size
            check(nvrtc.nvrtcGetProgramLog(prog, text), "nvrtcGetProgramLog")
            log_text = text.rstrip(b"\0 ").decode(errors="replace")
            raise CudaError(f"NVRTC could not compile {name}.cu for {arch} ({err.name}):\n{log_text}")
        size = check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
        ptx = b" " * size
        check(nvrtc.nvrtcGetPTX(prog, ptx), "nvrtcGetPTX")
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


def device_arch(device: int | None = None) -> str:
    """The ``compute_XX`` NVRTC should target for ``device`` (default: the current context's device).

    The device's own capability when NVRTC supports it, else the highest supported one below it (PTX is
    JIT-compiled forward). Raises :class:`CudaError` when NVRTC supports nothing at or below the device
    (e.g. NVRTC 13 on an sm_72 Xavier: use cuda-python 12.x there).
    """
    from cuda.bindings import driver

    if device is None:
        dev = check(driver.cuCtxGetDevice(), "cuCtxGetDevice")
    else:
        check(driver.cuInit(0), "cuInit")
        dev = check(driver.cuDeviceGet(device), "cuDeviceGet")
    attr = driver.CUdevice_attribute
    major = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cc")
    minor = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cc")
    cc = major * 10 + minor
    usable = [a for a in supported_archs() if a <= cc]
    if not usable:
        raise CudaError(f"NVRTC {'.'.join(map(str, nvrtc_version()))} cannot target sm_{cc} "
                        f"(supported: {supported_archs()}); install a cuda-python/NVRTC release that does")
    return f"compute_{max(usable)}"
