"""SR generator and segmenter trained on real dermoscopy (the dev set), scored on its held-out part.

Reads the 96 real ISIC images of ``../shared/data/isic2017-val96`` (never copied into the repository: the
resized working copy goes to ``--work``, outside it), and:

1. makes the working copy at ``--hr-side`` px on the long side (Lanczos; masks nearest), because at the
   dev set's 1024 px the images are so smooth that bicubic ÷4 → ×4 already scores ~41 dB PSNR-Y: too
   little to learn from or to measure; 512 px is nearer what a dermatoscope camera delivers per lesion;
2. writes one seeded group split (70/15/15) of it: train (SR crops, segmenter), val (best checkpoint),
   test (the held-out images every number below comes from);
3. trains, with the CLI a user would type: the paper's SR generator (pretrain, L1), the same with the
   bicubic skip, and the EfficientNet-B3 U-Net segmenter; each under a wall-clock budget;
4. scores on the held-out images, LR = bicubic ÷4 of the HR image, inside the true lesion: PSNR-Y and
   SSIM-Y gain over bicubic, mean CIEDE2000 ΔE, and the ±8 px border band, for each generator without
   and with the data-consistency projection (``skinedge.fidelity``); and the segmenter's Dice, beside the
   Dice of a synthetic-only segmenter (``--synthetic-seg``, e.g. the demo's) on the same images;
5. exports the best pair as a models directory (``--out``) that ``skinedge enhance --models`` runs.

    python benchmarks/sr_real.py --work /tmp/sr-real --out /tmp/sr-real/models \
        [--sr-minutes 40] [--paper-minutes 15] [--seg-minutes 30] [--synthetic-seg demo-out/run/seg-best.pt]
        [--json benchmarks/results/sr-real.json]

Skips (exit 0, with the reason) when the dev set is absent. A finished training run in ``--work`` is
reused, not retrained (delete its folder to train again); the JSON says which runs were reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2017-val96"
IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SCALE = 4


def working_copy(src: Path, dst: Path, side: int) -> str:
    """The dev set resized to ``side`` px on the long side, in the same isic2018 layout; returns its spec."""
    (dst / IMAGES).mkdir(parents=True, exist_ok=True)
    (dst / MASKS).mkdir(parents=True, exist_ok=True)
    for image_path in sorted((src / IMAGES).glob("*.jpg")):
        out = dst / IMAGES / (image_path.stem + ".png")
        mask_out = dst / MASKS / f"{image_path.stem}_segmentation.png"
        if out.is_file() and mask_out.is_file():
            continue
        image = Image.open(image_path).convert("RGB")
        f = side / max(image.size)
        size = (round(image.size[0] * f) // SCALE * SCALE, round(image.size[1] * f) // SCALE * SCALE)
        image.resize(size, Image.LANCZOS).save(out)
        mask = Image.open(src / MASKS / f"{image_path.stem}_segmentation.png").convert("L")
        mask.resize(size, Image.NEAREST).save(mask_out)
    return f"isic2018:{dst}"


def skinedge(*argv: str) -> None:
    """Run one CLI command as a user would (its output streams through)."""
    command = [sys.executable, "-m", "skinedge.cli", *argv]
    print("$ skinedge " + " ".join(argv), flush=True)
    subprocess.run(command, check=True)


def train_sr(spec: str, split: Path, run: Path, minutes: float, skip: bool, epochs: int) -> bool:
    """Pretrain a 16-block generator (L1, bicubic degradation); False when a finished run was reused."""
    if (run / "sr-pretrain-best.pt").is_file() and (run / "finished").is_file():
        return False
    argv = ["train", "sr", "--data", spec, "--split", str(split), "--out", str(run), "--phase", "pretrain",
            "--blocks", "16", "--hr-size", "96", "--batch", "16", "--lr", "1e-3", "--schedule", "cosine",
            "--pixel-loss", "l1", "--degradation", "bicubic", "--epochs", str(epochs), "--val-limit", "10",
            "--max-minutes", str(minutes), "--device", "cpu"]
    skinedge(*argv, *(["--bicubic-skip"] if skip else []))
    (run / "finished").write_text(json.dumps({"argv": argv, "skip": skip}))
    return True


def train_seg(spec: str, split: Path, run: Path, minutes: float, epochs: int) -> bool:
    """Train the EfficientNet-B3 U-Net from random init at 128²; False when a finished run was reused."""
    if (run / "seg-best.pt").is_file() and (run / "finished").is_file():
        return False
    argv = ["train", "seg", "--data", spec, "--split", str(split), "--out", str(run), "--size", "128",
            "--batch", "8", "--lr", "1e-3", "--schedule", "cosine", "--epochs", str(epochs),
            "--bn-batches", "8", "--max-minutes", str(minutes), "--device", "cpu"]
    skinedge(*argv)
    (run / "finished").write_text(json.dumps({"argv": argv}))
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEV_SET)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="models directory of the best generator + the real segmenter")
    parser.add_argument("--hr-side", type=int, default=512)
    parser.add_argument("--sr-minutes", type=float, default=40.0)
    parser.add_argument("--paper-minutes", type=float, default=15.0)
    parser.add_argument("--seg-minutes", type=float, default=30.0)
    parser.add_argument("--sr-epochs", type=int, default=250, help="sets the cosine schedule's length")
    parser.add_argument("--seg-epochs", type=int, default=90, help="sets the cosine schedule's length")
    parser.add_argument("--only", choices=("prepare", "sr", "paper", "seg", "score"), action="append")
    parser.add_argument("--synthetic-seg", type=Path, help="a segmenter trained on generated data only")
    parser.add_argument("--iterations", type=int, default=3, help="projection iterations")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.data / IMAGES).is_dir():
        print(f"skipped: the real dev set is not at {args.data} (see ../shared/data/README.md)")
        return 0
    steps = set(args.only or ("prepare", "sr", "paper", "seg", "score"))
    args.work.mkdir(parents=True, exist_ok=True)
    spec = working_copy(args.data, args.work / f"isic-{args.hr_side}", args.hr_side)
    split = args.work / "split.json"
    if not split.is_file():
        skinedge("data", "split", spec, "--out", str(split), "--seed", "0")
    trained = {}
    if "sr" in steps:
        trained["sr-skip"] = train_sr(spec, split, args.work / "sr-skip", args.sr_minutes, True, args.sr_epochs)
    if "paper" in steps:
        trained["sr-paper"] = train_sr(spec, split, args.work / "sr-paper", args.paper_minutes, False,
                                       max(1, round(args.sr_epochs * args.paper_minutes / args.sr_minutes)))
    if "seg" in steps:
        trained["seg"] = train_seg(spec, split, args.work / "seg", args.seg_minutes, args.seg_epochs)
    if "score" not in steps:
        return 0
    from sr_real_score import score_and_export  # noqa: E402  (beside this file)

    started = time.perf_counter()
    result = score_and_export(args, spec, split)
    result["trained_here"] = trained  # False: a finished run in --work was reused
    result["score_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
