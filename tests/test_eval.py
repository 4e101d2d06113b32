"""`skinedge eval` on ISIC-, PH2- and Derm7pt-shaped trees: the three tables and the report files."""

from __future__ import annotations

import json
import math

import pytest

from layouts import make_derm7pt, make_isic2018, make_ph2
from skinedge.evaluate import METHODS, EvalConfig, evaluate
from skinedge.report import write_report
from skinedge.train.seg import SegConfig, train_seg
from skinedge.train.sr import SRConfig, train_sr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    make_isic2018(root / "isic", counts=(8, 2, 3))
    spec = f"isic2018:{root / 'isic'}"
    train_seg(SegConfig(spec, root / "run", encoder="resnet18", size=64, batch=2, epochs=1, device="cpu",
                        bn_batches=2))
    train_sr(SRConfig(spec, root / "run", phase="pretrain", blocks=2, features=16, hr_size=32, batch=2,
                      epochs=1, device="cpu", val_limit=2))
    return root, spec


def run_eval(root, spec, name):
    cfg = EvalConfig(spec, root / "run" / "seg-best.pt", root / "run" / "sr-pretrain-best.pt",
                     root / name, device="cpu", panels=2)
    report = evaluate(cfg)
    return report, write_report(report, root / name)


def test_eval_on_isic_uses_the_segmenters_split_and_writes_three_tables(trained):
    root, spec = trained
    report, paths = run_eval(root, spec, "report-isic")
    assert report["test_images"] == 3 and "segmenter's split" in report["split"]
    seg = report["tables"]["segmentation"]
    assert 0 <= seg["dice"] <= 1 and 0 <= seg["threshold_jaccard"] <= seg["iou"] + 1e-12
    methods = report["tables"]["methods"]
    assert set(methods) == set(METHODS)
    for row in methods.values():
        assert math.isfinite(row["psnr_y"]) and math.isfinite(row["lesion_psnr_y"])
        assert row["lesion_delta_e"] >= 0 and row["border_delta_e"] >= 0 and math.isfinite(row["border_psnr_y"])
    # the projection pulls the generator's output toward the camera: never further from it than G alone
    assert methods["srgan_projected"]["lesion_delta_e"] <= methods["srgan_only"]["lesion_delta_e"] + 1e-9
    data = json.loads(paths["json"].read_text())
    assert data["paper"]["methods"]["skinsegmentsrgan"] == [29.05, 0.851, 0.121]
    md = paths["md"].read_text()
    assert "Table 1" in md and "Table 3" in md and "SkinSegmentSRGAN (paper's composition)" in md
    assert "ΔE00 in lesion" in md and "skinedge vs bicubic in the lesion:" in md
    html = paths["html"].read_text()
    # 2 cases × (LR, HR and 6 methods + 4 zoomed border crops)
    assert html.count("<img src='data:image/png;base64,") == 2 * (2 + len(METHODS) + 4)
    assert "LPIPS" in report["lpips"]


def test_eval_on_ph2_makes_its_own_split(trained):
    root, _ = trained
    make_ph2(root / "ph2", count=10)
    report, _ = run_eval(root, f"ph2:{root / 'ph2'}", "report-ph2")
    assert report["kind"] == "ph2" and "random split of this dataset" in report["split"]
    assert report["with_masks"] == report["test_images"] >= 1


def test_eval_on_derm7pt_has_no_segmentation_table(trained):
    root, _ = trained
    make_derm7pt(root / "d7", count=9)
    report, paths = run_eval(root, f"derm7pt:{root / 'd7'}", "report-d7")
    assert report["tables"]["segmentation"] == {} and report["with_masks"] == 0
    assert "lesion_psnr_y" not in report["tables"]["methods"]["bicubic"]
    assert "no ground-truth masks" in paths["md"].read_text()
