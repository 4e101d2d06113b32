"""Re-estimate batch-norm statistics after (short) training.

EfficientNet's BN layers use momentum 0.01, so after a few hundred steps their
running statistics still sit near their initial values and eval-mode output is
poor even when train-mode output is good (measured: Dice 0.98 train mode,
0.26 eval mode after 3 minutes). A no-grad pass over training batches with a
cumulative average (momentum None) gives the true population statistics of the
current weights. Dropout stays off during the pass, as it is at inference.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset and re-estimate every BN layer's running mean/var; returns batches used."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    used = 0
    try:
        for x in batches:
            model(x)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used
