"""Time the three CUDA kernels against their NumPy references (the CPU path), and check they agree.

    python benchmarks/gpu_kernels.py [--repeat 50] [--json out.json]

Cases: preprocess 1920×1080 → 256; masked_roi of a 128×128 ROI; composite of that ROI ×4 (ROI view), of the
full 1080p frame ×4 (a 7680×4320 output) with SR, and without SR (background only). GPU times are CUDA events
around ``--repeat`` launches on one stream (mean per launch, inputs already on the device); CPU times are the
NumPy reference's wall time (best of a few runs; one run for the full frame). Exits 0 with a message when
there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinedge.runtime.gpu import device as cu  # noqa: E402
from skinedge.runtime.gpu import kernels as ck  # noqa: E402
from skinedge.runtime.gpu import ptx as nv  # noqa: E402
from skinedge.runtime.pipeline import reference as ref  # noqa: E402

H, W, S, SCALE = 1080, 1920, 256, 4
ROI = (900, 400, 128, 128)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _cpu_time(fn, runs: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="GPU launches timed per case")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if not cu.gpu_available():
        print("gpu_kernels: no CUDA GPU here (cuda.bindings missing, no driver, or no device): nothing to time.")
        return 0
    from cuda.bindings import driver

    check = cu.check
    check(driver.cuInit(0), "cuInit")
    device = check(driver.cuDeviceGet(0), "cuDeviceGet")
    name = check(driver.cuDeviceGetName(128, device), "cuDeviceGetName").split(b"\0")[0].decode()
    context = check(driver.cuDevicePrimaryCtxRetain(device), "cuDevicePrimaryCtxRetain")
    check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    stream = check(driver.cuStreamCreate(0), "cuStreamCreate")
    kernels = ck.Kernels(stream)
    buffers = []

    def alloc(nbytes: int) -> int:
        ptr = check(driver.cuMemAlloc(nbytes), "cuMemAlloc")
        buffers.append(ptr)
        return int(ptr)

    def upload(array: np.ndarray) -> int:
        array = np.ascontiguousarray(array)
        ptr = alloc(array.nbytes)
        check(driver.cuMemcpyHtoD(ptr, array.ctypes.data, array.nbytes), "cuMemcpyHtoD")
        return ptr

    def download(ptr: int, shape, dtype) -> np.ndarray:
        check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        out = np.empty(shape, dtype)
        check(driver.cuMemcpyDtoH(out.ctypes.data, ptr, out.nbytes), "cuMemcpyDtoH")
        return out

    start_event = check(driver.cuEventCreate(0), "cuEventCreate")
    end_event = check(driver.cuEventCreate(0), "cuEventCreate")

    def gpu_time(launch) -> float:
        for _ in range(3):  # warm-up (first launch JIT-compiles the PTX for this GPU)
            launch()
        check(driver.cuEventRecord(start_event, stream), "cuEventRecord")
        for _ in range(args.repeat):
            launch()
        check(driver.cuEventRecord(end_event, stream), "cuEventRecord")
        check(driver.cuEventSynchronize(end_event), "cuEventSynchronize")
        return check(driver.cuEventElapsedTime(start_event, end_event), "cuEventElapsedTime") / args.repeat

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:S, :S]
    mask = (((yy - 0.45 * S) / (0.2 * S)) ** 2 + ((xx - 0.5 * S) / (0.15 * S)) ** 2 <= 1).astype(np.uint8)
    soft = np.clip(rng.random((S, S), dtype=np.float32) * 0.2 + mask, 0, 1).astype(np.float32)
    sr = rng.random((1, 3, ROI[3] * SCALE, ROI[2] * SCALE), dtype=np.float32)
    d_frame, d_mask, d_soft, d_sr = upload(frame), upload(mask), upload(soft), upload(sr)
    kernels.prepare(H, W, S)

    rows = []

    def case(label: str, size: str, launch, read, reference, runs: int):
        gpu_ms = gpu_time(launch)
        cpu_ms, expected = _cpu_time(reference, runs)
        got = read()
        diff = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
        rows.append({"kernel": label, "size": size, "gpu_ms": gpu_ms, "cpu_ref_ms": cpu_ms,
                     "speedup": cpu_ms / gpu_ms if gpu_ms > 0 else float("inf"), "max_abs_diff": diff})

    d_pre = alloc(3 * S * S * 4)
    case("preprocess", f"{W}x{H} -> {S}x{S}",
         lambda: kernels.preprocess(d_frame, H, W, d_pre, S, MEAN, STD),
         lambda: download(d_pre, (1, 3, S, S), np.float32),
         lambda: ref.preprocess(frame, S, MEAN, STD), 3)

    x0, y0, w, h = ROI
    d_roi = alloc(3 * w * h * 4)
    case("masked_roi", f"ROI {w}x{h}",
         lambda: kernels.masked_roi(d_frame, H, W, d_mask, S, ROI, d_roi),
         lambda: download(d_roi, (1, 3, h, w), np.float32),
         lambda: ref.masked_roi(frame, mask, ROI), 5)

    roi_rect = (x0 * SCALE, y0 * SCALE, w * SCALE, h * SCALE)
    d_view = alloc(roi_rect[2] * roi_rect[3] * 3)
    case("composite", f"ROI view x{SCALE} ({roi_rect[2]}x{roi_rect[3]})",
         lambda: kernels.composite(d_frame, H, W, d_sr, d_soft, S, ROI, SCALE, roi_rect, d_view),
         lambda: download(d_view, (roi_rect[3], roi_rect[2], 3), np.uint8),
         lambda: ref.composite(frame, sr, soft, ROI, SCALE, roi_rect), 3)

    full_rect = (0, 0, W * SCALE, H * SCALE)
    d_full = alloc(full_rect[2] * full_rect[3] * 3)
    case("composite", f"full x{SCALE} ({full_rect[2]}x{full_rect[3]})",
         lambda: kernels.composite(d_frame, H, W, d_sr, d_soft, S, ROI, SCALE, full_rect, d_full),
         lambda: download(d_full, (full_rect[3], full_rect[2], 3), np.uint8),
         lambda: ref.composite(frame, sr, soft, ROI, SCALE, full_rect), 1)
    case("composite", f"full x{SCALE}, no SR",
         lambda: kernels.composite(d_frame, H, W, None, None, S, ROI, SCALE, full_rect, d_full),
         lambda: download(d_full, (full_rect[3], full_rect[2], 3), np.uint8),
         lambda: ref.composite(frame, None, soft, ROI, SCALE, full_rect), 1)

    tolerance = {"preprocess": 1e-4, "masked_roi": 1e-6, "composite": 1.0}
    print(f"GPU: {name} ({kernels.arch}), NVRTC {'.'.join(map(str, nv.nvrtc_version()))}; "
          f"CPU: {platform.processor() or platform.machine()}; GPU mean of {args.repeat} launches")
    print(f"{'kernel':<12} {'size':<30} {'GPU ms':>9} {'CPU ref ms':>11} {'speedup':>9} {'max diff':>10}  ok")
    ok = True
    for row in rows:
        row["ok"] = row["max_abs_diff"] <= tolerance[row["kernel"]]
        ok &= row["ok"]
        print(f"{row['kernel']:<12} {row['size']:<30} {row['gpu_ms']:>9.3f} {row['cpu_ref_ms']:>11.1f} "
              f"{row['speedup']:>8.0f}x {row['max_abs_diff']:>10.2g}  {'yes' if row['ok'] else 'NO'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"gpu": name, "arch": kernels.arch, "repeat": args.repeat, "rows": rows},
                                        indent=2) + "\n")

    kernels.close()
    for ptr in buffers:
        driver.cuMemFree(ptr)
    driver.cuEventDestroy(start_event)
    driver.cuEventDestroy(end_event)
    driver.cuStreamDestroy(stream)
    driver.cuDevicePrimaryCtxRelease(device)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
