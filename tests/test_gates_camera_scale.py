"""SR gates where SR runs: photos at the camera's scale, whole photos beside lesion crops, the border band judged."""

import numpy as np

from skinedge.data.dataset import Item
from skinedge.data.degrade import CAMERA_SIDE, Degradation
from skinedge.export.gates import Gates, judge
from skinedge.export.samples import at_camera_scale, lesion_crop, whole_photo


def _photo(h=768, w=1024):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), np.uint8)
    mask = np.zeros((h, w), bool)
    mask[300:500, 400:650] = True
    return Item("p", image, mask, "p"), mask


def test_gate_samples_come_from_the_photo_at_the_camera_scale():
    item, mask = _photo()
    small, small_mask = at_camera_scale(item, mask, 4)
    assert max(small.image.shape[:2]) == CAMERA_SIDE and small_mask.shape == small.image.shape[:2]
    assert 0.05 < small_mask.mean() < 0.08  # the lesion kept its share of the photo
    whole = whole_photo(small, small_mask, 4, Degradation(scale=4), seed=1)
    assert whole.hr.shape == (384, 512, 3) and whole.lr.shape == (96, 128, 3) and whole.mask.shape == (384, 512)
    crop = lesion_crop(small, small_mask, 4)
    assert crop.lr.shape == (64, 64, 3)


def test_the_sr_gate_refuses_a_variant_that_loses_the_lesion_border():
    fp32 = {"psnr_y": 36.0, "ssim_y": 0.90, "border_psnr_y": 38.0}
    variant = {"psnr_y": 35.8, "ssim_y": 0.899, "border_psnr_y": 36.0, "colour_shift": 0.001,
               "checkerboard": 0.1, "delta_e": 1.5, "bicubic_delta_e": 1.6}
    verdict = judge("sr", "int8", fp32, variant, Gates())
    assert not verdict["passed"] and verdict["reason"].startswith("border_psnr_drop_db 2 > 0.5")
    verdict = judge("sr", "int8", fp32, {**variant, "border_psnr_y": 37.7}, Gates())
    assert verdict["passed"]


def test_a_refused_variant_no_longer_serves_the_earlier_file_of_its_name(tmp_path):
    from skinedge.export.calibrate import CalibrateConfig, _write_variant

    earlier = {"file": "sr.int8-ov.xml", "status": "ok", "gate": {"passed": True}}
    manifest = {"networks": {"sr": {"variants": {"int8-ov": dict(earlier)}}, "seg": {"variants": {}}}}
    refused = {"gate": {"passed": False, "checks": [], "reason": "border_psnr_drop_db 2.4 > 0.5"}}
    cfg = CalibrateConfig(tmp_path, "int8", "synthetic:none")
    outcome = _write_variant(cfg, manifest, "sr", "int8-ov", refused, {})
    entry = manifest["networks"]["sr"]["variants"]["int8-ov"]
    assert outcome.startswith("refused") and "marked failing" in outcome
    assert entry["status"] == "failing" and entry["file"] == earlier["file"]
    assert entry["gate"]["reason"] == "border_psnr_drop_db 2.4 > 0.5"
    assert _write_variant(cfg, manifest, "seg", "int8-ov", refused, {}) == "refused (not written)"
    assert "int8-ov" not in manifest["networks"]["seg"]["variants"]
