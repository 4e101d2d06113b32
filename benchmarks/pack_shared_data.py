"""A copy of the three shared dev sets small enough to travel to a lent GPU machine (the device tool sends the
checkout only, 64 MiB in all): whole photos Lanczos-reduced to 512 px on the long side (the scale `train all`
keeps the SR truth at) and saved as JPEG q95; the 512-px crops byte for byte; masks nearest-neighbour, 8-bit PNG.
About 58 MB. The copy goes into an ignored folder (default `.gpu/data`, listed in `.git/info/exclude`): never
commit it (../shared/data/README.md).

    python benchmarks/pack_shared_data.py [--src ../shared/data] [--dst .gpu/data]
    then, on the device: bash benchmarks/gpu_train_all.sh .gpu/data   (carry: [".gpu"])
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SETS = ("isic2017-val96", "isic2017-dev290", "isic2018-crop512-dev1561")
IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


def pack(src: Path, dst: Path, side: int = 512) -> None:
    for name in SETS:
        for sub in (IMAGES, MASKS):
            (dst / name / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name / "MANIFEST.tsv", dst / name / "MANIFEST.tsv")
        for photo in sorted((src / name / IMAGES).glob("*.jpg")):
            mask = src / name / MASKS / f"{photo.stem}_segmentation.png"
            if "crop512" in name:
                shutil.copy(photo, dst / name / IMAGES / photo.name)
                shutil.copy(mask, dst / name / MASKS / mask.name)
                continue
            image = Image.open(photo).convert("RGB")
            ratio = min(1.0, side / max(image.size))
            size = (round(image.width * ratio), round(image.height * ratio))
            image.resize(size, Image.LANCZOS).save(dst / name / IMAGES / photo.name, "JPEG", quality=95)
            Image.open(mask).convert("L").resize(size, Image.NEAREST).save(dst / name / MASKS / mask.name,
                                                                           optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--dst", type=Path, default=ROOT / ".gpu" / "data")
    args = ap.parse_args()
    if not all((args.src / name).is_dir() for name in SETS):
        print(f"skipped: {args.src} does not hold {', '.join(SETS)}")
        return 0
    pack(args.src, args.dst)
    size = sum(f.stat().st_size for f in args.dst.rglob("*") if f.is_file())
    print(f"{args.dst}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
