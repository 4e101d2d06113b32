"""Time the CPU pipeline's pixel stages (the NumPy references) before and after the banded-matrix rewrite.

    python benchmarks/pixel_stages.py [--repeat 7] [--blas-threads N] [--json out.json]

Cases: ``preprocess`` of a 640×480 frame → 256²; ``project`` (chroma from the camera, 3 back-projection steps)
and ``composite`` (ROI view ×4, SR blended in) at LR ROIs 64², 128² and 300² of that frame; and the no-lesion
composite (the whole frame ×4, background only). "before" is a copy of the old implementation (one gather per
tap, kept below), "after" the current one, both in this process on the same inputs: best wall time of
``--repeat`` runs, after a warm-up. The last column is the largest difference between the two outputs (LSB of the
uint8 picture for project and composite, raw for preprocess's normalised values).

``--blas-threads`` sets OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) before NumPy loads. The references keep each
BLAS product under ``reference.MAX_PRODUCT`` multiply-adds, which OpenBLAS runs on the calling thread, so the
"after" column should not depend on it (larger products are split over threads, and on a loaded 2-core machine
the wake-ups cost more than they gain: a ×4 project of a 64² ROI measured 120 ms instead of 1 ms that way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (best is kept)")
    parser.add_argument("--blas-threads", type=int, help="OPENBLAS_NUM_THREADS for this run (default: BLAS's own)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.blas_threads:
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(ARGS.blas_threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinedge.runtime.pipeline import projection as proj  # noqa: E402
from skinedge.runtime.pipeline import reference as ref  # noqa: E402

H, W, S, SCALE = 480, 640, 256, 4
ROIS = (64, 128, 300)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- before: the per-tap implementation, as it was

def old_resample_axis(x, out_size, axis, kind="cubic", offset=0, total=None):
    index, weight = ref.resample_taps(x.shape[axis], total or out_size, kind)
    index, weight = index[offset:offset + out_size], weight[offset:offset + out_size]
    shape = [1] * x.ndim
    shape[axis] = out_size
    out = np.zeros(x.shape[:axis] + (out_size,) + x.shape[axis + 1:], np.float32)
    for k in range(index.shape[1]):
        out += weight[:, k].reshape(shape) * np.take(x, index[:, k], axis=axis)
    return out


def old_resample_matrix(in_size, out_size):
    index, weight = ref.resample_taps(in_size, out_size)
    dense = np.zeros((out_size, in_size), np.float32)
    np.add.at(dense, (np.repeat(np.arange(out_size), index.shape[1]), index.ravel()), weight.ravel())
    return dense


def old_preprocess(frame, size, mean, std):
    h, w = frame.shape[:2]
    wy, wx = old_resample_matrix(h, size), old_resample_matrix(w, size)
    rgb = frame[:, :, ::-1].astype(np.float32)
    out = np.stack([wy @ rgb[:, :, c] @ wx.T for c in range(3)])
    out = (out / 255.0 - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return np.ascontiguousarray(out[None], dtype=np.float32)


def old_sample_separable(grid, ys, xs):
    y0, y1, fy = ys
    x0, x1, fx = xs
    g = grid.astype(np.float32)
    fy = fy.reshape((-1, 1) + (1,) * (g.ndim - 2))
    rows = g[y0] * (1 - fy) + g[y1] * fy
    fx = fx.reshape((1, -1) + (1,) * (g.ndim - 2))
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


def old_composite(frame, sr, soft, roi, scale, out_rect):
    height, width = frame.shape[:2]
    s = soft.shape[0]
    X0, Y0, OW, OH = out_rect
    rows = old_resample_axis(frame.astype(np.float32), OH, 0, "cubic", Y0, height * scale)
    bg = old_resample_axis(rows, OW, 1, "cubic", X0, width * scale)
    if sr is not None:
        x0, y0, w, h = roi
        top, left = max(0, y0 * scale - Y0), max(0, x0 * scale - X0)
        bottom, right = min(OH, (y0 + h) * scale - Y0), min(OW, (x0 + w) * scale - X0)
        if bottom > top and right > left:
            a = old_sample_separable(soft, ref.bilinear_coords(bottom - top, s, Y0 + top, s / (height * scale)),
                                     ref.bilinear_coords(right - left, s, X0 + left, s / (width * scale)))
            sy, sx = Y0 + top - y0 * scale, X0 + left - x0 * scale
            lesion = sr[0, ::-1, sy:sy + bottom - top, sx:sx + right - left].transpose(1, 2, 0) * 255.0
            out = ref._round(bg)
            out[top:bottom, left:right] = ref.blend(lesion, bg[top:bottom, left:right], a)
            return out
    return ref._round(bg)


def old_project(sr, lr, fidelity=proj.Fidelity()):
    def up(x, height, width):
        return old_resample_axis(old_resample_axis(x, height, 2), width, 3)

    def down(x, h, w):
        return old_resample_axis(old_resample_axis(x, h, 2), w, 3)

    def keep_luma(sr, smooth):
        d = sr - smooth
        luma = proj.LUMA[0] * d[:, 0] + proj.LUMA[1] * d[:, 1] + proj.LUMA[2] * d[:, 2]
        return (smooth + luma[:, None]).astype(np.float32)

    if not fidelity.active:
        return sr
    _, _, height, width = sr.shape
    _, _, h, w = lr.shape
    x = sr.astype(np.float32)
    if fidelity.chroma == "camera":
        x = keep_luma(x, up(lr, height, width))
    for _ in range(fidelity.iterations):
        x = x + up(lr - down(x, h, w), height, width)
    return np.clip(x, 0.0, 1.0)


# ---------------------------------------------------------------- timing

def _best_ms(fn, runs: int) -> tuple[float, object]:
    result = fn()  # warm-up (and caches)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3, result


def _cases():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), np.uint8)
    soft = rng.random((S, S), dtype=np.float32)
    yield "preprocess", f"{W}×{H} → {S}²", (lambda: old_preprocess(frame, S, MEAN, STD)), \
        (lambda: ref.preprocess(frame, S, MEAN, STD)), 1.0
    for n in ROIS:
        x0, y0 = (W - n) // 2, (H - n) // 2
        lr = ref.masked_roi(frame, np.ones((S, S), np.uint8), (x0, y0, n, n))
        sr = np.clip(np.repeat(np.repeat(lr, SCALE, 2), SCALE, 3)
                     + rng.normal(0, 0.05, (1, 3, n * SCALE, n * SCALE)), 0, 1).astype(np.float32)
        yield "project", f"LR {n}² → {n * SCALE}²", (lambda: old_project(sr, lr)), (lambda: proj.project(sr, lr)), 255.0
        roi, rect = (x0, y0, n, n), (x0 * SCALE, y0 * SCALE, n * SCALE, n * SCALE)
        yield "composite", f"LR {n}² → {n * SCALE}² view", (lambda: old_composite(frame, sr, soft, roi, SCALE, rect)), \
            (lambda: ref.composite(frame, sr, soft, roi, SCALE, rect)), 1.0
    full = (0, 0, W * SCALE, H * SCALE)
    yield "composite", f"no lesion, {W * SCALE}×{H * SCALE}", \
        (lambda: old_composite(frame, None, soft, (0, 0, 0, 0), SCALE, full)), \
        (lambda: ref.composite(frame, None, soft, (0, 0, 0, 0), SCALE, full)), 1.0


def main() -> int:
    args = ARGS or argparse.Namespace(repeat=7, blas_threads=None, json=None)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "BLAS default")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"OpenBLAS threads: {threads}, best of {args.repeat}")
    print("| stage | case | before ms | after ms | × faster | max diff |\n|---|---|---:|---:|---:|---:|")
    rows = []
    for stage, case, before, after, unit in _cases():
        old_ms, old_out = _best_ms(before, args.repeat)
        new_ms, new_out = _best_ms(after, args.repeat)
        diff = float(np.abs(np.asarray(old_out, np.float64) - np.asarray(new_out, np.float64)).max()) * unit
        rows.append({"stage": stage, "case": case, "before_ms": round(old_ms, 2), "after_ms": round(new_ms, 2),
                     "speedup": round(old_ms / new_ms, 1), "max_diff": diff})
        print(f"| {stage} | {case} | {old_ms:.1f} | {new_ms:.1f} | {old_ms / new_ms:.1f} | {diff:.2g} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "blas_threads": threads, "rows": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
