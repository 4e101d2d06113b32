"""TensorRT presence, this system's TensorRT version and GPU, and the one process-wide TensorRT logger.

``tensorrt`` and ``cuda.bindings`` are imported inside the functions that need them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from skinedge.errors import SkinedgeError
from skinedge.runtime.engines.manifest import version_tuple
from skinedge.runtime.gpu.device import check, compute_capability, device_name

MIN_TENSORRT = (10, 3)
TENSORRT_MISSING = ("TensorRT is not installed here: build-engines needs TensorRT 10.3+ "
                    "(JetPack 6 or NVIDIA's tensorrt wheel)")


class MissingTensorRT(SkinedgeError):
    """TensorRT (or a recent enough one) is not importable here."""

    exit_code = 2


# ---------------------------------------------------------------- TensorRT presence, system


def tensorrt_available() -> bool:
    """True when ``import tensorrt`` works (says nothing about a GPU)."""
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError etc.
        return False
    return True


def require_tensorrt():
    """The ``tensorrt`` module, or :class:`MissingTensorRT` (exit 2) when absent or older than 10.3."""
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001
        raise MissingTensorRT(TENSORRT_MISSING) from None
    if version_tuple(trt.__version__)[:2] < MIN_TENSORRT:
        raise MissingTensorRT(f"TensorRT {trt.__version__} is too old: build-engines needs TensorRT 10.3+ "
                              "(JetPack 6 or NVIDIA's tensorrt wheel)")
    return trt


def system_info(device: int = 0) -> dict[str, Any]:
    """``{"tensorrt_version", "gpu": {"name", "compute_capability"}}`` of this machine (CUDA device ``device``).

    Raises:
        MissingTensorRT: no TensorRT.
        SkinedgeError: no CUDA driver or GPU.
    """
    trt = require_tensorrt()
    try:
        from cuda.bindings import driver
    except ImportError:
        raise SkinedgeError("cuda-python is not installed: pip install 'skinedge[gpu]' "
                            "(cuda-python 12.x on JetPack 6)") from None
    try:
        check(driver.cuInit(0), "cuInit")
        dev = check(driver.cuDeviceGet(device), "cuDeviceGet")
        name, (major, minor) = device_name(dev), compute_capability(dev)
    except Exception as exc:  # noqa: BLE001 - a failing call, or no driver library (cuda.pathfinder's own errors)
        raise SkinedgeError(f"no usable CUDA GPU here ({str(exc).strip()[:160]})") from None
    return {"tensorrt_version": str(trt.__version__), "gpu": {"name": name, "compute_capability": f"{major}.{minor}"}}


_LOGGER = None
_LOGGER_LOCK = threading.Lock()


def trt_logger():
    """One process-wide TensorRT logger (TensorRT wants the same one for builders and runtimes).

    Warnings and errors go to stderr; the last errors are kept for error messages.
    """
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            trt = require_tensorrt()

            class _Logger(trt.ILogger):
                def __init__(self):
                    trt.ILogger.__init__(self)
                    self.errors: deque[str] = deque(maxlen=8)
                    sev = trt.ILogger.Severity
                    self._errors = (sev.INTERNAL_ERROR, sev.ERROR)
                    self._shown = (sev.INTERNAL_ERROR, sev.ERROR, sev.WARNING)

                def log(self, severity, msg):
                    if severity in self._errors:
                        self.errors.append(str(msg).strip())
                    if severity in self._shown:
                        import sys

                        print(f"TensorRT: {msg}", file=sys.stderr, flush=True)

            _LOGGER = _Logger()
        return _LOGGER
