"""Does a larger generator win back more of camera LR? ``train all``'s SR stage at another size, on a run's split.

The camera validation gain of the shipped 16-block, 64-feature generator plateaus at +0.09–0.11 dB whatever its
budget (docs/models.md). This trains the same stage (same cache, crops, camera/clean mix, plane, weight average,
time-cosine schedule) with ``--blocks`` / ``--features`` / ``--lr`` for ``--minutes`` on the split of the ``train
all`` run in MODELS, then scores the best checkpoint and MODELS' own generator checkpoint alone on the same
validation whole photos as ``camera_headroom.py`` (never the held-out part), both LR protocols: lesion PSNR-Y gain
over bicubic, mean (median). The decoded cache is built in ``--cache`` unless it is there already. Time it with
nothing else running.

    python benchmarks/sr_capacity.py MODELS --out DIR [--blocks 32] [--features 96] [--lr 2e-4] [--minutes 80]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from camera_headroom import lesion_psnr_y, u8, validation_photos  # beside this file
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade
from skinedge.data.splits import read_split
from skinedge.models.load import load_generator
from skinedge.runtime.pipeline.camera_plane import with_plane
from skinedge.train.all.cache import Cache, build_cache
from skinedge.train.all.fingerprint import Plan
from skinedge.train.all.nets import StageRun, train_generator

PROTOCOLS = {"clean": (Degradation.bicubic_only(4), 0.0), "camera": (Degradation(), 1.0)}


def score(checkpoint: Path, photos) -> dict[str, dict[str, float]]:
    """The generator alone (plane set to the true protocol) on each photo: gain over bicubic, mean and median."""
    generator, _ = load_generator(checkpoint, "cpu")
    gains: dict[str, list[float]] = {name: [] for name in PROTOCOLS}
    with torch.inference_mode():
        for seed, hr, mask in photos:
            for name, (how, plane) in PROTOCOLS.items():
                lr = degrade(hr, how, seed=seed)
                x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / np.float32(255)
                if generator.in_channels == 4:
                    x = with_plane(x, plane)
                out = u8(generator(torch.from_numpy(x)).numpy())
                gains[name].append(lesion_psnr_y(out, hr, mask) - lesion_psnr_y(bicubic_upscale(lr, 4), hr, mask))
    return {name: {"mean": statistics.fmean(g), "median": statistics.median(g), "photos": len(g)}
            for name, g in gains.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, help="a train all output (its train/ folder holds split, pool, plan)")
    ap.add_argument("--out", type=Path, required=True, help="where the probe's checkpoints and log go")
    ap.add_argument("--cache", type=Path, help="decoded cache (default: OUT/cache)")
    ap.add_argument("--blocks", type=int, default=32)
    ap.add_argument("--features", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--minutes", type=float, default=80.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = args.models / "train"
    for name in ("fingerprint.json", "split.json", "pool.json", "sr-pretrain-best.pt"):
        if not (train / name).is_file():
            print(f"{train / name} is missing: MODELS must be a train all output", file=sys.stderr)
            return 1
    plan = Plan(**json.loads((train / "fingerprint.json").read_text())["plan"])
    split = read_split(train / "split.json")
    spec = f"pool:{train / 'pool.json'}"
    folder = args.cache or args.out / "cache"
    if not (folder / "index.json").is_file():
        build_cache(spec, split.parts["train"] + split.parts["val"], folder, plan.seg_size, plan.sr_side)
    cache = Cache(folder)
    args.out.mkdir(parents=True, exist_ok=True)
    run = StageRun(args.out, folder, cache.usable(split.parts["train"]), cache.usable(split.parts["val"]), plan,
                   args.minutes, torch.device("cpu"), {}, 0, 0, print)
    start = time.monotonic()
    result = train_generator(run, args.blocks, args.features, args.lr)
    minutes = (time.monotonic() - start) / 60
    photos = list(validation_photos(args.models))
    rows = {f"{args.blocks} blocks × {args.features}, {result['steps']} steps, {minutes:.1f} min":
            score(args.out / "sr-pretrain-best.pt", photos),
            f"MODELS' generator ({args.models.name})": score(train / "sr-pretrain-best.pt", photos)}
    print("validation whole photos, the generator alone; lesion PSNR-Y gain over bicubic:")
    for name, row in rows.items():
        print(f"  {name:44s} " + "  ".join(f"{p} {r['mean']:+.3f} (median {r['median']:+.3f}, n={r['photos']})"
                                             for p, r in row.items()))
    (args.out / "capacity.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                        "steps": result["steps"], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
