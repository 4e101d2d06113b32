"""What ``skinedge bench`` records besides latency: process memory (RSS, its peak per row, GPU memory) and the
machine (CPU model/flags/cores, GPU, Jetson model and power mode, package versions). Linux ``/proc`` first,
everything optional: a missing file or tool leaves a field empty, never fails the benchmark."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import skinedge
from skinedge.runtime.gpu.device import check, device_name, gpu_available

VERSIONS = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "cuda-python", "cuda-bindings", "pillow")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")


def status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def device_memory(backend: str) -> tuple[float | None, str | None]:
    """(MB, what it measures) on a GPU; (None, None) on the CPU or when it cannot be read."""
    try:
        if backend == "torch" and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            return round(sys.modules["torch"].cuda.max_memory_allocated() / 2**20, 1), "torch peak allocated"
        if backend == "tensorrt":
            from cuda.bindings import runtime

            err, free, total = runtime.cudaMemGetInfo()
            if int(err) == 0:
                return round((total - free) / 2**20, 1), "device-wide used (cudaMemGetInfo)"
    except Exception:  # noqa: BLE001 - no driver, no GPU: memory is simply not reported
        pass
    return None, None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> dict[str, Any]:
    info = _read("/proc/cpuinfo")
    model = re.search(r"^(?:model name|Processor|cpu model)\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", info, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model.group(1).strip() if model else (platform.processor() or platform.machine()),
            "machine": platform.machine(), "cores": os.cpu_count() or 1, "usable_cores": usable or 1,
            "flags": sorted(flags.intersection(CPU_FLAGS))}


def _gpu() -> dict[str, Any] | None:
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return None
    try:
        from cuda.bindings import driver

        if not gpu_available():
            return None
        count = check(driver.cuDeviceGetCount(), "cuDeviceGetCount")
        return {"name": device_name(check(driver.cuDeviceGet(0), "cuDeviceGet")), "count": int(count)}
    except Exception:  # noqa: BLE001 - no driver library, no device
        return None


def _jetson() -> dict[str, Any] | None:
    """Board, L4T release and power mode on a Jetson; None elsewhere."""
    model, release = _read("/proc/device-tree/model"), _read("/etc/nv_tegra_release")
    if "jetson" not in model.lower() and not release:
        return None
    mode, mode_id, source = None, None, None
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
            found = re.search(r"NV Power Mode:\s*(\S+)\s*(\d+)?", out)
            if found:
                mode, mode_id, source = found.group(1), found.group(2), "nvpmodel -q"
        except (OSError, subprocess.SubprocessError):
            pass
    if mode is None:
        status = re.search(r"pmode:(\d+)", _read("/var/lib/nvpmodel/status"))
        if status:
            mode_id, source = status.group(1), "/var/lib/nvpmodel/status"
            named = re.search(rf"POWER_MODEL\s+ID={int(mode_id)}\s+NAME=(\S+?)\s*>", _read("/etc/nvpmodel.conf"))
            mode = named.group(1) if named else None
    return {"model": model or None, "l4t": release.splitlines()[0] if release else None, "power_mode": mode,
            "power_mode_id": int(mode_id) if mode_id is not None else None, "power_mode_source": source}


def environment() -> dict[str, Any]:
    """CPU, GPU, versions and (on a Jetson) power mode of this machine; imports neither torch nor TensorRT."""
    versions = {name: _version(name) for name in VERSIONS}
    versions["python"], versions["skinedge"] = platform.python_version(), skinedge.__version__
    if versions["tensorrt"] is None and "tensorrt" in sys.modules:  # JetPack's apt bindings carry no metadata
        versions["tensorrt"] = str(sys.modules["tensorrt"].__version__)
    return {"cpu": _cpu(), "gpu": _gpu(), "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "jetson": _jetson(), "load_average": [round(x, 2) for x in os.getloadavg()]}
