"""SR convergence benchmark: the paper's generator, pretrain phase, on generated data, on this CPU.

Question: within a fixed wall-time budget (<= 60 min), does the 16-block SRResNet
beat bicubic by >= 0.5 dB PSNR-Y (border 4) inside the lesion on held-out images?
Records the PSNR-vs-step curve (validation crops) and the held-out result.

    python benchmarks/sr_convergence.py --minutes 40 --tag paper
    python benchmarks/sr_convergence.py --minutes 15 --bicubic-skip --tag bicubic-skip
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from plot import line_plot  # noqa: E402

from skinedge import metrics  # noqa: E402
from skinedge.data import open_dataset  # noqa: E402
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade  # noqa: E402
from skinedge.data.generate import write_synthetic  # noqa: E402
from skinedge.data.splits import make_split, write_split  # noqa: E402
from skinedge.models.load import load_generator  # noqa: E402
from skinedge.train.sr import SRConfig, degradation_of, super_resolve, train_sr  # noqa: E402


def held_out(generator_path: Path, dataset, ids: list[str], how: Degradation) -> dict:
    """Whole test images: G(LR) and bicubic(LR) vs HR, PSNR-Y border 4, whole and inside the lesion."""
    generator, _ = load_generator(generator_path)
    scale = how.scale
    rows = []
    for index, item in enumerate(dataset.subset(ids)):
        lr = degrade(item.image, how, seed=index)
        sr, bic = super_resolve(generator, lr[None], "cpu")[0], bicubic_upscale(lr, scale)
        baseline = metrics.sr_scores(bic, item.image, scale, item.mask)
        rows.append({**metrics.sr_scores(sr, item.image, scale, item.mask),
                     **{f"bicubic_{k}": v for k, v in baseline.items()}})
    return metrics.mean_scores(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--tag", default="paper")
    ap.add_argument("--work", type=Path, default=Path("/tmp/skinedge-sr-bench"))
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--hr-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="cosine")
    ap.add_argument("--pixel-loss", default="l1")
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--bicubic-skip", action="store_true")
    ap.add_argument("--degradation", default="default", help="default (blur+noise+JPEG) | bicubic")
    ap.add_argument("--test-images", type=int, default=60)
    args = ap.parse_args()

    data = args.work / "data"
    if not (data / "manifest.json").is_file():
        write_synthetic(data, args.count, args.size, seed=2026)
    spec = f"synthetic:{data}"
    dataset = open_dataset(spec)
    split_file = args.work / "split.json"
    write_split(make_split(dataset, seed=0), split_file)
    base = dict(data=spec, split=split_file, phase="pretrain", blocks=args.blocks, hr_size=args.hr_size,
                batch=args.batch, lr=args.lr, pixel_loss=args.pixel_loss, bicubic_skip=args.bicubic_skip,
                degradation=args.degradation,
                device="cpu", val_limit=24, epochs=10_000)
    probe = args.work / f"probe-{args.tag}"
    shutil.rmtree(probe, ignore_errors=True)
    t = time.perf_counter()
    train_sr(SRConfig(out=probe, max_steps=12, **base))
    per_step = (time.perf_counter() - t) / 12
    steps = int(args.minutes * 60 / per_step * 0.85)   # leave room for validation
    run = args.work / f"run-{args.tag}"
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    train_sr(SRConfig(out=run, max_steps=steps, schedule=args.schedule, **base))
    train_minutes = (time.perf_counter() - started) / 60
    log = [json.loads(line) for line in (run / "sr-pretrain-log.jsonl").read_text().splitlines()]
    test_ids = make_split(dataset, seed=0).parts["test"][: args.test_images]
    result = held_out(run / "sr-pretrain-best.pt", dataset, test_ids, degradation_of(args.degradation, 4))
    gain = result["lesion_psnr_y"] - result["bicubic_lesion_psnr_y"]
    summary = {"tag": args.tag, "args": {k: str(v) for k, v in vars(args).items()},
               "seconds_per_step_probe": round(per_step, 3), "steps": steps,
               "train_minutes": round(train_minutes, 1), "held_out_images": len(test_ids),
               "held_out": result, "lesion_gain_db": gain, "target_met": gain >= 0.5,
               "curve": [(r["step"], r["val"].get("lesion_psnr_y"), r["val"].get("bicubic_lesion_psnr_y"),
                          r["val"].get("psnr_y"), r["val"].get("bicubic_psnr_y")) for r in log]}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"sr_convergence-{args.tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    line_plot({"G, inside lesion": [(c[0], c[1]) for c in summary["curve"]],
               "bicubic, inside lesion": [(c[0], c[2]) for c in summary["curve"]],
               "G, whole crop": [(c[0], c[3]) for c in summary["curve"]],
               "bicubic, whole crop": [(c[0], c[4]) for c in summary["curve"]]},
              args.results / f"sr_convergence-{args.tag}.png",
              f"SR pretrain ({args.tag}): validation PSNR-Y (border 4) vs step", "step", "PSNR-Y dB")
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
