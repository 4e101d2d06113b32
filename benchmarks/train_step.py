"""Seconds per training batch of the full-size networks on this machine (paper settings).

Segmenter: EfficientNet-B3 U-Net, 256², batch 16, BCE + Dice, Adam.
SR generator: 16 blocks, LR 64² → HR 256², batch 8, MSE, Adam (pretrain step),
and a GAN step (generator + discriminator, pixel content loss).

    python benchmarks/train_step.py [--repeats 3] [--json benchmarks/results/train_step.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from skinedge.models.srgan import Discriminator, Generator
from skinedge.models.unet import build_segmenter
from skinedge.train.losses import adversarial_loss, discriminator_loss, seg_loss


def timed(step, repeats: int) -> dict:
    step()  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "runs": [round(t, 3) for t in times]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "train_step.json")
    args = ap.parse_args()
    torch.manual_seed(0)

    seg = build_segmenter().train()
    seg_opt = torch.optim.Adam(seg.parameters(), lr=1e-4)
    x, y = torch.randn(16, 3, 256, 256), (torch.rand(16, 1, 256, 256) > 0.7).float()

    def seg_step():
        loss = seg_loss(seg(x), y)
        seg_opt.zero_grad()
        loss.backward()
        seg_opt.step()

    g, d = Generator().train(), Discriminator().train()
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    lr, hr = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 256, 256)

    def sr_pretrain_step():
        loss = F.mse_loss(g(lr), hr)
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()

    def sr_gan_step():
        fake = g(lr)
        d_loss = discriminator_loss(d(hr), d(fake.detach()))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.mse_loss(fake, hr) + 1e-3 * adversarial_loss(d(fake))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "seg_effnet_b3_256_batch16": timed(seg_step, args.repeats),
        "sr_pretrain_16blocks_64to256_batch8": timed(sr_pretrain_step, args.repeats),
        "sr_gan_16blocks_64to256_batch8": timed(sr_gan_step, args.repeats),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
