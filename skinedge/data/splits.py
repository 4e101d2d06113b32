"""Seeded, group-aware train/val/test splits, written to a file.

The paper asks for patient-level 70/15/15 splits. Splitting by group (patient,
lesion or Derm7pt case) keeps one patient's images in one part; writing the
split to disk (ids, seed, strategy, no time stamps) makes it reproducible and
lets checkpoints record the sha256 of the exact split they were trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import skinedge
from skinedge.atomic import write_json_atomic
from skinedge.data.dataset import SPLITS, Dataset
from skinedge.errors import DataError

Strategy = Literal["auto", "official", "random"]
PAPER_RATIOS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class Split:
    """Ids per part plus how they were chosen."""

    spec: str
    strategy: str
    seed: int
    ratios: tuple[float, float, float]
    parts: dict[str, list[str]]

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "strategy": self.strategy,
            "seed": self.seed,
            "ratios": list(self.ratios),
            "counts": {name: len(ids) for name, ids in self.parts.items()},
            "skinedge_version": skinedge.__version__,
            "splits": self.parts,
        }


def _random_group_split(dataset: Dataset, seed: int,
                        ratios: tuple[float, float, float]) -> dict[str, list[str]]:
    """Shuffle groups with ``seed`` and fill train, then val, then test by image count."""
    groups: dict[str, list[str]] = {}
    for ref in dataset.refs:
        groups.setdefault(ref.group, []).append(ref.id)
    names = sorted(groups)
    if len(names) < 3:
        raise DataError(f"{dataset.spec}: {len(dataset)} item(s) in {len(names)} group(s) is too "
                        "small to split into train/val/test (need at least 3 groups)")
    order = np.random.default_rng(seed).permutation(len(names))
    total = len(dataset)
    bounds = np.cumsum(ratios) / sum(ratios) * total
    parts: dict[str, list[str]] = {name: [] for name in SPLITS}
    placed = 0
    for position, index in enumerate(order):
        remaining_groups = len(order) - position
        # Leave at least one group for each later part that is still empty.
        still_empty = [s for s in SPLITS[1:] if not parts[s]]
        part_index = int(np.searchsorted(bounds, placed, side="right"))
        part_index = min(part_index, 2)
        if remaining_groups <= len(still_empty) and SPLITS[part_index] not in still_empty:
            part_index = SPLITS.index(still_empty[0])
        ids = groups[names[index]]
        parts[SPLITS[part_index]].extend(ids)
        placed += len(ids)
    return {name: sorted(ids) for name, ids in parts.items()}


def make_split(dataset: Dataset, seed: int = 0, strategy: Strategy = "auto",
               ratios: tuple[float, float, float] = PAPER_RATIOS) -> Split:
    """Split ``dataset`` into train/val/test.

    Args:
        strategy: ``official`` uses the layout's own split (ISIC folders,
            Derm7pt index files); ``random`` makes a seeded group split with
            ``ratios``; ``auto`` takes the official one when the layout has all
            three parts, else random.
    """
    if len(ratios) != 3 or min(ratios) <= 0:
        raise DataError(f"split ratios must be three positive numbers, got {ratios}")
    official = dataset.official_splits()
    if strategy == "official" and official is None:
        raise DataError(f"{dataset.spec} has no official train/val/test split; "
                        "use --strategy random")
    if strategy in ("official", "auto") and official is not None:
        return Split(dataset.spec, "official", seed, tuple(ratios),
                     {k: sorted(v) for k, v in official.items()})
    if strategy not in ("auto", "random", "official"):
        raise DataError(f"unknown split strategy {strategy!r}; valid: auto, official, random")
    return Split(dataset.spec, "random", seed, tuple(ratios),
                 _random_group_split(dataset, seed, tuple(ratios)))


def write_split(split: Split, path: Path) -> str:
    """Write the split as JSON (atomically); return the file's sha256."""
    write_json_atomic(path, split.to_json())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_split(path: Path) -> Split:
    """Read a split file written by :func:`write_split`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        parts = {name: list(data["splits"][name]) for name in SPLITS}
        return Split(data["spec"], data["strategy"], int(data["seed"]),
                     tuple(data["ratios"]), parts)
    except FileNotFoundError:
        raise DataError(f"split file not found: {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a skinedge split file ({exc})") from None


def recorded_or_new_split(dataset: Dataset, recorded: dict | None) -> tuple[Split, str | None]:
    """The split a checkpoint recorded (``recorded`` = its ``data`` section) when it was made for
    ``dataset`` and the file is still there, with that file's path; else a new seeded split
    (seed 0) and None. Evaluation, export, calibration and pruning agree on this rule."""
    recorded = recorded or {}
    path = recorded.get("split_file")
    if path and recorded.get("spec") == dataset.spec and Path(path).is_file():
        return read_split(Path(path)), path
    return make_split(dataset, seed=0), None
