"""``skinedge train seg``: the U-Net segmenter as the paper trains it (§4.2.1).

Defaults: 256×256 input, BCE + Dice, Adam 1e-4, batch 16, 50 epochs, flips and
brightness/contrast augmentation. Validation every epoch with the paper's
metrics at the training resolution, in eval mode, after re-estimating the BN
statistics; the best checkpoint is the one with the highest validation Dice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skinedge import metrics
from skinedge.models.unet import DEFAULT_DROPOUT, DEFAULT_ENCODER, build_segmenter
from skinedge.train.batchnorm import recalibrate_batchnorm
from skinedge.models.checkpoint import load_checkpoint
from skinedge.train.loop import (Budget, check_finite, epoch_batches, seed_everything, start_runtime,
                                 stop_runtime, unwrap, wrap_ddp)
from skinedge.train.losses import seg_loss
from skinedge.train.runner import Phase, restore, run_phase
from skinedge.train.samples import IMAGENET_MEAN, IMAGENET_STD, SegSamples
from skinedge.train.setup import RunConfig, prepare_run


@dataclass
class SegConfig(RunConfig):
    """Paper defaults (§4.2.1) for the options a run does not share with SR."""

    encoder: str = DEFAULT_ENCODER
    encoder_weights: str = "none"
    dropout: float = DEFAULT_DROPOUT
    size: int = 256
    bn_batches: int = 32


@torch.no_grad()
def validate_seg(model: torch.nn.Module, samples: SegSamples, device: torch.device) -> dict[str, float]:
    """Mean per-image scores (Dice, IoU, ...) and loss on ``samples``, eval mode."""
    model.eval()
    per_image, losses = [], []
    for start in range(0, len(samples), 8):
        x, y = samples.batch(list(range(start, min(start + 8, len(samples)))))
        logits = model(x.to(device))
        losses.append(float(seg_loss(logits, y.to(device))) * len(x))
        pred = (logits > 0).cpu().numpy()[:, 0]
        per_image += [metrics.segmentation_scores(t > 0.5, p) for t, p in zip(y.numpy()[:, 0], pred)]
    scores = metrics.mean_scores(per_image)
    scores["loss"] = sum(losses) / len(samples)
    return scores


def train_seg(cfg: SegConfig) -> dict:
    """Train (or resume) a segmenter into ``cfg.out``; returns best/last validation metrics."""
    rt = start_runtime(cfg.device)
    try:
        seed_everything(cfg.seed + rt.rank)
        dataset, split, data = prepare_run(cfg.out, cfg.data, cfg.split, cfg.seed, cfg.resume, "seg",
                                           cfg.to_json(), rt.main)
        train = SegSamples(dataset.subset(split.parts["train"]), cfg.size, augment=True, seed=cfg.seed)
        val = SegSamples(dataset.subset(split.parts["val"]), cfg.size, augment=False)
        arch = {"encoder": cfg.encoder, "dropout": cfg.dropout}
        model = build_segmenter(cfg.encoder, cfg.encoder_weights, cfg.dropout).to(rt.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        ddp = wrap_ddp(model, rt)
        last_path = cfg.out / "seg-last.pt"

        def step(indices: list[int], epoch: int, global_step: int) -> dict[str, float]:
            ddp.train()
            x, y = train.batch(indices, epoch)
            loss = seg_loss(ddp(x.to(rt.device)), y.to(rt.device))
            check_finite(loss, global_step, str(last_path))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.item()}

        def validate() -> dict[str, float]:
            if cfg.bn_batches:
                order = (train.batch(idx)[0].to(rt.device) for idx in
                         epoch_batches(len(train), cfg.batch, 0, cfg.seed + 1, rt))
                recalibrate_batchnorm(unwrap(ddp), (x for _, x in zip(range(cfg.bn_batches), order)))
            return validate_seg(unwrap(ddp), val, rt.device)

        io = {"input": "RGB uint8 resized to size², /255, minus mean, over std", "size": cfg.size,
              "mean": IMAGENET_MEAN.tolist(), "std": IMAGENET_STD.tolist(), "output": "logits (N×1×H×W)"}
        phase = Phase("seg", "seg", len(train), cfg.batch, cfg.epochs, step, validate, "dice",
                      {"model": model}, {"model": opt}, arch,
                      {"config": cfg.to_json(), "data": data, "io": io}, cfg.seed, cfg.schedule)
        progress = restore(phase, load_checkpoint(last_path, "seg"), last_path) if cfg.resume else None
        return run_phase(phase, rt, cfg.out, Budget(cfg.max_steps, cfg.max_minutes), progress)
    finally:
        stop_runtime(rt)

