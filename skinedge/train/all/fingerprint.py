"""The data's fingerprint and the settings it implies (nnU-Net's idea: fixed rules from measured facts).

Facts per set come from file headers (image sizes) and the masks (lesion fractions); no image is decoded here.
Every setting the plan picks carries the reason it was picked, and both go into the run's log and its files.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from skinedge.data.dataset import Dataset
from skinedge.data.degrade import CAMERA_SIDE
from skinedge.data.imageio import read_mask
from skinedge.data.pool import set_of
from skinedge.errors import DataError

SR_SIDE_MAX = CAMERA_SIDE  # the scale of a dermatoscope camera's frame (640×480 class): HR is kept at most this long
SCALE = 4


@dataclass
class SetFacts:
    """What one set of the pool looks like."""

    label: str
    images: int
    masks: int
    median_size: tuple[int, int]  # (w, h)
    min_side: int
    square: float  # share of square images (centre crops) — whole photos are rarely square
    lesion_fraction: dict[str, float]  # p10 / median / p90 over items with a mask
    unreadable: list[str] = field(default_factory=list)

    @property
    def whole_photos(self) -> bool:
        return self.square < 0.5


@dataclass
class Plan:
    """Training settings picked from the facts; ``reasons`` says why, one line each."""

    seg_size: int
    seg_encoder: str
    seg_batch: int
    sr_side: int
    sr_crop: int
    sr_batch: int
    lesion_focus: float
    clean_share: float
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _size(path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - an unreadable file is reported and skipped, never a crash
        return None


def set_facts(dataset: Dataset, log=print) -> list[SetFacts]:
    """Facts of every set of a (pooled) dataset; unreadable items are listed, one line each."""
    by_set: dict[str, list] = {}
    for ref in dataset.refs:
        by_set.setdefault(set_of(ref.id) if dataset.kind == "pool" else dataset.kind, []).append(ref)
    facts = []
    for label, refs in by_set.items():
        sizes, fractions, bad = [], [], []
        for ref in refs:
            size = _size(ref.image_path)
            if size is None:
                bad.append(ref.id)
                log(f"skipped {ref.id}: {ref.image_path.name} is not a readable image")
                continue
            sizes.append(size)
            if ref.mask_path is not None:
                try:
                    mask, _ = read_mask(ref.mask_path)
                    fractions.append(float(mask.mean()))
                except DataError as exc:
                    bad.append(ref.id)
                    log(f"skipped {ref.id}: {exc}")
        if not sizes:
            raise DataError(f"{label}: none of its {len(refs)} images can be read")
        ws, hs = [s[0] for s in sizes], [s[1] for s in sizes]
        q = np.percentile(fractions, [10, 50, 90]).round(3).tolist() if fractions else [float("nan")] * 3
        facts.append(SetFacts(label, len(sizes), len(fractions), (int(statistics.median(ws)),
                              int(statistics.median(hs))), int(min(min(ws), min(hs))),
                              round(sum(w == h for w, h in sizes) / len(sizes), 3),
                              {"p10": q[0], "median": q[1], "p90": q[2]}, bad))
    return facts


def make_plan(facts: list[SetFacts], device: str) -> Plan:
    """The rules, in one place. ``device``: ``cpu`` or ``cuda``."""
    reasons = []
    gpu = device == "cuda"
    min_side = min(f.min_side for f in facts)
    if min_side >= 256:
        seg_size = 384 if gpu and min_side >= 768 else 256
        reasons.append(f"segmenter input {seg_size}²: the smallest image side is {min_side} px; 256² or more keeps "
                       f"lesion borders{' (384² on a GPU, whose budget allows it)' if seg_size > 256 else ''}")
    else:
        seg_size = max(64, min_side // 32 * 32)
        reasons.append(f"segmenter input {seg_size}²: the smallest image side is only {min_side} px (a multiple "
                       "of 32 no larger; real photos get 256²)")
    if gpu:
        encoder, seg_batch = "efficientnet-b3", 16
        reasons.append("segmenter encoder efficientnet-b3 (the paper's), batch 16: a GPU's budget affords it")
    else:
        encoder, seg_batch = "resnet18", 8
        reasons.append("segmenter encoder resnet18, batch 8: on a CPU it runs ~2× the steps per minute of the "
                       "paper's EfficientNet-B3 (both in bf16; 4× EfficientNet-B3 in FP32; benchmarks/train_step.py), "
                       "and its BN statistics settle in a short run (NOTES.md)")
    longest = max(max(f.median_size) for f in facts)
    sr_side = min(SR_SIDE_MAX, longest) // SCALE * SCALE
    reasons.append(f"SR HR kept at ≤ {sr_side} px on the long side: the median photo is {longest} px; a "
                   f"dermatoscope camera delivers ~640×480, and photos reduced from ~4000 px are over-smooth at "
                   f"full size (NOTES.md)")
    with_masks = [f for f in facts if f.masks]
    median_fraction = statistics.median(f.lesion_fraction["median"] for f in with_masks) if with_masks else 0.0
    diameter = int((median_fraction * sr_side * sr_side * 0.75) ** 0.5)
    smallest_hr = min(min(f.min_side, sr_side) for f in facts)
    crop = min(192 if gpu else 96, smallest_hr // SCALE * SCALE)
    batch = 16
    reasons.append(f"SR crops {crop}² HR ({crop // SCALE}² LR), batch {batch}: the median lesion is ~{diameter} px "
                   f"across at that scale, so a lesion-centred crop holds lesion, border and skin"
                   + ("" if gpu else "; the largest crop that keeps ~100 steps/min on this CPU"))
    focus = 0.8 if median_fraction < 0.5 else 0.5
    reasons.append(f"{focus:.0%} of SR crops centred on a lesion or border pixel (the runtime enhances lesions; "
                   f"median lesion fraction {median_fraction:.2f})")
    clean = 0.1
    reasons.append(f"LR protocol (b), the camera's blur+noise+JPEG, for {1 - clean:.0%} of crops; {clean:.0%} "
                   "clean bicubic ÷4 (protocol a), the generator told which by its camera plane (clean LR is "
                   "learnt fast once told apart: 11-min probes gave +0.53 dB on it with 10 %, +0.54 with 25 %)")
    return Plan(seg_size, encoder, seg_batch, sr_side, crop, batch, focus, clean, reasons)
