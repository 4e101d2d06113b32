"""Losses of the paper, in their numerically safe logits form."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def seg_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """L_seg = L_BCE + L_Dice (paper §3.2.2), Dice summed over all pixels of the batch.

    Args:
        logits: N×1×H×W raw outputs; target: N×1×H×W in {0, 1}.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (prob * target).sum() + eps) / (prob.sum() + target.sum() + eps)
    return bce + dice


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = -log D(HR) - log(1 - D(G(LR))) (paper §3.3.2), averaged over the batch."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_adv = -log D(G(LR)) (the non-saturating generator loss)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
