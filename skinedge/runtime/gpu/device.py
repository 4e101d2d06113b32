"""The one CUDA helper module: checked calls, :class:`CudaError`, whether a GPU is there, and its name.

Every ``cuda.bindings`` call in the runtime (driver, runtime or NVRTC) is unpacked by :func:`check`, so a
failing call raises one error type, a :class:`~skinedge.errors.SkinedgeError` (one line at the CLI) that names
the call and the error. ``cuda.bindings`` is imported inside the functions: this module imports without it.
"""

from __future__ import annotations

from typing import Any

from skinedge.errors import SkinedgeError


class CudaError(SkinedgeError):
    """A CUDA driver, runtime or NVRTC call failed (the message names the call and the error)."""


def _describe(err: Any) -> str:
    """``NAME: text`` of a driver (``CUresult``), runtime (``cudaError_t``) or NVRTC (``nvrtcResult``) error."""
    kind = type(err).__name__
    try:
        if kind == "nvrtcResult":
            from cuda.bindings import nvrtc

            text = nvrtc.nvrtcGetErrorString(err)[1]
        elif kind == "cudaError_t":
            from cuda.bindings import runtime

            text = runtime.cudaGetErrorString(err)[1]
        else:
            from cuda.bindings import driver

            name = driver.cuGetErrorName(err)[1]
            text = driver.cuGetErrorString(err)[1]
            return f"{name.decode() if name else err}: {text.decode() if text else ''}"
    except Exception:  # noqa: BLE001 - describing an error must not hide it
        text = b""
    return f"{getattr(err, 'name', err)}: {text.decode(errors='replace') if text else ''}"


def check(result: Any, what: str) -> Any:
    """Unpack a ``cuda.bindings`` result (``(err, *values)`` or a bare ``err``): the value(s), or None.

    Raises:
        CudaError: the error code is not success (0); the message is ``"<what> failed: NAME: text"``.
    """
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise CudaError(f"{what} failed: {_describe(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_available() -> bool:
    """True when cuda.bindings imports, the driver initialises and at least one GPU is visible. Never raises."""
    try:
        from cuda.bindings import driver

        check(driver.cuInit(0), "cuInit")
        return check(driver.cuDeviceGetCount(), "cuDeviceGetCount") > 0
    except Exception:  # noqa: BLE001 - any failure (no package, no driver, no device) means "no GPU"
        return False


def device_name(device: Any) -> str:
    """The name of CUDA device ``device`` (a ``CUdevice``), decoded once, here."""
    from cuda.bindings import driver

    raw = check(driver.cuDeviceGetName(256, device), "cuDeviceGetName")
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).split("\x00")[0].strip()


def compute_capability(device: Any) -> tuple[int, int]:
    """(major, minor) of CUDA device ``device`` (a ``CUdevice``)."""
    from cuda.bindings import driver

    attr = driver.CUdevice_attribute
    return (check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device), "cc"),
            check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device), "cc"))
