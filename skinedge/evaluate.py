"""``skinedge eval``: the paper's three tables on a test split (protocol: docs/protocol.md).

Table 1: segmentation of the HR test image (at the segmenter's input size,
logits upsampled to the image's resolution, as the ISIC scorer compares).
Table 2: the SR generator on the LR image vs bicubic, without and with the
data-consistency projection. Table 3: Bicubic, SRGAN-only, Seg+Bicubic,
SkinSegmentSRGAN (the paper's composition) and skinedge (what the runtime
does: SR with the real surround, projected onto the camera's pixels,
composited on the bicubic background), each a 4× output made from the LR
image alone, scored against the HR image over the whole image, inside the
ground-truth lesion (PSNR-Y, SSIM-Y, CIEDE2000 ΔE) and in the ±8 px band
around its border.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from skinedge import metrics
from skinedge.data import open_dataset
from skinedge.data.degrade import bicubic_upscale, degrade, mod_crop, resize_mask
from skinedge.data.splits import read_split, recorded_or_new_split
from skinedge.errors import MissingWeights, SkinedgeError
from skinedge.runtime.pipeline.mask import dilate, feather, mask_image
from skinedge.runtime.pipeline.projection import Fidelity, project_image
from skinedge.runtime.pipeline.reference import blend
from skinedge.train.loop import pick_device
from skinedge.train.samples import normalise_imagenet
from skinedge.models.load import load_generator, load_segmenter
from skinedge.train.sr import degradation_of, super_resolve

METHODS = ("bicubic", "srgan_only", "srgan_projected", "seg_bicubic", "skinsegmentsrgan", "skinedge")


@dataclass
class EvalConfig:
    data: str
    seg: Path
    sr: Path
    out: Path
    split: Path | None = None
    degradation: str = "default"
    limit: int | None = None
    panels: int = 6
    max_side: int = 1024
    device: str = "auto"
    lpips: bool = True
    context: int = 4
    fidelity: Fidelity = field(default_factory=Fidelity)


@dataclass
class Case:
    """One test image through every method (kept only for the panels)."""

    id: str
    hr: np.ndarray
    lr: np.ndarray
    truth: np.ndarray | None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    pred_mask: np.ndarray | None = None


@torch.no_grad()
def segment(model: torch.nn.Module, image: np.ndarray, size: int, device: torch.device) -> np.ndarray:
    """Lesion mask of a uint8 RGB image at its own resolution (logits resized bilinearly, > 0)."""
    small = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    logits = model(normalise_imagenet(small[None]).to(device))
    logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
    return (logits[0, 0] > 0).cpu().numpy()


def project_rgb(sr: np.ndarray, lr: np.ndarray, fidelity: Fidelity) -> np.ndarray:
    """:func:`skinedge.runtime.pipeline.projection.project` on uint8 H×W×3 RGB images (the runtime's own NumPy code)."""
    out = project_image(sr / np.float32(255), lr / np.float32(255), fidelity)
    return np.clip(np.floor(out * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _fit(image: np.ndarray, mask: np.ndarray | None, max_side: int, scale: int):
    """Shrink very large images (longest side ≤ max_side) and mod-crop to the scale."""
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        size = (max(scale, round(w * f)), max(scale, round(h * f)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        if mask is not None:
            mask = resize_mask(mask, *size)
    image = mod_crop(image, scale)
    return image, None if mask is None else mask[: image.shape[0], : image.shape[1]]


def _quality(out: np.ndarray, hr: np.ndarray, truth: np.ndarray | None, scale: int, use_lpips: bool) -> dict:
    row = metrics.sr_scores(out, hr, scale, truth)
    if use_lpips:
        row["lpips"] = metrics.lpips_distance(out, hr)
    return row


def _lpips_available(wanted: bool) -> tuple[bool, str]:
    if not wanted:
        return False, "LPIPS not requested"
    try:
        tiny = np.zeros((16, 16, 3), np.uint8)
        metrics.lpips_distance(tiny, tiny)
        return True, "LPIPS (AlexNet backbone)"
    except MissingWeights as exc:
        return False, f"LPIPS not computed: {exc}"


def _test_ids(cfg: EvalConfig, dataset, seg_payload: dict) -> tuple[list[str], str]:
    """Test ids from --split, else the segmenter's split when it was made for this dataset,
    else a new seeded split of this dataset (cross-dataset evaluation)."""
    if cfg.split:
        return read_split(cfg.split).parts["test"], f"--split {cfg.split}"
    split, recorded = recorded_or_new_split(dataset, seg_payload.get("data"))
    if recorded:
        return split.parts["test"], f"the segmenter's split {recorded}"
    return split.parts["test"], f"{split.strategy} split of this dataset, seed 0"


def evaluate(cfg: EvalConfig) -> dict:
    """Run every test image through every method; return the report dict (see report.py)."""
    device = pick_device(cfg.device)
    seg_model, seg_payload = load_segmenter(cfg.seg, device)
    generator, sr_payload = load_generator(cfg.sr, device)
    scale = int(sr_payload["arch"]["scale"])
    seg_size = int(seg_payload["io"]["size"])
    dataset = open_dataset(cfg.data)
    ids, split_source = _test_ids(cfg, dataset, seg_payload)
    test = dataset.subset(ids[: cfg.limit] if cfg.limit else ids)
    if len(test) == 0:
        raise SkinedgeError(f"the test split of {cfg.data} is empty ({split_source}): nothing to evaluate")
    how = degradation_of(cfg.degradation, scale)
    use_lpips, lpips_note = _lpips_available(cfg.lpips)
    seg_rows, quality_rows, cases = [], {m: [] for m in METHODS}, []
    picks = set(np.linspace(0, len(test) - 1, min(cfg.panels, len(test))).round().astype(int).tolist())
    for index, item in enumerate(test):
        hr, truth = _fit(item.image, item.mask, cfg.max_side, scale)
        if truth is not None:
            seg_rows.append(metrics.segmentation_scores(truth, segment(seg_model, hr, seg_size, device)))
        lr = degrade(hr, how, seed=index)
        bic = bicubic_upscale(lr, scale)
        mask_lr = segment(seg_model, lr, seg_size, device)
        mask_hr = resize_mask(mask_lr, bic.shape[1], bic.shape[0])
        masked_lr = mask_image(lr, dilate(mask_lr, cfg.context))
        soft = feather(mask_hr, sigma=scale / 2)
        sr = super_resolve(generator, lr[None], device)[0]
        projected = project_rgb(sr, lr, cfg.fidelity)
        outputs = {
            "bicubic": bic,
            "srgan_only": sr,
            "srgan_projected": projected,
            "seg_bicubic": blend(bicubic_upscale(masked_lr, scale), bic, soft),
            "skinsegmentsrgan": blend(super_resolve(generator, masked_lr[None], device)[0], bic, soft),
            "skinedge": blend(projected, bic, soft),
        }
        for method, out in outputs.items():
            quality_rows[method].append(_quality(out, hr, truth, scale, use_lpips))
        if index in picks:
            cases.append(Case(item.id, hr, lr, truth, outputs, mask_hr))
    tables = {
        "segmentation": metrics.mean_scores(seg_rows) if seg_rows else {},
        "methods": {m: metrics.mean_scores(rows) for m, rows in quality_rows.items()},
    }
    return {
        "dataset": cfg.data, "kind": dataset.kind, "test_images": len(test), "split": split_source,
        "with_masks": len(seg_rows), "scale": scale, "degradation": cfg.degradation,
        "checkpoints": {"seg": str(cfg.seg), "sr": str(cfg.sr)},
        "sr_phase": sr_payload.get("config", {}).get("phase"), "context_px": cfg.context,
        "fidelity": cfg.fidelity.describe(),
        "lpips": lpips_note, "tables": tables, "cases": cases,
        "notes": [] if seg_rows else ["no ground-truth masks: Table 1 and lesion metrics are not computed"],
    }

