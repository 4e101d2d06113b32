"""The segmenter's validation-chosen mask threshold: picked where Dice peaks, folded exactly into the head's bias."""

import numpy as np
import torch

from skinedge.models.checkpoint import save_checkpoint
from skinedge.models.load import load_segmenter
from skinedge.models.unet import build_segmenter
from skinedge.train.all.threshold import fold_threshold, folded_threshold, pick_threshold


def _disc(size: int, radius: float, cx: float, cy: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def test_the_threshold_where_masks_match_the_truth_is_picked():
    rng = np.random.default_rng(0)
    truths, logits = [], []
    for k in range(6):
        truth = _disc(48, 10 + k, 24, 22)
        yy, xx = np.mgrid[:48, :48]
        distance = np.hypot(yy - 22, xx - 24) - (10 + k)
        # an over-confident network: its logit crosses 0 two pixels outside the true border, +0.75 on it
        logits.append((0.75 - distance * 0.375 + rng.normal(0, 0.01, (48, 48))).astype(np.float32))
        truths.append(truth)
    threshold, dice = pick_threshold(np.stack(logits), np.stack(truths))
    assert threshold == 0.75
    assert dice[0.75] > dice[0.0] + 0.05


def test_ties_go_to_the_threshold_nearest_zero():
    truth = _disc(32, 8, 16, 16)
    logits = np.where(truth, 5.0, -5.0).astype(np.float32)[None]
    threshold, _ = pick_threshold(logits, truth[None])
    assert threshold == 0.0


def test_folding_shifts_every_logit_by_the_threshold(tmp_path):
    torch.manual_seed(0)
    model = build_segmenter("resnet18", dropout=0.0).eval()
    best = tmp_path / "seg-best.pt"
    save_checkpoint(best, "seg", {"encoder": "resnet18", "dropout": 0.0}, {"model": model.state_dict()},
                    config={"lr": 1e-3}, io={"size": 64})
    fold_threshold(best, tmp_path / "seg-deploy.pt", 0.5)
    original, _ = load_segmenter(best)
    folded, payload = load_segmenter(tmp_path / "seg-deploy.pt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        shift = original(x) - folded(x)
    assert torch.allclose(shift, torch.full_like(shift, 0.5), atol=1e-5)
    assert folded_threshold(tmp_path / "seg-deploy.pt") == 0.5
    assert payload["config"]["lr"] == 1e-3 and payload["io"] == {"size": 64}
