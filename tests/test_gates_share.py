"""The SR gate keeps the generator's own share (shown lesion over bicubic + projection): a faster variant may not eat
it, on either LR protocol."""

import numpy as np
import pytest

from skinedge.data.dataset import Item
from skinedge.data.degrade import Degradation, bicubic_upscale
from skinedge.export.gates import Gates, HeldOut, judge, sr_metrics
from skinedge.export.samples import lesion_crop, whole_photo


def _photo(seed=0, side=256):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    smooth = (128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0))[..., None] + rng.normal(0, 6, (side, side, 3))
    image = np.clip(smooth, 0, 255).astype(np.uint8)
    mask = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 4) ** 2
    return Item(f"p{seed}", image, mask, f"p{seed}"), mask


def test_crops_know_their_lr_protocol():
    item, mask = _photo()
    assert lesion_crop(item, mask, 4, lr_side=32).protocol == "bicubic"
    assert lesion_crop(item, mask, 4, lr_side=32, degradation=Degradation(scale=4), seed=1).protocol == "camera"
    assert whole_photo(item, mask, 4, Degradation(scale=4, blur_sigma=None, noise_sigma=None)).protocol == "camera"
    assert whole_photo(item, mask, 4).protocol == "bicubic"


def test_sr_metrics_measure_the_generators_own_share_on_each_protocol():
    item, mask = _photo()
    plain = lesion_crop(item, mask, 4, lr_side=32)
    camera = lesion_crop(item, mask, 4, lr_side=32, degradation=Degradation(scale=4), seed=3)
    held = HeldOut(np.zeros((0, 3, 8, 8), np.float32), [], [plain, camera], 4, ["p0"])
    up = [bicubic_upscale(c.lr, 4).astype(np.float32) / 255 for c in (plain, camera)]
    truth = [c.hr.astype(np.float32) / 255 for c in (plain, camera)]
    toward = sr_metrics([u + 0.5 * (t - u) for u, t in zip(up, truth)], held)  # half of bicubic's error left
    away = sr_metrics([u - 0.5 * (t - u) for u, t in zip(up, truth)], held)  # bicubic's error made 1.5× larger
    same = sr_metrics(up, held)
    assert same["share_db_bicubic"] == 0.0 and same["share_db_camera"] == 0.0  # bicubic's share is nothing
    assert toward["share_db_bicubic"] > 0.5 and toward["share_db_camera"] > 0.5
    assert away["share_db_bicubic"] < -0.5 and away["share_db_camera"] < -0.5


def test_the_sr_gate_refuses_a_variant_that_loses_a_tenth_of_the_generators_share():
    fp32 = {"psnr_y": 36.0, "ssim_y": 0.90, "border_psnr_y": 38.0, "share_db_bicubic": 0.60, "share_db_camera": 0.12}
    variant = {"psnr_y": 35.95, "ssim_y": 0.899, "border_psnr_y": 37.95, "colour_shift": 0.001,
               "checkerboard": 0.1, "delta_e": 1.5, "bicubic_delta_e": 1.6,
               "share_db_bicubic": 0.55, "share_db_camera": 0.08}  # a 0.05 dB drop: the PSNR gate lets it pass
    verdict = judge("sr", "int8", fp32, variant, Gates())
    assert not verdict["passed"] and verdict["reason"].startswith("share_lost_camera 0.3333 > 0.1")
    assert judge("sr", "fp16", fp32, {**variant, "psnr_y": 35.99, "border_psnr_y": 37.99}, Gates())["reason"] \
        == "share_lost_camera 0.3333 > 0.1"
    assert judge("sr", "int8", fp32, {**variant, "share_db_bicubic": 0.57, "share_db_camera": 0.11}, Gates())["passed"]


def test_a_generator_that_adds_almost_nothing_may_lose_a_little_of_it():
    fp32 = {"psnr_y": 36.0, "ssim_y": 0.90, "border_psnr_y": 38.0, "share_db_bicubic": 0.02, "share_db_camera": -0.1}
    variant = {**fp32, "colour_shift": 0.0, "checkerboard": 0.1, "delta_e": 1.5, "bicubic_delta_e": 1.6,
               "share_db_bicubic": 0.012, "share_db_camera": -0.108}
    checks = {c["name"]: c for c in judge("sr", "int8", fp32, variant, Gates())["checks"]}
    assert checks["share_lost_bicubic"]["loss"] == pytest.approx(0.08) and checks["share_lost_bicubic"]["passed"]
    assert checks["share_lost_camera"]["loss"] == pytest.approx(0.08) and checks["share_lost_camera"]["passed"]
