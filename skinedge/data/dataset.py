"""One item type and one dataset type for every layout skinedge reads.

Readers only scan file names (cheap) and return :class:`ItemRef` records plus
the problems they found on the way; pixels are decoded when an item is loaded.
That keeps `data check` able to report every problem instead of stopping at the
first, and keeps a 2,594-image ISIC tree from being decoded just to count it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Mapping

import numpy as np

from skinedge.data.imageio import read_mask, read_rgb
from skinedge.errors import DataError

Severity = Literal["error", "warning"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Problem:
    """Something wrong with one item (or the dataset, when ``item`` is empty).

    ``error`` makes the item unusable; ``warning`` means it was read anyway
    (e.g. a file that matches no pattern was skipped, a grey mask binarised).
    """

    item: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.item}: " if self.item else ""
        return f"{self.severity:<7} {where}{self.message}"


@dataclass(frozen=True)
class Item:
    """A loaded sample.

    Attributes:
        id: unique within the dataset (e.g. ``ISIC_0000000``).
        image: H×W×3 uint8 RGB.
        mask: H×W bool (True = lesion), or None where the layout has no mask.
        group: patient/lesion key; splits never put one group in two parts.
        split: the layout's official split (``train``/``val``/``test``) or None.
        meta: layout-specific facts (diagnosis, ...), strings only.
        notes: conversions applied while reading (16-bit → 8-bit, ...).
    """

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    group: str
    split: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemRef:
    """Where an item's files are; :meth:`load` decodes them."""

    id: str
    image_path: Path
    mask_path: Path | None
    group: str
    split: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def load(self) -> Item:
        """Decode image and mask.

        Raises:
            DataError: unreadable image/mask or a mask whose size differs from
                the image; the message starts with the item id.
        """
        try:
            image, notes = read_rgb(self.image_path)
            mask = None
            if self.mask_path is not None:
                mask, mask_notes = read_mask(self.mask_path)
                notes = notes + [f"mask: {n}" for n in mask_notes]
                if mask.shape != image.shape[:2]:
                    raise DataError(
                        f"mask {self.mask_path.name} is {mask.shape[1]}×{mask.shape[0]} "
                        f"but image {self.image_path.name} is {image.shape[1]}×{image.shape[0]}"
                    )
        except DataError as exc:
            raise DataError(f"{self.id}: {exc}") from None
        return Item(self.id, image, mask, self.group, self.split, self.meta, tuple(notes))


@dataclass
class Dataset:
    """The items of one dataset and what scanning it found wrong.

    Attributes:
        spec: the spec it was opened with, e.g. ``isic2018:/data/isic``.
        kind: reader name (``isic2018``, ``ph2``, ``derm7pt``, ``folder``, ``synthetic``).
        root: the folder the spec points at.
        refs: items in a stable order (sorted by id).
        has_masks: whether the layout provides segmentation masks at all.
        problems: found while scanning names; loading may find more.
    """

    spec: str
    kind: str
    root: Path
    refs: list[ItemRef]
    has_masks: bool
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> Item:
        return self.refs[index].load()

    def __iter__(self) -> Iterator[Item]:
        return (ref.load() for ref in self.refs)

    @property
    def ids(self) -> list[str]:
        return [ref.id for ref in self.refs]

    def official_splits(self) -> dict[str, list[str]] | None:
        """The layout's own train/val/test ids, or None if it does not define all three."""
        parts: dict[str, list[str]] = {name: [] for name in SPLITS}
        for ref in self.refs:
            if ref.split not in parts:
                return None
            parts[ref.split].append(ref.id)
        return parts if all(parts.values()) else None

    def subset(self, ids: list[str]) -> "Dataset":
        """The same dataset restricted to ``ids`` (order of ``ids`` kept)."""
        by_id = {ref.id: ref for ref in self.refs}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(
                f"{len(missing)} id(s) not in {self.spec}, e.g. {missing[0]!r}: "
                "was the split file made for another dataset?"
            )
        return Dataset(self.spec, self.kind, self.root, [by_id[i] for i in ids],
                       self.has_masks, list(self.problems))


def sorted_refs(refs: list[ItemRef], problems: list[Problem]) -> list[ItemRef]:
    """Sort refs by id and report ids that occur twice (the later copy is dropped)."""
    seen: dict[str, ItemRef] = {}
    for ref in sorted(refs, key=lambda r: (r.id, str(r.image_path))):
        if ref.id in seen:
            problems.append(Problem(ref.id, f"duplicate id: {ref.image_path} and "
                                    f"{seen[ref.id].image_path}; the second is ignored", "warning"))
            continue
        seen[ref.id] = ref
    return list(seen.values())


def require_dir(path: Path, what: str) -> None:
    """Fail with one clear line when a dataset folder is missing or not a folder."""
    if not path.exists():
        raise DataError(f"{what} folder not found: {path}")
    if not path.is_dir():
        raise DataError(f"{what} path is not a folder: {path}")
