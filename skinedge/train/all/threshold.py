"""The segmenter's mask threshold, chosen on the validation part and folded into the network.

A network trained for minutes is not calibrated: its best cut is rarely logit 0. Measured on the shared sets'
held-out whole photos with a 60-minute CPU segmenter, logit > +0.5 instead of > 0 raised Dice 0.837 → 0.851. The
threshold is picked on *validation* images (never the held-out part) and subtracted from the head's last bias,
so the exported graph's logit 0 is the chosen cut: every runtime (ONNX Runtime, OpenVINO, TensorRT, the CUDA mask
kernel, ``eval``) keeps its ``logit > 0`` rule and no manifest field is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skinedge import metrics
from skinedge.models.checkpoint import load_checkpoint, save_checkpoint
from skinedge.models.load import load_segmenter
from skinedge.runtime.pipeline.mask import largest_component

CANDIDATES = tuple(np.round(np.arange(-1.5, 1.51, 0.25), 2).tolist())


def pick_threshold(logits: np.ndarray, truths: np.ndarray, candidates=CANDIDATES) -> tuple[float, dict[float, float]]:
    """The candidate whose mask (largest blob kept, the runtime's rule) has the best mean Dice; ties go to the one
    nearest 0. Returns (threshold, mean Dice per candidate)."""
    dice = {}
    for t in candidates:
        rows = [metrics.segmentation_scores(truth, largest_component(logit > t))
                for logit, truth in zip(logits, truths)]
        dice[t] = metrics.mean_scores(rows)["dice"]
    best = max(candidates, key=lambda t: (round(dice[t], 4), -abs(t)))
    return float(best), dice


def head_bias(model) -> torch.nn.Parameter:
    """The bias of the U-Net's last convolution (its single logit channel)."""
    return model.segmentation_head[0].bias


def fold_threshold(best: Path, out: Path, threshold: float) -> None:
    """Write ``out``: the checkpoint ``best`` with ``threshold`` subtracted from the logit's bias (noted in its
    config), so ``logit > 0`` of the result is ``logit > threshold`` of the original."""
    model, payload = load_segmenter(best)
    with torch.no_grad():
        head_bias(model).sub_(threshold)
    state = {**payload["state"], "model": model.state_dict()}
    sections = {k: v for k, v in payload.items()
                if k not in ("format", "format_version", "skinedge_version", "kind", "arch", "state")}
    config = {**sections.get("config", {}), "mask_threshold": threshold,
              "mask_threshold_note": "chosen on validation; subtracted from the head's bias (logit > 0 applies it)"}
    save_checkpoint(out, "seg", payload["arch"], state, **{**sections, "config": config})


def folded_threshold(path: Path) -> float | None:
    """The threshold folded into a checkpoint, or None when none was."""
    return load_checkpoint(path, "seg").get("config", {}).get("mask_threshold")
