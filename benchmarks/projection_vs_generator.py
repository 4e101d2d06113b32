"""Does the projection ever lower the trained generator's lesion PSNR-Y? Settings of the noise-aware projection,
scored per photo against the generator alone, on both LR protocols.

Issue 20 asks that the projection "never lower the shown output's PSNR against the generator's". On camera LR
(blur + noise + JPEG) the LR is not ``down(HR)``: fitting it puts back the camera's blur and noise, which the
generator was trained to remove. This script scores, for the validation whole photos of a ``train all`` run
(``MODELS/train/split.json``; never the held-out part), the generator ``G`` (its checkpoint, FP32 torch) and ``G``
projected under each setting of (STOP, THRESHOLD) — the discrepancy stop and the soft threshold, in units of the
LR's estimated noise floor — and prints per protocol: mean gain over G, the number of photos below G, and the mean
lesion ΔE00. Nothing from the data set is written; only numbers.

    python benchmarks/projection_vs_generator.py MODELS [--limit 40] [--part val] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from skinedge import metrics
from skinedge.data import open_dataset
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade, fit_long_side
from skinedge.data.splits import read_split
from skinedge.models.load import load_generator
from skinedge.runtime.pipeline import projection
from skinedge.runtime.pipeline.projection import Fidelity, project_image
from skinedge.train.samples import to_unit

PROTOCOLS = {"a": Degradation.bicubic_only(4), "b": Degradation(scale=4)}
SETTINGS = {  # name: (STOP, THRESHOLD); "none" is G with the camera's chroma only
    "stop1-t1 (today)": (1.0, 1.0),
    "stop0-t2": (0.0, 2.0),
    "stop0-t3": (0.0, 3.0),
    "stop2-t1": (2.0, 1.0),
    "stop2-t2": (2.0, 2.0),
    "stop3-t2": (3.0, 2.0),
    "stop3-t3": (3.0, 3.0),
}


def photos(models: Path, part: str, limit: int):
    """(id, HR, mask) of the run's whole photos (non-square) of ``part``, at the SR cache's scale (512 px)."""
    work = models / "train"
    split = read_split(work / "split.json")
    dataset = open_dataset(f"pool:{(work / 'pool.json').resolve()}").subset(split.parts[part])
    side = json.loads((work / "fingerprint.json").read_text())["plan"]["sr_side"]
    for item in dataset:
        if item.mask is None or item.image.shape[0] == item.image.shape[1] or item.mask.mean() < 0.01:
            continue
        hr, mask = fit_long_side(item.image, item.mask, side, 4)
        yield item.id, hr, mask
        limit -= 1
        if limit <= 0:
            return


def lesion(out: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    kw = {"border": 4, "y_channel": True, "mask": mask}
    return metrics.psnr(out, hr, **kw), metrics.mean_delta_e(out, hr, mask, border=4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path)
    ap.add_argument("--part", default="val")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ckpt = args.models / "train" / "sr-pretrain-best.pt"
    if not ckpt.is_file():
        print(f"skipped: {ckpt} is missing (a `train all` run's folder is needed)")
        return 0
    generator, _ = load_generator(ckpt)
    rows = []
    for k, (item_id, hr, mask) in enumerate(photos(args.models, args.part, args.limit)):
        for name, how in PROTOCOLS.items():
            lr = degrade(hr, how, seed=k)
            with torch.no_grad():  # the float output, projected as it leaves the network (one rounding)
                raw = generator(to_unit(lr[None])).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            g = (raw * 255 + 0.5).astype(np.uint8)
            row = {"id": item_id, "protocol": name}
            row["g"], row["g_de"] = lesion(g, hr, mask)
            row["bicubic"], row["bicubic_de"] = lesion(bicubic_upscale(lr, 4), hr, mask)
            for setting, (stop, threshold) in {"chroma only": (0, 0), **SETTINGS}.items():
                projection.STOP, projection.THRESHOLD = stop, threshold
                fidelity = Fidelity(iterations=0 if setting == "chroma only" else 3)
                out = (project_image(raw, lr / np.float32(255), fidelity) * 255 + 0.5)
                row[setting], row[setting + "_de"] = lesion(out.clip(0, 255).astype(np.uint8), hr, mask)
            rows.append(row)
        print(f"{k + 1} photos", end="\r", file=sys.stderr)
    summary = {}
    for name in PROTOCOLS:
        mine = [r for r in rows if r["protocol"] == name]
        if not mine:
            continue
        mean = lambda key: statistics.mean(r[key] for r in mine)  # noqa: E731
        print(f"\nprotocol ({name}), {len(mine)} photos: G − bicubic {mean('g') - mean('bicubic'):+.3f} dB, "
              f"ΔE00 G {mean('g_de'):.3f} / bicubic {mean('bicubic_de'):.3f}")
        print(f"  {'setting':<18} {'vs G mean':>9} {'median':>7} {'below G':>8} {'vs bicubic':>10} {'ΔE00':>6}")
        for setting in ("chroma only", *SETTINGS):
            d = [r[setting] - r["g"] for r in mine]
            s = {"vs_g_mean": statistics.mean(d), "vs_g_median": statistics.median(d),
                 "below_g": sum(x < -0.005 for x in d), "vs_bicubic": mean(setting) - mean("bicubic"),
                 "delta_e": mean(setting + "_de")}
            summary[f"{name}/{setting}"] = s
            print(f"  {setting:<18} {s['vs_g_mean']:+9.3f} {s['vs_g_median']:+7.3f} {s['below_g']:>4}/{len(mine):<3} "
                  f"{s['vs_bicubic']:+10.3f} {s['delta_e']:6.3f}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "photos": len(rows) // 2}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
