"""End-to-end pipeline per 256×256 frame: ONNX Runtime (fastest gated variants) vs the torch backend FP32.

Same frames, same process: generated 256² dermoscopy-like images with lesions.
The ONNX Runtime side runs ``precision=auto`` (pruned INT8 where its gate passed
and it measured faster than FP32, else pruned FP32, ...); the baseline is the
torch backend on the unpruned FP32 checkpoints. Prints p50 per stage and in
total, and the ratio. Then runs the ONNX Runtime pipeline over ``--frames``
frames in a fresh process that imports only the lean runtime (no torch, as on a
device) and samples its RSS every 50 frames: it must stay flat (±5 %) after
warm-up, i.e. no per-frame allocation growth.

    python benchmarks/pipeline.py [--models DIR] [--frames 500] [--json benchmarks/results/pipeline.json]

Without ``--models`` it first makes paper-size models the way benchmarks/precision.py does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from skinedge.data.generate import write_synthetic
from skinedge.data.imageio import read_rgb
from skinedge.runtime.backends import open_runners
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline.host import Pipeline

STAGES = ("preprocess", "seg", "mask", "sr", "composite", "total")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames(work: Path, count: int = 16) -> list[np.ndarray]:
    write_synthetic(work / "frames", count=count, size=256, seed=123)
    paths = sorted((work / "frames" / "images").glob("*.png"))
    return [np.ascontiguousarray(read_rgb(p)[0][:, :, ::-1]) for p in paths]


def time_backend(models: Path, manifest: dict, backend: str, precision: str, batch: list[np.ndarray], repeats: int):
    opened = open_runners(models, manifest, backend, precision)
    rows = []
    with Pipeline(opened.seg, opened.sr, manifest) as pipeline:
        for frame in batch[:2]:
            pipeline(frame)  # warm-up
        for _ in range(repeats):
            for frame in batch:
                result = pipeline(frame)
                rows.append(result.timings_ms | {"found": result.found, "roi": result.roi})
    found = [r for r in rows if r["found"]]
    p50 = {s: statistics.median(r[s] for r in found) for s in STAGES}
    return {"backend": backend, "variants": opened.variants, "frames_with_lesion": len(found),
            "frames": len(rows), "p50_ms": p50,
            "mean_roi_px": statistics.mean(r["roi"][2] * r["roi"][3] for r in found)}


def rss_run(models: Path, manifest: dict, batch: list[np.ndarray], count: int) -> dict:
    opened = open_runners(models, manifest, "onnxruntime", "auto")
    samples = []
    with Pipeline(opened.seg, opened.sr, manifest) as pipeline:
        for i in range(count):
            pipeline(batch[i % len(batch)])
            if (i + 1) % 50 == 0:
                samples.append((i + 1, round(rss_mb(), 1)))
                print(f"  {i + 1} frames, RSS {samples[-1][1]} MB", file=sys.stderr, flush=True)
    after_warmup = [mb for n, mb in samples if n >= 100]
    spread = (max(after_warmup) - min(after_warmup)) / min(after_warmup) if after_warmup else float("nan")
    return {"samples_mb": samples, "spread_after_100_frames": spread, "flat_within_5pct": spread <= 0.05}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "pipeline.json")
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.rss_only:
        with tempfile.TemporaryDirectory(prefix="skinedge-rss-") as tmp:
            memory = rss_run(args.models, load_models(args.models), frames(Path(tmp)), args.frames)
        memory["torch_imported"] = "torch" in sys.modules
        print(json.dumps(memory))
        return
    with tempfile.TemporaryDirectory(prefix="skinedge-pipeline-") as tmp:
        work = Path(tmp)
        models = args.models
        if models is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import precision  # the same model-making steps as the precision benchmark

            models, _ = precision.prepare_models(work)
        manifest = load_models(models)
        batch = frames(work)
        torch_side = time_backend(models, manifest, "torch", "fp32", batch, args.repeats)
        print(f"torch: p50 total {torch_side['p50_ms']['total']:.0f} ms", file=sys.stderr, flush=True)
        ort_side = time_backend(models, manifest, "onnxruntime", "auto", batch, args.repeats)
        print(f"onnxruntime: p50 total {ort_side['p50_ms']['total']:.0f} ms", file=sys.stderr, flush=True)
        memory = json.loads(subprocess.run(
            [sys.executable, __file__, "--rss-only", "--models", str(models), "--frames", str(args.frames)],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    speedup = torch_side["p50_ms"]["total"] / ort_side["p50_ms"]["total"]
    result = {"command": "python benchmarks/pipeline.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                                     if k != "json" and v is not None),
              "torch": torch_side, "onnxruntime": ort_side, "speedup_total": speedup, "rss": memory}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("| stage (p50 ms, frames with a lesion) | torch FP32 | ONNX Runtime auto | ratio |\n|---|---:|---:|---:|")
    for s in STAGES:
        a, b = torch_side["p50_ms"][s], ort_side["p50_ms"][s]
        print(f"| {s} | {a:.1f} | {b:.1f} | {a / b if b else float('nan'):.2f} |")
    print(f"\nvariants: torch {torch_side['variants']}, onnxruntime {ort_side['variants']}; "
          f"mean ROI {ort_side['mean_roi_px']:.0f} px; end to end {speedup:.2f}× faster")
    print(f"RSS of a runtime-only process (torch imported: {memory['torch_imported']}) over {args.frames} frames "
          f"(MB, every 50): {memory['samples_mb']}; spread after 100 frames "
          f"{memory['spread_after_100_frames']:.1%} ({'flat' if memory['flat_within_5pct'] else 'NOT flat'})")
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
