"""OpenVINO's SR generator on live-like ROI shapes: one-pixel padding (the old rule) against the 8k + 1 grid.

Each strategy runs in its own process (RSS is per process) on the same seeded sequence of ROI-like LR shapes
(sides 40–75, near square: what a 640×480 camera's budgeted lesion ROI gives). It prints distinct shapes,
ms per call (mean, p50, p95), the mean padded LR pixels and RSS growth, and writes JSON with ``--json``.

    python benchmarks/ov_shapes.py --models demo-out/models [--calls 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_pixel(h: int, w: int) -> tuple[int, int]:
    """The rule before the grid: at most one more row and column, area no multiple of 32."""
    for dh, dw in ((0, 0), (1, 0), (0, 1), (1, 1)):
        if ((h + dh) * (w + dw)) % 32:
            return h + dh, w + dw
    return h + 1, w + 1


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(models: Path, strategy: str, calls: int) -> dict:
    import numpy as np
    import openvino as ov

    sys.path.insert(0, str(ROOT))
    from skinedge.runtime.backends.openvino import compile_bounded, fast_side_sizes

    pad = fast_side_sizes if strategy == "grid" else one_pixel
    core = ov.Core()
    compiled = compile_bounded(core, core.read_model(str(models / "sr.int8-ov.xml")), {"INFERENCE_NUM_THREADS": 2})
    request = compiled.create_infer_request()
    channels = compiled.inputs[0].get_partial_shape()[1].get_length()  # 4: RGB + the camera plane
    rng, times, shapes, pixels = random.Random(0), [], set(), 0
    before = rss_mb()
    for _ in range(calls):
        h = rng.randint(40, 75)
        ph, pw = pad(h, h + rng.randint(-3, 3))
        shapes.add((ph, pw))
        pixels += ph * pw
        x = np.random.rand(1, channels, ph, pw).astype(np.float32)
        start = time.perf_counter()
        request.infer({0: x})
        times.append((time.perf_counter() - start) * 1000)
    t = np.array(times)
    return {"strategy": strategy, "calls": calls, "distinct_shapes": len(shapes), "ms_mean": round(t.mean(), 1),
            "ms_p50": round(float(np.median(t)), 1), "ms_p95": round(float(np.percentile(t, 95)), 1),
            "mean_lr_px": round(pixels / calls), "rss_growth_mb": round(rss_mb() - before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", choices=("one-pixel", "grid"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.models, args.one, args.calls)))
        return
    rows = []
    for strategy in ("one-pixel", "grid"):
        out = subprocess.run([sys.executable, __file__, "--models", str(args.models), "--calls", str(args.calls),
                              "--one", strategy], capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
