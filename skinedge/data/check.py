"""Validate a whole dataset and report every problem, not just the first.

Used by ``skinedge data check``: decodes every image and mask, collects
counts, image size range, mask coverage statistics and a list of problems.
An item with an ``error`` is unusable; ``warning`` items are still read.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from skinedge.data.dataset import Dataset, Problem
from skinedge.errors import DataError


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    spec: str
    kind: str
    items: int = 0
    with_mask: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    sizes: list[tuple[int, int]] = field(default_factory=list)   # (width, height) of usable images
    coverage: list[float] = field(default_factory=list)          # lesion fraction per mask
    conversions: Counter = field(default_factory=Counter)        # note → count
    problems: list[Problem] = field(default_factory=list)

    @property
    def unusable(self) -> set[str]:
        return {p.item for p in self.problems if p.severity == "error" and p.item}

    @property
    def dataset_errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" and not p.item]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """((min w, min h), (max w, max h)) over usable images, by area."""
        if not self.sizes:
            return None
        by_area = sorted(self.sizes, key=lambda s: (s[0] * s[1], s))
        return by_area[0], by_area[-1]

    def coverage_stats(self) -> dict[str, float] | None:
        if not self.coverage:
            return None
        c = np.asarray(self.coverage)
        return {"min": float(c.min()), "mean": float(c.mean()), "median": float(np.median(c)),
                "max": float(c.max()), "empty": int((c == 0).sum()), "full": int((c == 1).sum())}


def _verify_hashes(ref, problems: list[Problem]) -> None:
    """Compare files with the sha256 a manifest recorded (synthetic datasets)."""
    for key, path in (("image_sha256", ref.image_path), ("mask_sha256", ref.mask_path)):
        expected = ref.meta.get(key)
        if expected and path is not None and path.is_file():
            if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
                problems.append(Problem(ref.id, f"{path.name} differs from the sha256 in "
                                        "manifest.json (file changed since generation)"))


def check_dataset(dataset: Dataset, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Decode every item of ``dataset`` and collect statistics and problems."""
    report = CheckReport(dataset.spec, dataset.kind, items=len(dataset))
    report.problems.extend(dataset.problems)
    for done, ref in enumerate(dataset.refs, start=1):
        if ref.split:
            report.splits[ref.split] = report.splits.get(ref.split, 0) + 1
        _verify_hashes(ref, report.problems)
        try:
            item = ref.load()
        except DataError as exc:
            message = str(exc).removeprefix(f"{ref.id}: ")
            report.problems.append(Problem(ref.id, message))
        else:
            report.sizes.append((item.image.shape[1], item.image.shape[0]))
            for note in item.notes:
                if "non-binary" in note:
                    report.problems.append(Problem(ref.id, note.removeprefix("mask: "), "warning"))
                else:
                    report.conversions[note] += 1
            if item.mask is not None:
                report.with_mask += 1
                report.coverage.append(float(item.mask.mean()))
        if progress:
            progress(done)
    return report


def format_report(report: CheckReport) -> list[str]:
    """Plain-text lines of a report, for the CLI and for logs."""
    lines = [f"dataset   {report.spec}  ({report.kind})"]
    parts = f"{report.items} items, {report.with_mask} with a readable mask"
    if report.splits:
        parts += "; official split " + ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items()))
    lines.append(f"items     {parts}")
    size_range = report.size_range()
    if size_range:
        (w0, h0), (w1, h1) = size_range
        lines.append(f"size      {w0}×{h0} … {w1}×{h1} (smallest … largest)")
    stats = report.coverage_stats()
    if stats:
        lines.append(f"coverage  lesion fraction min {stats['min']:.1%}  mean {stats['mean']:.1%}  "
                     f"median {stats['median']:.1%}  max {stats['max']:.1%}  "
                     f"(empty masks {stats['empty']}, full masks {stats['full']})")
    for note, n in sorted(report.conversions.items()):
        lines.append(f"converted {n} × {note}")
    errors = sum(p.severity == "error" for p in report.problems)
    warnings = len(report.problems) - errors
    if report.problems:
        lines.append(f"problems  {errors} error(s), {warnings} warning(s)")
        lines.extend(f"  {p}" for p in report.problems)
    else:
        lines.append("problems  none")
    verdict = (f"{len(report.unusable)} of {report.items} items unusable"
               if not report.ok else "OK: every item is usable")
    if report.dataset_errors:
        verdict = f"{verdict}; the dataset itself has {len(report.dataset_errors)} error(s)"
    lines.append(verdict)
    return lines
