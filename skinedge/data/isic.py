"""ISIC 2016/2017/2018 Task 1 (lesion segmentation), as distributed.

2018: ``ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_0000000.jpg`` and
``ISIC2018_Task1_{Training,Validation,Test}_GroundTruth/ISIC_0000000_segmentation.png``.
2016/2017 name folders ``..._Data``/``..._Part1_GroundTruth`` and masks
``_Segmentation.png``. The reader classifies the folders under the root by
name, so any of these unpack locations work.
"""

from __future__ import annotations

import re
from pathlib import Path

from skinedge.data.dataset import Dataset, ItemRef, Problem, require_dir, sorted_refs
from skinedge.errors import DataError

IMAGE_RE = re.compile(r"^(ISIC_\d{7})\.(jpe?g|png)$", re.IGNORECASE)
MASK_RE = re.compile(r"^(ISIC_\d{7})_segmentation\.png$", re.IGNORECASE)
# Files the archives ship beside the data; not worth a warning.
KNOWN_EXTRAS = re.compile(r"(^ATTRIBUTION\.txt$|^LICENSE\.txt$|_superpixels\.png$|\.csv$|^\.)",
                          re.IGNORECASE)
SPLIT_WORDS = (("validation", "val"), ("training", "train"), ("test", "test"))


def _split_of(name: str) -> str | None:
    lower = name.lower()
    for word, split in SPLIT_WORDS:
        if word in lower:
            return split
    return None


def _classify(folder: Path) -> tuple[str, str | None] | None:
    """('gt'|'input', split) for an ISIC folder name, None for anything else."""
    lower = folder.name.lower()
    if "isic" not in lower:
        return None
    if "groundtruth" in lower or "ground_truth" in lower:
        return "gt", _split_of(lower)
    if "input" in lower or "data" in lower or "images" in lower:
        return "input", _split_of(lower)
    return None


def _scan(folder: Path, pattern: re.Pattern[str], what: str,
          problems: list[Problem]) -> dict[str, Path]:
    """Map ISIC id → file for files that match ``pattern``; warn about the others."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match:
            found[match.group(1).upper()] = path
        elif not KNOWN_EXTRAS.search(path.name) and not path.is_dir():
            problems.append(Problem(path.name, f"file name matches no ISIC {what} pattern "
                                    f"in {folder.name}/: skipped", "warning"))
    return found


def read_isic(root: Path, spec: str) -> Dataset:
    """Scan an ISIC Task 1 tree; missing masks and stray files become problems."""
    require_dir(root, "ISIC dataset")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    inputs: dict[str | None, list[Path]] = {}
    truths: dict[str | None, list[Path]] = {}
    for folder in candidates:
        kind = _classify(folder)
        if kind:
            (truths if kind[0] == "gt" else inputs).setdefault(kind[1], []).append(folder)
    if not inputs:
        raise DataError(f"no ISIC input folder under {root} (expected e.g. "
                        "ISIC2018_Task1-2_Training_Input/ holding ISIC_0000000.jpg)")

    problems: list[Problem] = []
    refs: list[ItemRef] = []
    for split, folders in sorted(inputs.items(), key=lambda kv: str(kv[0])):
        images: dict[str, Path] = {}
        for folder in folders:
            images.update(_scan(folder, IMAGE_RE, "image", problems))
        masks: dict[str, Path] = {}
        for folder in truths.get(split, []):
            masks.update(_scan(folder, MASK_RE, "mask", problems))
        if not images:
            problems.append(Problem("", f"no ISIC images in {', '.join(f.name for f in folders)}"))
        has_truth = split in truths
        for image_id, path in images.items():
            mask = masks.get(image_id)
            if mask is None and has_truth:
                problems.append(Problem(image_id, f"missing mask {image_id}_segmentation.png in "
                                        f"{truths[split][0].name}/"))
            refs.append(ItemRef(image_id, path, mask, group=image_id, split=split))
        for image_id in sorted(set(masks) - set(images)):
            problems.append(Problem(image_id, f"mask {masks[image_id].name} has no image: "
                                    "skipped", "warning"))
    has_masks = bool(truths)
    if not has_masks:
        problems.append(Problem("", "no ground-truth folders: items have no masks "
                                "(usable for SR and segmentation inference only)", "warning"))
    return Dataset(spec, "isic2018", root, sorted_refs(refs, problems), has_masks, problems)
