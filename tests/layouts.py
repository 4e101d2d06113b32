"""Build dataset trees shaped exactly like the distributed ISIC/PH2/Derm7pt archives.

The pixels come from the synthetic generator, so every tree has real, readable
images whose masks are known; tests can then check that the reader paired each
image with its own mask.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge.data.synth import render_sample

SEED = 7


def sample(index: int, size: int = 64):
    return render_sample(size, SEED, index)


def save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def mask_u8(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def make_isic2018(root: Path, counts=(6, 2, 3), mask_word: str = "segmentation") -> dict[str, int]:
    """ISIC 2018 Task 1 layout; returns image id number → generator index."""
    folders = {"Training": counts[0], "Validation": counts[1], "Test": counts[2]}
    index_of: dict[str, int] = {}
    n = 0
    for split, count in folders.items():
        inp = root / f"ISIC2018_Task1-2_{split}_Input"
        gt = root / f"ISIC2018_Task1_{split}_GroundTruth"
        inp.mkdir(parents=True)
        gt.mkdir(parents=True)
        (gt / "ATTRIBUTION.txt").write_text("CC-0\n")
        (gt / "LICENSE.txt").write_text("CC-0\n")
        for _ in range(count):
            s = sample(n)
            image_id = f"ISIC_{n:07d}"
            save(inp / f"{image_id}.jpg", s.image, "JPEG")
            save(gt / f"{image_id}_{mask_word}.png", mask_u8(s.mask))
            index_of[image_id] = n
            n += 1
    return index_of


def make_isic2017(root: Path, count: int = 4) -> dict[str, int]:
    """ISIC 2017 training layout: ``_Data`` folder, ``_Segmentation.png`` masks, superpixels."""
    inp = root / "ISIC-2017_Training_Data"
    gt = root / "ISIC-2017_Training_Part1_GroundTruth"
    index_of = {}
    for n in range(count):
        s = sample(100 + n)
        image_id = f"ISIC_{n:07d}"
        save(inp / f"{image_id}.jpg", s.image, "JPEG")
        save(inp / f"{image_id}_superpixels.png", s.image)
        save(gt / f"{image_id}_Segmentation.png", mask_u8(s.mask))
        index_of[image_id] = 100 + n
    (inp / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age\n")
    return index_of


def make_ph2(root: Path, count: int = 5) -> dict[str, int]:
    """PH2Dataset/PH2 Dataset images/IMDxxx/... with BMP files and PH2_dataset.txt."""
    images = root / "PH2Dataset" / "PH2 Dataset images"
    index_of = {}
    rows = ["|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry ||"]
    for n in range(count):
        s = sample(200 + n, size=72)
        cid = f"IMD{n + 3:03d}"
        save(images / cid / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp", s.image, "BMP")
        save(images / cid / f"{cid}_lesion" / f"{cid}_lesion.bmp", mask_u8(s.mask), "BMP")
        save(images / cid / f"{cid}_roi" / f"{cid}_R1_Label4.bmp", mask_u8(s.mask), "BMP")
        rows.append(f"|| {cid} ||  || {n % 3} || 0 ||")
        index_of[cid] = 200 + n
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("\n".join(rows) + "\n")
    return index_of


def make_derm7pt(root: Path, count: int = 9) -> dict[str, int]:
    """release_v0/images/<dx>/<file>.jpg + meta/meta.csv + official split index files."""
    release = root / "release_v0"
    index_of = {}
    rows = []
    for n in range(count):
        s = sample(300 + n)
        folder = ("NEL", "Aal", "Fbl")[n % 3]
        rel = f"{folder}/{folder}{n:03d}.jpg"
        save(release / "images" / rel, s.image, "JPEG")
        # Two images of one case: case numbers repeat, like clinic + derm pairs of one patient.
        rows.append({"case_num": str(n // 2 + 1), "diagnosis": "nevus", "clinic": rel, "derm": rel})
        index_of[Path(rel).stem] = 300 + n
    meta = release / "meta"
    meta.mkdir(parents=True)
    with (meta / "meta.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case_num", "diagnosis", "clinic", "derm"])
        writer.writeheader()
        writer.writerows(rows)
    parts = {"train": range(0, count - 4), "valid": range(count - 4, count - 2),
             "test": range(count - 2, count)}
    for name, indexes in parts.items():
        (meta / f"{name}_indexes.csv").write_text("indexes\n" + "".join(f"{i}\n" for i in indexes))
    return index_of
