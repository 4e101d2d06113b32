"""How faithful ``skinedge enhance`` is on real dermoscopy, against plain bicubic, for each fidelity setting.

For each real image of the dev set (``../shared/data/isic2017-val96``; never copied into the repository):
HR = the image at ``--side`` px on the long side (Lanczos, cropped to a multiple of 4), LR = bicubic ÷4 of HR
(PIL, the protocol of ``--degradation bicubic``). The LR images are written to ``--work`` and run through the real
CLI, ``skinedge enhance LR… --models M --mode full`` (so the whole frame comes back ×4), once per setting:

- ``before``: the SR input with a black surround, no projection (what the runtime did before this change);
- ``surround``: the real surround, no projection (the halo fix alone);
- ``black_projected``: the black surround, projection with the generator's colour (the projection alone);
- ``project``: the real surround, projection with the generator's own colour;
- ``default``: the real surround, projection, colour from the camera (what ``enhance`` does by default).

Scores (``skinedge.metrics``), against HR, inside the true (expert) lesion mask: PSNR-Y and mean CIEDE2000 ΔE;
and PSNR-Y / ΔE in the ±8 px band around the true border. Plain bicubic of the same LR is the baseline.
Reported per setting: the mean and median over images of (ours − bicubic), and the mean residual the runtime
reported, and the Dice of the mask ``enhance`` wrote (the lesion dilated by the SR context) against the expert mask.

    python benchmarks/fidelity_real.py --models demo-out/models --work /tmp/fid [--limit 96] [--side 512]
        [--json benchmarks/results/fidelity-real-demo-models.json]

Skips (exit 0, with the reason) when the dev set is absent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge import metrics

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2017-val96"
IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SCALE = 4
SETTINGS = {
    "before": ["--surround", "black", "--projection", "0", "--chroma", "generator"],
    "surround": ["--surround", "frame", "--projection", "0", "--chroma", "generator"],
    "black_projected": ["--surround", "black", "--projection", "3", "--chroma", "generator"],
    "project": ["--surround", "frame", "--projection", "3", "--chroma", "generator"],
    "default": [],
}


def pairs(root: Path, side: int, limit: int | None, ids: list[str] | None):
    """(id, HR uint8 RGB, true mask) of the dev set at ``side`` px, HR cropped to a multiple of the scale."""
    paths = sorted((root / IMAGES).glob("*.jpg"))
    if ids:
        paths = [p for p in paths if p.stem in set(ids)]
    for path in paths[:limit]:
        image = Image.open(path).convert("RGB")
        f = side / max(image.size)
        size = (round(image.size[0] * f), round(image.size[1] * f))
        hr = np.asarray(image.resize(size, Image.LANCZOS))
        mask = np.asarray(Image.open(root / MASKS / f"{path.stem}_segmentation.png").convert("L")
                          .resize(size, Image.NEAREST)) > 127
        h, w = hr.shape[0] // SCALE * SCALE, hr.shape[1] // SCALE * SCALE
        yield path.stem, np.ascontiguousarray(hr[:h, :w]), mask[:h, :w]


def scores(out: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    row = metrics.sr_scores(out, hr, SCALE, mask)
    return {k: row[k] for k in ("lesion_psnr_y", "lesion_delta_e", "border_psnr_y", "border_delta_e")}


def enhance(lr_dir: Path, models: Path, out: Path, extra: list[str]) -> list[dict]:
    """Run ``skinedge enhance`` over every LR image; returns its per-image log rows (from stdout)."""
    command = [sys.executable, "-m", "skinedge.cli", "enhance", str(lr_dir), "--models", str(models), "--out",
               str(out), "--mode", "full", "--backend", "onnxruntime", "--precision", "fp32", "--overwrite", *extra]
    print("$ skinedge " + " ".join(command[3:]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"enhance failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return [line for line in done.stdout.splitlines() if line.startswith("ok ")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEV_SET)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--split", type=Path, help="score only this split file's test ids (held-out images)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.data / IMAGES).is_dir():
        print(f"skipped: the real dev set is not at {args.data} (see ../shared/data/README.md)")
        return 0
    ids = json.loads(args.split.read_text())["splits"]["test"] if args.split else None
    lr_dir = args.work / "lr"
    lr_dir.mkdir(parents=True, exist_ok=True)
    truth = {}
    for image_id, hr, mask in pairs(args.data, args.side, args.limit, ids):
        lr = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // SCALE, hr.shape[0] // SCALE), Image.BICUBIC))
        Image.fromarray(lr).save(lr_dir / f"{image_id}.png")
        truth[image_id] = (hr, mask, lr)
    baseline = {}
    for image_id, (hr, mask, lr) in truth.items():
        bic = np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.BICUBIC))
        baseline[image_id] = scores(bic, hr, mask)
    result = {"images": len(truth), "side": args.side, "models": str(args.models), "settings": {},
              "bicubic_mean": {k: statistics.fmean(r[k] for r in baseline.values()) for k in
                               next(iter(baseline.values()))}}
    for name in args.settings:
        started = time.perf_counter()
        out = args.work / name
        logs = enhance(lr_dir, args.models, out, SETTINGS[name])
        residuals = [float(line.split("consistency residual ")[1].split("/255")[0]) for line in logs
                     if "consistency residual " in line and "n/a" not in line.split("consistency residual ")[1]]
        gains, dice = {}, []
        for image_id, (hr, mask, _) in truth.items():
            enhanced = np.asarray(Image.open(out / f"{image_id}.enhanced.png").convert("RGB"))
            row = scores(enhanced, hr, mask)
            for k, v in row.items():
                gains.setdefault(k, []).append(v - baseline[image_id][k])
            predicted = np.asarray(Image.open(out / f"{image_id}.mask.png").convert("L")
                                   .resize(hr.shape[1::-1], Image.NEAREST)) > 127
            dice.append(metrics.segmentation_scores(mask, predicted)["dice"])
        result["settings"][name] = {
            "args": SETTINGS[name],
            "mean_minus_bicubic": {k: statistics.fmean(v) for k, v in gains.items()},
            "median_minus_bicubic": {k: statistics.median(v) for k, v in gains.items()},
            "worst_lesion_psnr_gain": min(gains["lesion_psnr_y"]),
            "mean_residual_255": statistics.fmean(residuals) if residuals else None,
            # enhance's .mask.png is the lesion dilated by the SR context (what SR saw), not the raw segmentation:
            # its Dice against the expert mask is lower than the segmenter's own
            "sr_mask_dice_on_lr": statistics.fmean(dice),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(name, json.dumps(result["settings"][name]["mean_minus_bicubic"]), flush=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
