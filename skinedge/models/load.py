"""Rebuild a trained network from its checkpoint (pruned ones included), in eval mode.

What the export, the evaluation and the runtime's torch backend load: the models and their checkpoints only,
never the training loop.
"""

from __future__ import annotations

from pathlib import Path

import torch

from skinedge.models.checkpoint import load_checkpoint, load_state
from skinedge.models.shapes import apply_pruned_shapes


def _rebuild(model: torch.nn.Module, payload: dict, path: Path, device: str | torch.device) -> torch.nn.Module:
    if payload.get("pruned"):  # a pruned network: resize its layers to the recorded widths first
        apply_pruned_shapes(model, payload["pruned"]["shapes"])
    load_state(model, payload["state"]["model"], Path(path))
    return model.to(device).eval()


def load_segmenter(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a segmenter from a checkpoint (eval mode); returns (model, checkpoint)."""
    from skinedge.models.unet import build_segmenter

    payload = load_checkpoint(path, "seg")
    model = build_segmenter(payload["arch"]["encoder"], "none", payload["arch"]["dropout"])
    return _rebuild(model, payload, path, device), payload


def load_generator(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild an SR generator from a checkpoint (eval mode); returns (model, checkpoint)."""
    from skinedge.models.srgan import Generator

    payload = load_checkpoint(path, "sr")
    return _rebuild(Generator(**payload["arch"]), payload, path, device), payload
