"""Lesion segmenter: smp U-Net, EfficientNet-B3 encoder, BN and dropout (paper §3.2.1).

The network outputs one channel of *logits*. The sigmoid lives in the loss
(BCE-with-logits is the numerically safe form) and in inference; the exported
graph also ends in logits, because the runtime thresholds ``logit > 0``, which
equals ``sigmoid > 0.5`` and saves a full-resolution exp per pixel.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from skinedge.errors import MissingWeights, SkinedgeError

DEFAULT_ENCODER = "efficientnet-b3"
DEFAULT_DROPOUT = 0.2


class _DropoutAfter(nn.Module):
    """Run ``block`` then spatial dropout: dropout in the decoder path (paper §3.2.1)."""

    def __init__(self, block: nn.Module, p: float):
        super().__init__()
        self.block = block
        self.dropout = nn.Dropout2d(p)

    def forward(self, *args, **kwargs):
        return self.dropout(self.block(*args, **kwargs))


class _EncoderWithDropout(nn.Module):
    """Spatial dropout on every encoder feature map passed to the decoder (encoder path)."""

    def __init__(self, encoder: nn.Module, p: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout2d(p)
        self.out_channels = encoder.out_channels
        self.output_stride = getattr(encoder, "output_stride", 32)

    def forward(self, x):
        return [self.dropout(f) if i > 0 else f for i, f in enumerate(self.encoder(x))]


def _load_encoder_weights(model: nn.Module, encoder_weights: str, encoder: str) -> None:
    """Apply ``imagenet`` (from the local smp/torch cache) or a state-dict file to the encoder."""
    if encoder_weights == "none":
        return
    if encoder_weights == "imagenet":
        raise MissingWeights(
            f"ImageNet weights for {encoder} cannot be downloaded here: download them once "
            "elsewhere, save model.encoder.state_dict() with torch.save, and pass "
            "--encoder-weights PATH (or --encoder-weights none to start from random init)")
    path = Path(encoder_weights)
    if not path.is_file():
        raise MissingWeights(f"encoder weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise MissingWeights(f"{path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise MissingWeights(f"{path}: holds a {type(state).__name__}, not a state dict")
    encoder_module = model.encoder.encoder
    target = encoder_module.state_dict()
    fitting = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    if len(fitting) < len(target) // 2:
        raise MissingWeights(f"{path} does not fit the {encoder} encoder ({len(fitting)} of "
                             f"{len(target)} tensors match by name and shape)")
    encoder_module.load_state_dict(fitting, strict=False)


def build_segmenter(encoder: str = DEFAULT_ENCODER, encoder_weights: str = "none",
                    dropout: float = DEFAULT_DROPOUT) -> nn.Module:
    """The paper's U-Net: 3 input channels (RGB, ImageNet-normalised), 1 logit channel.

    Args:
        encoder: any smp encoder name (``efficientnet-b3``, ``resnet18``, ...).
        encoder_weights: ``none`` (random init), ``imagenet`` (fails offline with
            instructions) or a path to an encoder state dict.
        dropout: spatial dropout probability in the encoder skips and after
            every decoder block (0 disables).
    Input: N×3×H×W with H, W multiples of 32. Output: N×1×H×W logits.
    """
    import segmentation_models_pytorch as smp

    try:
        model = smp.Unet(encoder_name=encoder, encoder_weights=None, classes=1, activation=None,
                         decoder_use_batchnorm=True)
    except KeyError:
        raise SkinedgeError(f"unknown encoder {encoder!r}; e.g. efficientnet-b3, resnet18, resnet34, "
                            "mobilenet_v2 (see segmentation_models_pytorch.encoders)") from None
    # Wrapped even when dropout is 0, so checkpoints keep one set of keys.
    model.encoder = _EncoderWithDropout(model.encoder, dropout)
    model.decoder.blocks = nn.ModuleList(_DropoutAfter(b, dropout) for b in model.decoder.blocks)
    _load_encoder_weights(model, encoder_weights, encoder)
    return model
