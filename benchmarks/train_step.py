"""Training steps per minute on this machine, before and after each lever of ``train all``, in one process.

SR generator (16 blocks, bicubic skip, L1, Adam; batch 16, HR crops 96², the camera's degradation) and segmenter
(U-Net 256², batch 8, BCE + Dice), each step timed *with* its data loading, on the same real photos:

    today           ``train sr``'s path: crops from decoded full-size photos (the in-memory item cache holds
                    1.5 GB, the rest is decoded again per crop), FP32, contiguous memory, batches built in the
                    training process
    + cache         crops from ``train all``'s decoded cache at the training scale (no JPEG decode)
    + channels_last
    + bf16          autocast to bfloat16 (only where the CPU has native BF16)
    + worker        batches built by one DataLoader worker during the step
    + compile       torch.compile of the network (compile time reported apart)

The bf16 check: the same 60 steps from the same weights on the same batches in FP32 and in bf16; the L1 curves
and their final gap. Photos: the shared real sets when present (never copied anywhere), else generated ones.

    python benchmarks/train_step.py [--steps 12] [--json benchmarks/results/train_step.json] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skinedge.data import open_dataset
from skinedge.data.degrade import Degradation
from skinedge.data.generate import write_synthetic
from skinedge.data.pool import pool_document
from skinedge.models.srgan import Generator
from skinedge.models.unet import build_segmenter
from skinedge.train.all.cache import build_cache
from skinedge.train.all.sources import Prefetcher, SegSource, SRSource
from skinedge.train.losses import seg_loss
from skinedge.train.samples import SRSamples

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("isic2017-val96", "isic2017-dev290", "isic2018-crop512-dev1561")
BATCH, CROP = 16, 96


def photos(work: Path) -> tuple[str, str]:
    """(pool spec, what it is): the shared real sets, else 300 generated 768×576-class photos."""
    if all((SHARED / s).is_dir() for s in SETS):
        specs, what = [f"isic2018:{SHARED / s}" for s in SETS], "the three shared real sets (1947 photos)"
    else:
        write_synthetic(work / "synth", count=300, size=640, seed=0)
        specs, what = [f"synthetic:{work / 'synth'}"], "300 generated 640² photos (no real data here)"
    (work / "pool.json").write_text(json.dumps(pool_document(specs)))
    return f"pool:{work / 'pool.json'}", what


def rate(step, batches, steps: int, warmup: int = 2) -> dict:
    """Steps per minute of ``step(batch)`` with ``batches()`` yielding the data, loading included."""
    it = batches()
    for _ in range(warmup):
        step(next(it))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(next(it))
        times.append(time.perf_counter() - start)
    return {"steps_per_min": round(60 / statistics.median(times), 1), "median_s": round(statistics.median(times), 3),
            "runs": len(times)}


def sr_step(generator, opt, channels_last: bool, autocast):
    def step(batch):
        lr, hr = batch
        if channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = generator(lr)
        loss = F.l1_loss(out.float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def fresh_generator(channels_last: bool, seed: int = 0):
    torch.manual_seed(seed)
    g = Generator(16, 64, 4, bicubic_skip=True)
    if channels_last:
        g = g.to(memory_format=torch.channels_last)
    return g, torch.optim.Adam(g.parameters(), 3e-4)


def in_process(source, batch: int):
    def batches():
        step = 0
        while True:
            indices = [(step * batch + k) % len(source.ids) for k in range(batch)]
            yield source.batch(indices, step)
            step += 1
    return batches


def prefetched(source, batch: int):
    def batches():
        ahead = Prefetcher(source, batch, 0, 0, workers=1)
        step = 0
        while True:
            indices, epoch = ahead.steps.indices(step)
            yield ahead.get(indices, epoch, step)
            step += 1
    return batches


def bf16_follows_fp32(source, steps: int = 60) -> dict:
    """L1 over the same batches from the same weights, FP32 vs bf16 autocast (both channels_last)."""
    batches = [source.batch([(s * BATCH + k) % len(source.ids) for k in range(BATCH)], s) for s in range(steps)]
    curves = {}
    for name, ctx in (("fp32", nullcontext), ("bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16))):
        g, opt = fresh_generator(True)
        step = sr_step(g, opt, True, ctx)
        curves[name] = [step(b) for b in batches]
    tail = slice(steps - 10, steps)
    gap = abs(np.mean(curves["bf16"][tail]) - np.mean(curves["fp32"][tail])) / np.mean(curves["fp32"][tail])
    return {"steps": steps, "fp32_l1_last10": round(float(np.mean(curves["fp32"][tail])), 5),
            "bf16_l1_last10": round(float(np.mean(curves["bf16"][tail])), 5), "relative_gap": round(float(gap), 4),
            "fp32_curve": [round(v, 5) for v in curves["fp32"]], "bf16_curve": [round(v, 5) for v in curves["bf16"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "train_step.json")
    args = ap.parse_args()
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    work = Path(tempfile.mkdtemp(prefix="train-step-"))
    spec, what = photos(work)
    ids = open_dataset(spec).ids
    print(f"photos: {what}; building the decoded cache", file=sys.stderr)
    started = time.perf_counter()
    build_cache(spec, ids, work / "cache", 256, 512)
    cache_s = time.perf_counter() - started
    order = list(np.random.default_rng(0).permutation(ids))
    cached = SRSource(work / "cache", order, CROP, seed=0, focus=0.8, clean_share=0.0)
    today = SRSamples(open_dataset(spec).subset(order), CROP, Degradation(scale=4), True, 0)
    today.ids = order  # for in_process's indexing

    rows = {}
    g, opt = fresh_generator(False)
    rows["today"] = rate(sr_step(g, opt, False, nullcontext), in_process(today, BATCH), args.steps)
    g, opt = fresh_generator(False)
    rows["+cache"] = rate(sr_step(g, opt, False, nullcontext), in_process(cached, BATCH), args.steps)
    g, opt = fresh_generator(True)
    rows["+channels_last"] = rate(sr_step(g, opt, True, nullcontext), in_process(cached, BATCH), args.steps)
    if bf16:
        g, opt = fresh_generator(True)
        rows["+bf16"] = rate(sr_step(g, opt, True, autocast), in_process(cached, BATCH), args.steps)
    g, opt = fresh_generator(True)
    rows["+worker"] = rate(sr_step(g, opt, True, autocast), prefetched(cached, BATCH), args.steps)
    compile_note = "skipped (--no-compile)"
    if not args.no_compile:
        g, opt = fresh_generator(True)
        try:
            started = time.perf_counter()
            compiled = torch.compile(g)
            step = sr_step(compiled, opt, True, autocast)
            step(next(prefetched(cached, BATCH)()))
            compile_note = f"first step (compilation) {time.perf_counter() - started:.0f} s"
            rows["+compile"] = rate(step, prefetched(cached, BATCH), args.steps)
        except Exception as exc:  # noqa: BLE001 - a compiler missing or failing here is a result, not a crash
            compile_note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    base = rows["today"]["steps_per_min"]
    for row in rows.values():
        row["x_today"] = round(row["steps_per_min"] / base, 2)

    seg_rows = {}
    seg_src = SegSource(work / "cache", order, 0, augment=True)
    for encoder in ("efficientnet-b3", "resnet18"):
        for name, cl, ctx in (("fp32", False, nullcontext), ("bf16+channels_last", True, autocast)):
            torch.manual_seed(0)
            model = build_segmenter(encoder)
            if cl:
                model = model.to(memory_format=torch.channels_last)
            seg_opt = torch.optim.Adam(model.parameters(), 1e-3)

            def step(batch, model=model, seg_opt=seg_opt, cl=cl, ctx=ctx):
                x, y = batch
                with ctx():
                    out = model(x.contiguous(memory_format=torch.channels_last) if cl else x)
                loss = seg_loss(out.float(), y)
                seg_opt.zero_grad(set_to_none=True)
                loss.backward()
                seg_opt.step()
            seg_rows[f"{encoder} {name}"] = rate(step, in_process(seg_src, 8), max(4, args.steps // 2))

    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "native_bf16": bool(bf16)},
        "photos": what, "cache_build_s": round(cache_s, 1),
        "sr_16blocks_batch16_hr96": rows, "compile": compile_note,
        "bf16_follows_fp32": bf16_follows_fp32(cached) if bf16 else "no native BF16 here",
        "seg_unet_256_batch8": seg_rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"SR {name:16s} {row['steps_per_min']:7.1f} steps/min  ×{row['x_today']}")
    print(f"SR compile: {compile_note}")
    for name, row in seg_rows.items():
        print(f"seg {name:36s} {row['steps_per_min']:7.1f} steps/min")
    if isinstance(result["bf16_follows_fp32"], dict):
        b = result["bf16_follows_fp32"]
        print(f"bf16 vs FP32 L1 over the last 10 of {b['steps']} steps: {b['bf16_l1_last10']} vs "
              f"{b['fp32_l1_last10']} (gap {b['relative_gap']:.1%})")


if __name__ == "__main__":
    main()
