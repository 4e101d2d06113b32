"""Both networks trained from the cache under a wall-clock budget, faster per CPU minute than ``train seg|sr``.

What each step gains (measured in ``benchmarks/train_step.py``): no JPEG decoded per crop (the cache),
channels_last memory, bfloat16 autocast where the CPU has native BF16 (or a CUDA GPU), and batches built by a
DataLoader worker while the step runs. The learning rate follows a cosine over the *time* budget, since the
number of steps a budget buys is not known in advance. Checkpoints, the best-by-validation rule, resume and
Ctrl-C are the runner's (:func:`skinedge.train.runner.run_phase`).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skinedge import metrics
from skinedge.data.degrade import bicubic_upscale, degrade
from skinedge.models.checkpoint import load_checkpoint
from skinedge.models.srgan import Generator
from skinedge.models.unet import build_segmenter
from skinedge.train.all.cache import Cache
from skinedge.train.all.fingerprint import Plan
from skinedge.train.all.sources import (CAMERA, CLEAN, SET_POWER, Prefetcher, SegSource, SRSource, balanced_ids,
                                       set_shares)
from skinedge.train.average import WeightAverage
from skinedge.train.loop import Budget, Runtime, check_finite, seed_everything
from skinedge.train.losses import seg_loss
from skinedge.train.runner import Phase, restore, run_phase
from skinedge.train.samples import IMAGENET_MEAN, IMAGENET_STD
from skinedge.train.sr import super_resolve

LONG_RUN = 10**6  # epochs: the time budget ends a phase, not an epoch count
SR_ARCH = {"blocks": 16, "features": 64, "scale": 4, "bicubic_skip": True, "norm": False, "zero_tail": True,
           "camera_plane": True}  # the generator `train all` trains (see train_generator)
VAL_SEG = 128  # validation images the segmenter is scored on (training's checks and the mask threshold)
AVERAGE = {"seg": 0.998, "sr-pretrain": 0.999}  # weight-average decay: a window of ~500 of the segmenter's ~4000
# steps and ~1000 of the generator's ~3000 (SR trainings keep 0.999); the average is what is validated and shipped


def fast_math(device: torch.device) -> tuple[str, object]:
    """(what, autocast context factory): bf16 autocast where the hardware runs it natively, else FP32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16 autocast (CUDA)", lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16 autocast (CPU has native BF16)", lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return "FP32 (no native BF16 here)", nullcontext


class TimeCosine:
    """Learning rate = base × cosine of the share of the time budget spent (warm-up over the first steps)."""

    def __init__(self, optimizer: torch.optim.Optimizer, base: float, seconds: float, spent: float,
                 warmup: int = 50):
        self.optimizer, self.base, self.seconds, self.warmup = optimizer, base, max(seconds, 1.0), warmup
        self.started = time.monotonic() - spent

    def __call__(self, step: int) -> None:
        share = min(1.0, (time.monotonic() - self.started) / self.seconds)
        factor = max(0.02, 0.5 * (1 + math.cos(math.pi * share))) * min(1.0, (step + 1) / self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = self.base * factor


@dataclass
class StageRun:
    """What a training stage needs from the command."""

    out: Path
    cache: Path
    train_ids: list[str]
    val_ids: list[str]
    plan: Plan
    minutes: float
    device: torch.device
    data: dict  # the checkpoint's data section: pool spec, split file and its sha256
    seed: int = 0
    workers: int = 1
    log: object = print


def _resume(phase: Phase, last: Path) -> dict | None:
    """The progress of ``last`` with its networks and optimizer restored, or None when there is none. A checkpoint
    written before the weight average (no ``live``) resumes with the average starting from its network."""
    if not last.is_file():
        return None
    payload = load_checkpoint(last, phase.kind)
    payload["state"].setdefault("live", payload["state"]["model"])
    return restore(phase, payload, last)


def _spent(progress: dict | None) -> float:
    return float((progress or {}).get("elapsed_s", 0.0))


def train_segmenter(run: StageRun) -> dict:
    """The segmenter from the cache; returns the runner's result (best/last validation, steps)."""
    seed_everything(run.seed)
    plan = run.plan
    model = build_segmenter(plan.seg_encoder, "none").to(run.device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    average = WeightAverage(model, AVERAGE["seg"])
    train = SegSource(run.cache, balanced_ids(run.train_ids), run.seed, augment=True)
    train.min_items = plan.seg_batch * 150  # validate every 150 steps, or once through a longer list (shared sets: 229)
    val = SegSource(run.cache, run.val_ids[:VAL_SEG], run.seed, augment=False)
    what, autocast = fast_math(run.device)

    def validate() -> dict[str, float]:
        return validate_segmenter(average.model, val, run.device, autocast)

    io = {"input": "RGB uint8 resized to size², /255, minus mean, over std", "size": plan.seg_size,
          "mean": IMAGENET_MEAN.tolist(), "std": IMAGENET_STD.tolist(), "output": "logits (N×1×H×W)"}
    config = {"command": "train all", "encoder": plan.seg_encoder, "size": plan.seg_size, "batch": plan.seg_batch,
              "lr": 1e-3, "schedule": "cosine over the time budget", "math": what, "augment": "dermoscopy",
              "sampling": f"pooled sets drawn ∝ size ** {SET_POWER}", "weights": _averaged("seg")}
    phase = Phase("seg", "seg", len(train), plan.seg_batch, LONG_RUN, lambda *a: {}, validate, "dice",
                  {"model": average.model, "live": model}, {"model": opt},
                  {"encoder": plan.seg_encoder, "dropout": 0.2},
                  {"config": config, "data": run.data, "io": io}, run.seed)
    what_line = (f"seg: {plan.seg_encoder} U-Net {plan.seg_size}², batch {plan.seg_batch}, {what}, "
                 f"{run.workers} loader worker(s), {len(run.train_ids)} train / {len(val)} val images, "
                 f"pooled sets drawn ∝ size ** {SET_POWER} ({set_shares(train.ids)})")
    return _train(run, phase, train, plan.seg_batch, 1e-3, lambda x, y: seg_loss(model(x).float(), y), "loss",
                  what_line, average)


@torch.no_grad()
def validation_logits(model, val: SegSource, device, autocast=nullcontext) -> tuple[np.ndarray, np.ndarray]:
    """(logits N×S×S, truths N×S×S bool) of a segmenter on un-augmented images, 16 at a time."""
    model.eval()
    logits, truths = [], []
    for start in range(0, len(val), 16):
        x, y = val.batch(list(range(start, min(start + 16, len(val)))))
        with autocast():
            out = model(x.to(device).contiguous(memory_format=torch.channels_last)).float()
        logits.append(out.cpu().numpy()[:, 0])
        truths.append(y.numpy()[:, 0] > 0.5)
    return np.concatenate(logits), np.concatenate(truths)


def validate_segmenter(model, val: SegSource, device, autocast=nullcontext) -> dict[str, float]:
    logits, truths = validation_logits(model, val, device, autocast)
    return metrics.mean_scores(metrics.segmentation_scores(t, p > 0) for t, p in zip(truths, logits))


def sr_validation_ids(cache: Cache, ids: list[str], limit: int = 8) -> list[str]:
    """Validation photos for SR: whole photos (non-square) with a lesion first, spread over the list."""
    items = {e["id"]: e for e in cache.index["items"]}
    whole = [i for i in ids
             if i in items and items[i]["shape"][0] != items[i]["shape"][1] and items[i]["lesion"] > 0.01]
    pool = whole or [i for i in ids if i in items and items[i]["lesion"] > 0.01] or ids
    picks = np.linspace(0, len(pool) - 1, min(limit, len(pool))).round().astype(int)
    return [pool[k] for k in sorted(set(picks.tolist()))]


@torch.no_grad()
def validate_generator(generator, cache: Cache, ids: list[str], device) -> dict[str, float]:
    """Lesion PSNR-Y of G and of bicubic on whole validation photos, for both LR protocols; ``gain`` (the key)
    is G's mean lesion gain over bicubic across the two."""
    generator.eval()
    rows = []
    for k, item_id in enumerate(ids):
        hr, mask = (np.array(a) for a in cache.sr(item_id))
        row = {}
        for name, how in (("a", CLEAN), ("b", CAMERA)):
            lr = degrade(hr, how, seed=k)
            sr = super_resolve(generator, lr[None], device, camera=float(how is CAMERA))[0]
            g = metrics.psnr(sr, hr, border=4, y_channel=True, mask=mask)
            b = metrics.psnr(bicubic_upscale(lr, 4), hr, border=4, y_channel=True, mask=mask)
            row.update({f"gain_{name}": g - b, f"lesion_psnr_y_{name}": g})
        rows.append(row)
    scores = metrics.mean_scores(rows)
    scores["gain"] = (scores["gain_a"] + scores["gain_b"]) / 2
    return scores


def train_generator(run: StageRun, blocks: int = SR_ARCH["blocks"], features: int = SR_ARCH["features"],
                    base_lr: float = 5e-4) -> dict:
    """The 16-block generator (bicubic skip, ICNR, no BatchNorm, zero-started tail, camera plane) from the cache;
    returns the runner's result. Without BN and with the tail at zero (the untrained network is bicubic), a
    7-minute probe on the real split gained +0.04 dB on camera LR where the paper's BN trunk gained 0.00. Told
    which LR it sees (the camera plane, :mod:`skinedge.runtime.pipeline.camera_plane`), an 11-minute one-thread
    probe gained +0.54 / +0.04 dB (clean / camera LR) where the blind network gained +0.15 / +0.01; after the
    23.6 min of a 60-min run both validate at ≈ +0.70 / +0.11 (the plane gets there in about half the steps).

    ``blocks``, ``features``, ``base_lr``: other sizes for capacity probes (``benchmarks/sr_capacity.py``); the
    defaults are what ``train all`` ships. base_lr, 11-min probes (camera/clean gain): 1.5e-4 +0.10/+0.34 dB, 3e-4
    +0.15/+0.56, 6e-4 +0.15/+0.65, 9e-4 diverged by step 200: 5e-4 keeps most of the gain at a distance from the
    edge (a 32-block, 96-feature trunk diverged at 5e-4 by step 400 and trains at 2e-4)."""
    seed_everything(run.seed)
    plan = run.plan
    arch = dict(SR_ARCH, blocks=blocks, features=features)
    generator = Generator(**arch).to(run.device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(generator.parameters(), lr=base_lr, betas=(0.9, 0.99))
    average = WeightAverage(generator, AVERAGE["sr-pretrain"])
    train = SRSource(run.cache, run.train_ids, plan.sr_crop, run.seed, plan.lesion_focus, plan.clean_share,
                     camera_plane=arch["camera_plane"])
    train.min_items = plan.sr_batch * 200  # validate about every 200 steps
    cache = Cache(run.cache)
    val_ids = sr_validation_ids(cache, run.val_ids)
    what, _ = fast_math(run.device)
    io = {"input": "RGB in [0, 1], N×3×h×w", "output": "RGB in [0, 1] (clamp), N×3×sh×sw", "scale": 4,
          "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "content_loss": "pixel l1"}
    config = {"command": "train all", "phase": "pretrain", "hr_size": plan.sr_crop, "batch": plan.sr_batch,
              "lr": base_lr, "schedule": "cosine over the time budget", "math": what, "pixel_loss": "l1",
              "degradation": f"camera (b) {1 - plan.clean_share:.0%}, bicubic (a) {plan.clean_share:.0%}",
              "lesion_focus": plan.lesion_focus, "init": "ICNR pixel-shuffle convolutions, tail at zero",
              "weights": _averaged("sr-pretrain"), **arch}
    phase = Phase("sr-pretrain", "sr", len(train), plan.sr_batch, LONG_RUN, lambda *a: {},
                  lambda: validate_generator(average.model, cache, val_ids, run.device), "gain",
                  {"model": average.model, "live": generator}, {"model": opt}, arch,
                  {"config": config, "data": run.data, "io": io}, run.seed)
    what_line = (f"sr: {blocks}-block, {features}-feature generator (bicubic skip, ICNR, no BN, camera plane), "
                 f"HR crops {plan.sr_crop}², "
                 f"batch {plan.sr_batch}, {what}, {run.workers} loader worker(s), {len(train.ids)} train images, "
                 f"validation on {len(val_ids)} whole photos")
    return _train(run, phase, train, plan.sr_batch, base_lr, lambda lr, hr: F.l1_loss(generator(lr).float(), hr),
                  "l1", what_line, average)


def _averaged(name: str) -> str:
    return f"exponential moving average of the trained weights, decay {AVERAGE[name]} (validated and checkpointed)"


def _train(run: StageRun, phase: Phase, source, batch: int, base_lr: float, loss_of, loss_name: str,
           what: str, average: WeightAverage) -> dict:
    """Resume if a ``-last.pt`` is there, then run the phase: prefetched batches, time-cosine learning rate,
    autocast, channels_last, one optimizer step per batch, then the weight average's update; the budget left is
    the stage's minus time spent. ``phase.modules``: ``model`` the average (what the checkpoints are of),
    ``live`` the network the optimizer trains."""
    model, opt = phase.modules["live"], phase.optimizers["model"]
    last = run.out / f"{phase.name}-last.pt"
    progress = _resume(phase, last)
    spent = _spent(progress)
    schedule = TimeCosine(opt, base_lr, run.minutes * 60, spent)
    batches = Prefetcher(source, batch, run.seed, (progress or {}).get("step", 0), run.workers)
    _, autocast = fast_math(run.device)

    def step(indices: list[int], epoch: int, global_step: int) -> dict[str, float]:
        x, y = batches.get(indices, epoch, global_step)
        schedule(global_step)
        model.train()
        with autocast():
            loss = loss_of(x.to(run.device).contiguous(memory_format=torch.channels_last), y.to(run.device))
        check_finite(loss, global_step, str(last))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        average.update(model, global_step)
        return {loss_name: loss.item()}

    phase.step = step
    run.log(f"{what}, {run.minutes:.1f} min budget ({spent / 60:.1f} already spent)")
    try:
        return run_phase(phase, Runtime(run.device), run.out, Budget(None, max(0.0, run.minutes - spent / 60)),
                         progress)
    finally:
        batches.close()

