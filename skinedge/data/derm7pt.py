"""Derm7pt (seven-point checklist), as distributed: dermoscopic images only.

``release_v0/meta/meta.csv`` lists one case per row (``case_num``, ``diagnosis``,
``derm`` = image path under ``release_v0/images/``); ``meta/{train,valid,test}_indexes.csv``
(column ``indexes``) give the official split as row positions in meta.csv.
Derm7pt has NO segmentation masks: items are image-only (SR training and
segmentation inference).
"""

from __future__ import annotations

import csv
from pathlib import Path

from skinedge.data.dataset import Dataset, ItemRef, Problem, require_dir, sorted_refs
from skinedge.errors import DataError

SPLIT_FILES = {"train": "train_indexes.csv", "val": "valid_indexes.csv", "test": "test_indexes.csv"}


def _release_dir(root: Path) -> Path:
    for candidate in (root, root / "release_v0"):
        if (candidate / "meta" / "meta.csv").is_file():
            return candidate
    raise DataError(f"no Derm7pt meta/meta.csv under {root} (expected release_v0/meta/meta.csv)")


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None


def _official_split(meta_dir: Path, n_rows: int, problems: list[Problem]) -> dict[int, str]:
    """Row position → split, from the three index files (absent files: no split)."""
    split_of: dict[int, str] = {}
    for split, name in SPLIT_FILES.items():
        path = meta_dir / name
        if not path.is_file():
            problems.append(Problem("", f"split file meta/{name} missing: no official split",
                                    "warning"))
            return {}
        for row in _read_csv(path):
            value = (row.get("indexes") or "").strip()
            if not value.isdigit() or int(value) >= n_rows:
                problems.append(Problem("", f"meta/{name}: bad index {value!r}", "warning"))
                continue
            split_of[int(value)] = split
    return split_of


def read_derm7pt(root: Path, spec: str) -> Dataset:
    """Scan a Derm7pt release; a row whose image file is missing is an error."""
    require_dir(root, "Derm7pt dataset")
    release = _release_dir(root)
    rows = _read_csv(release / "meta" / "meta.csv")
    if rows and not {"case_num", "derm"} <= set(rows[0]):
        raise DataError(f"{release / 'meta' / 'meta.csv'}: needs columns case_num and derm, "
                        f"found {', '.join(rows[0])}")
    problems: list[Problem] = []
    split_of = _official_split(release / "meta", len(rows), problems)
    refs: list[ItemRef] = []
    for position, row in enumerate(rows):
        rel = row["derm"].strip()
        item_id = Path(rel).stem
        image = release / "images" / rel
        if not image.is_file():
            problems.append(Problem(item_id or f"row {position}", f"missing image images/{rel}"))
            continue
        meta = {"diagnosis": row.get("diagnosis", "").strip(), "case_num": row["case_num"].strip()}
        refs.append(ItemRef(item_id, image, None, group=f"case{row['case_num'].strip()}",
                            split=split_of.get(position), meta=meta))
    return Dataset(spec, "derm7pt", root, sorted_refs(refs, problems), False, problems)
