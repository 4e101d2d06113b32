"""The plain ``folder:`` layout and the ``synthetic:`` layout built on it.

``folder:PATH`` is ``PATH/images/<id>.<ext>`` with optional masks in
``PATH/masks/`` named ``<id>.png``, ``<id>_mask.png`` or ``<id>_segmentation.png``
(any image extension), and an optional ``PATH/groups.csv`` (columns ``id,group``)
that keeps a patient's images in one split. ``synthetic:PATH`` is a folder
written by ``skinedge data synth``: the same layout plus ``manifest.json``, whose
sha256 per file lets ``data check`` tell if a generated file was changed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from skinedge.data.dataset import Dataset, ItemRef, Problem, require_dir, sorted_refs
from skinedge.data.imageio import IMAGE_SUFFIXES
from skinedge.errors import DataError

MASK_SUFFIXES = ("", "_mask", "_segmentation", "_Segmentation")
MANIFEST = "manifest.json"
GENERATOR = "skinedge.data.synth"


def _groups(root: Path) -> dict[str, str]:
    path = root / "groups.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"id", "group"} <= set(rows[0]):
        raise DataError(f"{path}: needs columns id,group")
    return {row["id"].strip(): row["group"].strip() for row in rows}


def _mask_index(masks_dir: Path) -> dict[str, Path]:
    """Lower-cased mask stem → path, for matching masks to image ids."""
    if not masks_dir.is_dir():
        return {}
    return {p.stem.lower(): p for p in sorted(masks_dir.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES}


def read_folder(root: Path, spec: str, kind: str = "folder") -> Dataset:
    """Scan ``images/`` (+ ``masks/``); an image without a mask is an error when masks exist."""
    require_dir(root, "dataset")
    images_dir = root / "images"
    require_dir(images_dir, "images")
    masks = _mask_index(root / "masks")
    groups = _groups(root)
    problems: list[Problem] = []
    refs: list[ItemRef] = []
    used_masks: set[Path] = set()
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(Problem(path.name, "not an image file name (expected "
                                    f"{'/'.join(IMAGE_SUFFIXES)}): skipped", "warning"))
            continue
        item_id = path.stem
        mask = next((masks[key] for s in MASK_SUFFIXES
                     if (key := (item_id + s).lower()) in masks), None)
        if mask is None and masks:
            problems.append(Problem(item_id, f"missing mask masks/{item_id}.png"))
        if mask is not None:
            used_masks.add(mask)
        refs.append(ItemRef(item_id, path, mask, group=groups.get(item_id, item_id)))
    if not refs:
        raise DataError(f"no images in {images_dir} (expected files like "
                        f"images/case001.png; extensions {', '.join(IMAGE_SUFFIXES)})")
    for mask in sorted(set(masks.values()) - used_masks):
        problems.append(Problem(mask.name, "mask matches no image: skipped", "warning"))
    return Dataset(spec, kind, root, sorted_refs(refs, problems), bool(masks), problems)


def read_synthetic(root: Path, spec: str) -> Dataset:
    """A ``folder:`` dataset whose manifest says skinedge generated it."""
    require_dir(root, "synthetic dataset")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{root} has no {MANIFEST}: not made by `skinedge data synth` "
                        f"(read it as folder:{root} instead)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = {entry["id"]: entry for entry in manifest["items"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path}: not a valid synth manifest ({exc})") from None
    if manifest.get("generator") != GENERATOR:
        raise DataError(f"{manifest_path}: generator is {manifest.get('generator')!r}, "
                        f"expected {GENERATOR!r}")
    dataset = read_folder(root, spec, kind="synthetic")
    refs = []
    for ref in dataset.refs:
        entry = files.pop(ref.id, None)
        if entry is None:
            dataset.problems.append(Problem(ref.id, "image not listed in manifest.json", "warning"))
            refs.append(ref)
            continue
        meta = {"image_sha256": entry["image_sha256"], "mask_sha256": entry["mask_sha256"]}
        refs.append(ItemRef(ref.id, ref.image_path, ref.mask_path, ref.group, ref.split, meta))
    for missing in sorted(files):
        dataset.problems.append(Problem(missing, "listed in manifest.json but images/"
                                        f"{missing}.png is missing"))
    dataset.refs = refs
    return dataset
