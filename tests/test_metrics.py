"""Metrics against the references: skimage (PSNR/SSIM) and the official ISIC scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layouts import mask_u8, sample, save
from skinedge import metrics
from skinedge.data.degrade import bicubic_upscale, degrade, Degradation

skm = pytest.importorskip("skimage.metrics")
isic = pytest.importorskip("isic_challenge_scoring")
from isic_challenge_scoring import metrics as isic_metrics  # noqa: E402
from isic_challenge_scoring.confusion import create_binary_confusion_matrix  # noqa: E402
from isic_challenge_scoring.segmentation import SegmentationScore  # noqa: E402

RNG = np.random.default_rng(2024)


def sk_ssim(a, b, data_range, channel_axis=None):
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=data_range,
                                     channel_axis=channel_axis)


def image_pairs():
    """Realistic pairs (HR vs bicubic of its LR) plus random and odd-sized ones."""
    hr = sample(11, size=128).image
    up = bicubic_upscale(degrade(hr, Degradation(), seed=1), 4)
    noisy = np.clip(hr + RNG.normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    odd_a = RNG.integers(0, 256, (23, 37, 3), dtype=np.uint8)
    odd_b = RNG.integers(0, 256, (23, 37, 3), dtype=np.uint8)
    return [(hr, up), (hr, noisy), (odd_a, odd_b)]


@pytest.mark.parametrize("pair", range(3))
def test_ssim_equals_skimage_rgb_gray_and_float(pair):
    a, b = image_pairs()[pair]
    assert metrics.ssim(a, b) == pytest.approx(sk_ssim(a, b, 255, channel_axis=2), abs=1e-6)
    ga, gb = a[..., 1], b[..., 1]
    assert metrics.ssim(ga, gb) == pytest.approx(sk_ssim(ga, gb, 255), abs=1e-6)
    fa, fb = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    assert metrics.ssim(fa, fb, data_range=1.0) == pytest.approx(
        sk_ssim(fa, fb, 1.0, channel_axis=2), abs=1e-6)


@pytest.mark.parametrize("pair", range(3))
def test_psnr_equals_skimage(pair):
    a, b = image_pairs()[pair]
    assert metrics.psnr(a, b) == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_y_channel_and_border_match_skimage_on_the_same_crop():
    a, b = image_pairs()[0]
    ya, yb = metrics.rgb_to_y(a)[4:-4, 4:-4], metrics.rgb_to_y(b)[4:-4, 4:-4]
    assert metrics.psnr(a, b, border=4, y_channel=True) == pytest.approx(
        skm.peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-9)
    assert metrics.ssim(a, b, border=4, y_channel=True) == pytest.approx(sk_ssim(ya, yb, 255), abs=1e-6)
    white = np.full((2, 2, 3), 255, np.uint8)
    assert metrics.rgb_to_y(white) == pytest.approx(235.0, abs=1e-3)  # studio swing


def test_masked_psnr_only_counts_pixels_inside():
    a, b = image_pairs()[1]
    mask = np.zeros(a.shape[:2], bool)
    mask[40:80, 30:90] = True
    diff = (a.astype(float) - b.astype(float))[mask]
    assert metrics.psnr(a, b, mask=mask) == pytest.approx(10 * math.log10(255 ** 2 / np.mean(diff ** 2)))
    assert math.isnan(metrics.psnr(a, b, mask=np.zeros_like(mask)))
    assert 0 < metrics.ssim(a, b, mask=mask) < 1


def test_identical_and_constant_images():
    a = image_pairs()[0][0]
    assert metrics.psnr(a, a) == math.inf
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert metrics.ssim(flat, flat) == pytest.approx(sk_ssim(flat, flat, 255, channel_axis=2), abs=1e-6)
    other = np.full((32, 32, 3), 80, np.uint8)
    assert metrics.psnr(flat, other) == pytest.approx(10 * math.log10(255 ** 2 / 9))
    assert metrics.ssim(flat, other) == pytest.approx(sk_ssim(flat, other, 255, channel_axis=2), abs=1e-6)


def test_quality_metric_input_errors():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(a, a[:8])
    with pytest.raises(ValueError, match="data_range is required"):
        metrics.ssim(a.astype(float), a.astype(float))
    with pytest.raises(ValueError, match="at least 11×11"):
        metrics.ssim(a[:10, :10], a[:10, :10])


# ------------------------------------------------------------------ segmentation
def mask_pairs():
    """Realistic truth/prediction pairs and every empty/full edge case."""
    pairs = []
    for i in range(6):
        truth = sample(20 + i).mask
        shift = np.roll(truth, (i - 3, 2 * i - 4), axis=(0, 1))
        pairs.append((truth, shift))
    empty, full = np.zeros((64, 64), bool), np.ones((64, 64), bool)
    some = sample(30).mask
    pairs += [(empty, empty), (empty, some), (some, empty), (full, full), (full, some), (some, full)]
    pairs.append((some, some))
    return pairs


ISIC_NAMES = {"dice": isic_metrics.binary_dice, "iou": isic_metrics.binary_jaccard,
              "threshold_jaccard": isic_metrics.binary_threshold_jaccard,
              "precision": isic_metrics.binary_ppv, "recall": isic_metrics.binary_sensitivity,
              "specificity": isic_metrics.binary_specificity, "accuracy": isic_metrics.binary_accuracy}


@pytest.mark.parametrize("index", range(13))
def test_per_image_scores_equal_the_isic_scorer(index):
    truth, pred = mask_pairs()[index]
    ours = metrics.segmentation_scores(truth, pred)
    cm = create_binary_confusion_matrix(truth_binary_values=truth, prediction_binary_values=pred)
    for name, fn in ISIC_NAMES.items():
        assert ours[name] == pytest.approx(float(fn(cm)), abs=1e-12), name


def test_macro_average_equals_isic_scorer_from_files(tmp_path):
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    per_image = []
    for n, (truth, pred) in enumerate(mask_pairs()):
        save(truth_dir / f"ISIC_{n:07d}_segmentation.png", mask_u8(truth))
        save(pred_dir / f"ISIC_{n:07d}.png", mask_u8(pred))
        per_image.append(metrics.segmentation_scores(mask_u8(truth), mask_u8(pred)))
    official = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    ours = metrics.mean_scores(per_image)
    for ours_name, isic_name in [("accuracy", "accuracy"), ("recall", "sensitivity"),
                                 ("specificity", "specificity"), ("iou", "jaccard"),
                                 ("threshold_jaccard", "threshold_jaccard"), ("dice", "dice")]:
        assert ours[ours_name] == pytest.approx(float(official[isic_name]), abs=1e-12), ours_name


def test_empty_truth_conventions():
    empty = np.zeros((8, 8), bool)
    s = metrics.segmentation_scores(empty, empty)
    assert s["dice"] == s["iou"] == s["precision"] == s["recall"] == 1.0
    one = empty.copy()
    one[0, 0] = True
    s = metrics.segmentation_scores(empty, one)
    assert s["dice"] == 0.0 and s["precision"] == 0.0 and s["recall"] == 1.0


def test_mask_dtypes_and_mean_ignores_nan():
    probs = np.array([[0.2, 0.7], [0.5, 0.0]])
    assert metrics.as_binary(probs).tolist() == [[False, True], [True, False]]
    assert metrics.as_binary(np.array([[0, 129]], np.uint8)).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="mask of dtype"):
        metrics.as_binary(np.array([[0, 7]], np.int32))
    assert metrics.mean_scores([{"a": 1.0}, {"a": math.nan}, {"a": 0.0}]) == {"a": 0.5}


# ------------------------------------------------------------------------ LPIPS
def test_lpips_without_backbone_says_where_to_put_it(tmp_path, monkeypatch):
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    a = sample(0).image
    with pytest.raises(metrics.MissingWeights, match=r"alexnet-owt-7be5be79.pth.*copy it to"):
        metrics.lpips_distance(a, a)


def test_lpips_runs_with_a_local_backbone_file(tmp_path, monkeypatch):
    """A random-initialised AlexNet stands in for the ImageNet file: the loading path is real."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = metrics.lpips_backbone_path("alex")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    metrics._lpips_model.cache_clear()
    try:
        a, b = image_pairs()[1]
        assert metrics.lpips_distance(a, a) == pytest.approx(0.0, abs=1e-6)
        assert metrics.lpips_distance(a, b) > 0.0
    finally:
        metrics._lpips_model.cache_clear()
