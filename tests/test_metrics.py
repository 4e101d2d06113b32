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


# ----------------------------------------------------------------- colour fidelity (CIELAB, CIEDE2000)
skc = pytest.importorskip("skimage.color")


@pytest.mark.parametrize("pair", image_pairs()[:3])
def test_lab_and_ciede2000_equal_skimage(pair):
    a, b = pair
    if a.ndim != 3:
        pytest.skip("colour metrics are for RGB images")
    assert np.abs(metrics.rgb_to_lab(a) - skc.rgb2lab(a)).max() < 1e-9
    ours = metrics.delta_e_ciede2000(metrics.rgb_to_lab(a), metrics.rgb_to_lab(b))
    reference = skc.deltaE_ciede2000(skc.rgb2lab(a), skc.rgb2lab(b))
    assert np.abs(ours - reference).max() < 1e-9
    mask = np.zeros(a.shape[:2], bool)
    mask[3:-5, 7:-2] = True
    assert metrics.mean_delta_e(a, b, mask) == pytest.approx(float(reference[mask].mean()), abs=1e-9)


def test_ciede2000_on_greys_hue_wraps_and_the_published_pairs():
    # Sharma, Wu and Dalal (2005), Table 1: pairs 1, 7 (a grey), 17 and 25 (hue angles that wrap around 0/360)
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0], [60.2574, -34.0099, 36.2677]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0], [60.4626, -34.1751, 39.4387]])
    expected = [2.0425, 2.3669, 27.1492, 1.2644]
    assert metrics.delta_e_ciede2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert metrics.mean_delta_e(grey, grey) == 0.0
    assert math.isnan(metrics.mean_delta_e(grey, grey, np.zeros((4, 4), bool)))


def test_border_band_is_both_sides_of_the_border_and_nothing_else():
    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:40] = True
    band = metrics.border_band(mask, radius=3)
    ys, xs = np.nonzero(band)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (7, 32, 9, 42)  # 3 px outside
    assert not band[13:27, 15:37].any()  # deeper than 3 px inside: not the border
    assert band[10:13, 12:40].all() and band[7:10, 9:43].all()  # 3 px inside and outside the top edge
    assert band.sum() == (26 * 34) - (14 * 22)
    assert not metrics.border_band(np.zeros((9, 9), bool)).any()
    edge = np.zeros((20, 20), bool)
    edge[:, :10] = True  # a lesion cut by the image border: the image edge is not a lesion border
    assert not metrics.border_band(edge, 2)[:, :7].any() and metrics.border_band(edge, 2)[:, 8:12].all()


def test_sr_scores_have_the_fidelity_columns():
    hr, _ = image_pairs()[0]
    lr = degrade(hr, Degradation.bicubic_only(4), seed=0) if hr.shape[0] % 4 == 0 else None
    if lr is None:
        pytest.skip("pair not a multiple of 4")
    bic = bicubic_upscale(lr, 4)
    mask = np.zeros(hr.shape[:2], bool)
    mask[hr.shape[0] // 4: 3 * hr.shape[0] // 4, hr.shape[1] // 4: 3 * hr.shape[1] // 4] = True
    row = metrics.sr_scores(bic, hr, 4, mask)
    assert {"lesion_delta_e", "border_psnr_y", "border_delta_e"} <= set(row)
    band = metrics.border_band(mask)
    assert row["border_psnr_y"] == pytest.approx(metrics.psnr(bic, hr, border=4, y_channel=True, mask=band))
    perfect = metrics.sr_scores(hr, hr, 4, mask)
    assert perfect["lesion_delta_e"] == 0.0 and math.isinf(perfect["border_psnr_y"])
