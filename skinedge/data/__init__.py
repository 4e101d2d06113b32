"""Datasets: readers for the distributed layouts, splits, checks, generated data.

Open any dataset with a spec ``KIND:PATH``::

    from skinedge.data import open_dataset
    ds = open_dataset("isic2018:/data/isic2018")
    item = ds[0]          # Item(id, image uint8 RGB, mask bool | None, group, ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from skinedge.data.dataset import Dataset, Item, ItemRef, Problem
from skinedge.data.derm7pt import read_derm7pt
from skinedge.data.folder import read_folder, read_synthetic
from skinedge.data.isic import read_isic
from skinedge.data.ph2 import read_ph2
from skinedge.data.pool import read_pool
from skinedge.errors import DataError

READERS: dict[str, Callable[[Path, str], Dataset]] = {
    "isic2018": read_isic,
    "ph2": read_ph2,
    "derm7pt": read_derm7pt,
    "folder": read_folder,
    "synthetic": read_synthetic,
    "pool": read_pool,  # several specs as one (written by `train all`)
}

__all__ = ["Dataset", "Item", "ItemRef", "Problem", "READERS", "open_dataset", "parse_spec"]


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``KIND:PATH`` and check KIND; the error lists the valid kinds."""
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise DataError(f"dataset spec {spec!r} must be KIND:PATH with KIND one of "
                        f"{', '.join(READERS)} (e.g. folder:{spec or 'data/'})")
    if kind not in READERS:
        raise DataError(f"unknown dataset kind {kind!r} in {spec!r}; valid kinds: "
                        f"{', '.join(READERS)}")
    return kind, Path(path).expanduser()


def open_dataset(spec: str) -> Dataset:
    """Scan the dataset named by ``spec`` (no pixels are decoded yet)."""
    kind, root = parse_spec(spec)
    return READERS[kind](root, spec)
