"""GpuPipeline (one CUDA stream, CUDA kernels, torch-CUDA networks) against the CPU Pipeline, p50 per stage.

    python benchmarks/gpu_pipeline.py [--frames 20] [--cpu-frames 2] [--lesion 0.1] [--fp32] [--json out.json]

Networks: the paper's sizes, random-initialised (no download): ``build_segmenter()`` (EfficientNet-B3 U-Net,
256²) and ``Generator(16)`` (×4). The segmenter runs in full, but its output is replaced by a fixed disc of radius
``--lesion`` (fraction of the frame's height and width, centred) so the ROI, and with it the SR cost, is that of
a typical lesion and the same in every row — a random network's mask would be arbitrary.

Rows, for 256² and 1920×1080 frames (ROI view):
- ``gpu``: GpuPipeline, torch adapter on CUDA (FP16 + channels-last, as the torch backend runs on CUDA; ``--fp32``
  for FP32), networks replayed as CUDA graphs, stage times from CUDA events; ``wall`` is the whole call, image
  copy-out included (the fixed disc keeps the ROI, so the SR shape, the same every frame: the SR graph is
  replayed every frame, which a moving lesion would not always allow; the segmenter's shape never changes);
- ``gpu-eager``: the same without CUDA graphs (every layer launched from Python);
- ``torch-cuda``: Pipeline (host stages in NumPy) with the torch backend on CUDA;
- ``cpu``: Pipeline with the torch backend on the CPU, FP32, ``--cpu-frames`` frames, no warm-up (it is slow).
Exits 0 with a message when there is no GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinedge.runtime.gpu import device as cu  # noqa: E402

STAGES = ("preprocess", "seg", "mask", "sr", "composite", "total", "wall")
SIZES = ((256, 256), (1080, 1920))
SEG_SIZE, MEAN, STD = 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def manifest() -> dict:
    return {"networks": {
        "seg": {"input": {"name": "image", "shape": ["batch", 3, SEG_SIZE, SEG_SIZE], "mean": list(MEAN),
                          "std": list(STD)}, "output": {"name": "logits"}},
        "sr": {"input": {"name": "lr"}, "output": {"name": "sr"}, "scale": 4}}}


def disc(shape: tuple[int, int], radius: float) -> np.ndarray:
    """True inside the centred disc of ``radius`` (a fraction of each side) on an h×w grid."""
    h, w = shape
    yy, xx = (np.mgrid[:h, :w] + 0.5) / np.array([h, w])[:, None, None]
    return (yy - 0.5) ** 2 + (xx - 0.5) ** 2 <= radius * radius


def lesion_frame(shape: tuple[int, int], radius: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    skin = np.clip(np.array([150, 170, 210]) + rng.normal(0, 8, (*shape, 3)), 0, 255)
    return np.where(disc(shape, radius)[:, :, None], skin * 0.4, skin).astype(np.uint8)


def networks(torch, radius: float):
    """(segmenter with the fixed-disc output, generator), random-init, eval, on the CPU."""
    from skinedge.models.srgan import Generator
    from skinedge.models.unet import build_segmenter

    class FixedDisc(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            logits = np.where(disc((SEG_SIZE, SEG_SIZE), radius), 8.0, -8.0).astype(np.float32)
            self.register_buffer("logits", torch.from_numpy(logits)[None, None])

        def forward(self, x):
            return self.net(x) * 0 + self.logits

    torch.manual_seed(0)
    return FixedDisc(build_segmenter()).eval(), Generator(16).eval()


def runners(torch, seg, sr, device: str, half: bool):
    from skinedge.runtime.backends.torch import TorchRunner

    def place(model):
        model = copy.deepcopy(model).to(device)
        if half:
            model = model.half()
        return model.to(memory_format=torch.channels_last) if device == "cuda" else model

    return (TorchRunner((place(seg), device, half), "image", "logits"),
            TorchRunner((place(sr), device, half), "lr", "sr", clamp=True))


def measure(pipeline, frames: list[np.ndarray], warmup: int) -> dict:
    rows = []
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        result = pipeline(frame)
        wall = (time.perf_counter() - start) * 1000
        if i >= warmup:
            rows.append(dict(result.timings_ms, wall=wall, roi=result.roi, found=result.found))
    p50 = {s: statistics.median(r[s] for r in rows) for s in STAGES}
    return {"frames": len(rows), "p50_ms": p50, "roi": rows[-1]["roi"], "found": all(r["found"] for r in rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size on the GPU")
    parser.add_argument("--cpu-frames", type=int, default=2, help="timed frames per size on the CPU")
    parser.add_argument("--lesion", type=float, default=0.1, help="lesion radius, fraction of the frame side")
    parser.add_argument("--fp32", action="store_true", help="FP32 on the GPU (default FP16, the torch backend's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not cu.gpu_available():
        print("gpu_pipeline: no CUDA GPU here (cuda.bindings missing, no driver, or no device): nothing to time.")
        return 0
    try:
        import torch
    except ImportError:
        print("gpu_pipeline: PyTorch is not installed: nothing to time.")
        return 0
    if not torch.cuda.is_available():
        print("gpu_pipeline: torch sees no CUDA GPU: nothing to time.")
        return 0
    from skinedge.runtime.gpu.pipeline import GpuPipeline
    from skinedge.runtime.pipeline.host import Pipeline

    half = not args.fp32
    seg, sr = networks(torch, args.lesion)
    results = []
    for shape in SIZES:
        frames = [lesion_frame(shape, args.lesion, seed) for seed in range(4)]
        gpu_frames = [frames[i % len(frames)] for i in range(args.frames + 3)]
        cases = (("gpu", "cuda", GpuPipeline, gpu_frames, 3), ("gpu-eager", "cuda", GpuPipeline, gpu_frames, 3),
                 ("torch-cuda", "cuda", Pipeline, gpu_frames, 3), ("cpu", "cpu", Pipeline, frames[:args.cpu_frames], 0))
        for label, device, kind, batch, warmup in cases:
            seg_r, sr_r = runners(torch, seg, sr, device, half and device == "cuda")
            extra = {"max_frame": max(SIZES), "graphs": label == "gpu"} if kind is GpuPipeline else {}
            with kind(seg_r, sr_r, manifest(), "roi", **extra) as pipeline:
                row = measure(pipeline, batch, warmup)
            precision = "fp16" if half and device == "cuda" else "fp32"
            results.append({"frame": f"{shape[1]}x{shape[0]}", "pipeline": label, "precision": precision, **row})
            torch.cuda.synchronize()

    print(f"GPU: {torch.cuda.get_device_name()} | torch {torch.__version__} | networks random-init, paper size "
          f"(EfficientNet-B3 U-Net {SEG_SIZE}², SRResNet 16 blocks ×4) | lesion radius {args.lesion} of the frame")
    print(f"{'frame':<10} {'pipeline':<11} {'prec':<5} {'ROI':<18} {'n':>3} "
          + " ".join(f"{s:>10}" for s in STAGES) + "   (p50 ms)")
    for r in results:
        roi = "x".join(map(str, r["roi"][2:])) if r["roi"] else "-"
        print(f"{r['frame']:<10} {r['pipeline']:<11} {r['precision']:<5} {roi:<18} {r['frames']:>3} "
              + " ".join(f"{r['p50_ms'][s]:>10.2f}" for s in STAGES))
    for frame in {r["frame"]: None for r in results}:
        by = {r["pipeline"]: r["p50_ms"]["wall"] for r in results if r["frame"] == frame}
        print(f"{frame}: GpuPipeline {by['gpu']:.1f} ms/frame = {by['cpu'] / by['gpu']:.0f}x the CPU pipeline, "
              f"{by['torch-cuda'] / by['gpu']:.2f}x Pipeline with torch on CUDA, "
              f"{by['gpu-eager'] / by['gpu']:.2f}x GpuPipeline without CUDA graphs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "lesion": args.lesion,
                                         "rows": results}, indent=2) + "\n")
    return 0 if all(r["found"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
