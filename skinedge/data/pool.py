"""``pool:FILE.json``: several datasets read as one, each item's id and group prefixed by its set's label.

``skinedge train all`` pools its ``--data`` specs this way and writes the pool file into its run folder, so every
later command (export, calibrate, eval) reads the same items through an ordinary spec. A pool's split is made per
set and joined (:func:`stratified_split`): the held-out part draws from every set, and no group spans two parts.

The file: ``{"sets": [{"label": "isic2017-val96", "spec": "isic2018:/data/isic2017-val96"}, ...]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from skinedge.data.dataset import Dataset, Problem
from skinedge.errors import DataError

SEPARATOR = ":"  # label:id (ids are file stems: none of the readers yields a ':')


def label_of(spec: str) -> str:
    """A short, file-name-safe label for a spec: its folder's name."""
    _, _, path = spec.partition(":")
    name = Path(path.rstrip("/")).name or "data"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def unique_labels(specs: list[str]) -> list[str]:
    """One label per spec; a repeated folder name gets ``-2``, ``-3``…"""
    labels: list[str] = []
    for spec in specs:
        base = label = label_of(spec)
        n = 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def pool_document(specs: list[str]) -> dict:
    """The pool file's content for ``specs`` (order kept)."""
    if not specs:
        raise DataError("a pool needs at least one --data spec")
    return {"sets": [{"label": label, "spec": spec} for label, spec in zip(unique_labels(specs), specs)]}


def read_pool_file(path: Path) -> list[dict]:
    try:
        sets = json.loads(Path(path).read_text(encoding="utf-8"))["sets"]
        if not sets or not all(isinstance(s.get("label"), str) and isinstance(s.get("spec"), str) for s in sets):
            raise ValueError("every set needs a label and a spec")
        return sets
    except FileNotFoundError:
        raise DataError(f"pool file not found: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a skinedge pool file ({exc})") from None


def read_pool(root: Path, spec: str) -> Dataset:
    """The pooled dataset of a pool file (``root`` is the file's path)."""
    from skinedge.data import open_dataset

    refs, problems, has_masks = [], [], False
    for entry in read_pool_file(root):
        if entry["spec"].startswith("pool:"):
            raise DataError(f"{root}: a pool cannot hold another pool ({entry['spec']})")
        part = open_dataset(entry["spec"])
        label = entry["label"]
        has_masks = has_masks or part.has_masks
        refs += [replace(ref, id=f"{label}{SEPARATOR}{ref.id}", group=f"{label}{SEPARATOR}{ref.group}",
                         meta={**ref.meta, "set": label}) for ref in part.refs]
        problems += [Problem(f"{label}{SEPARATOR}{p.item}" if p.item else label, p.message, p.severity)
                     for p in part.problems]
    return Dataset(spec, "pool", Path(root), refs, has_masks, problems)


def set_of(item_id: str) -> str:
    """The set label of a pooled id."""
    return item_id.split(SEPARATOR, 1)[0]


def stratified_split(dataset: Dataset, seed: int = 0, ratios: tuple[float, float, float] = (0.70, 0.15, 0.15)):
    """A seeded group split made within each set of a pool and joined, so every part draws from every set
    (a set too small to split goes whole to train, and says so in the strategy)."""
    from skinedge.data.splits import SPLITS, Split, make_split

    by_set: dict[str, list] = {}
    for ref in dataset.refs:
        by_set.setdefault(set_of(ref.id), []).append(ref)
    parts: dict[str, list[str]] = {name: [] for name in SPLITS}
    whole: list[str] = []
    for label, refs in by_set.items():
        part = Dataset(f"{dataset.spec}#{label}", dataset.kind, dataset.root, refs, dataset.has_masks)
        try:
            split = make_split(part, seed=seed, strategy="random", ratios=ratios)
        except DataError:
            parts["train"] += [r.id for r in refs]
            whole.append(label)
            continue
        for name in SPLITS:
            parts[name] += split.parts[name]
    strategy = "random by group, within each set" + (f" ({', '.join(whole)} too small: all train)" if whole else "")
    return Split(dataset.spec, strategy, seed, tuple(ratios), {k: sorted(v) for k, v in parts.items()})
