"""`data check`: every problem of a broken dataset, in one run, with exit 1."""

from __future__ import annotations

import numpy as np
from PIL import Image

from layouts import mask_u8, sample, save
from skinedge.data import open_dataset
from skinedge.data.check import check_dataset, format_report


def make_broken_folder(root):
    """One good item and one of every kind of damage the issue lists."""
    good = sample(0)
    save(root / "images" / "good.png", good.image)
    save(root / "masks" / "good.png", mask_u8(good.mask))
    # truncated JPEG
    save(root / "images" / "truncated.jpg", sample(1).image, "JPEG")
    data = (root / "images" / "truncated.jpg").read_bytes()
    (root / "images" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    save(root / "masks" / "truncated.png", mask_u8(sample(1).mask))
    # a PNG that is really text
    (root / "images" / "text.png").write_text("this is not a picture\n")
    save(root / "masks" / "text.png", mask_u8(sample(2).mask))
    # 16-bit grayscale and RGBA images: converted, usable
    s3 = sample(3)
    Image.fromarray((s3.image[..., 1].astype(np.uint16) * 257)).save(root / "images" / "gray16.png")
    save(root / "masks" / "gray16.png", mask_u8(s3.mask))
    s4 = sample(4)
    save(root / "images" / "rgba.png", np.dstack([s4.image, np.full((64, 64), 255, np.uint8)]))
    save(root / "masks" / "rgba.png", mask_u8(s4.mask))
    # mask of another size
    save(root / "images" / "sizes.png", sample(5).image)
    save(root / "masks" / "sizes.png", mask_u8(sample(5, size=48).mask))
    # mask with values other than 0/255
    s6 = sample(6)
    grey = mask_u8(s6.mask)
    grey[grey == 255] = 180
    grey[0, 0] = 90
    save(root / "images" / "greymask.png", s6.image)
    save(root / "masks" / "greymask.png", grey)
    # image without mask, and a file name that matches no pattern
    save(root / "images" / "nomask.png", sample(7).image)
    (root / "images" / "README").write_text("notes")


def test_check_reports_every_problem(tmp_path):
    make_broken_folder(tmp_path)
    report = check_dataset(open_dataset(f"folder:{tmp_path}"))
    by_item = {p.item: (p.severity, p.message) for p in report.problems}
    assert by_item["truncated"][0] == "error"
    assert by_item["truncated"][1].startswith("truncated.jpg: cannot decode: truncated or corrupt image data")
    assert by_item["text"][0] == "error" and "text file" in by_item["text"][1]
    assert by_item["sizes"][0] == "error" and "48×48" in by_item["sizes"][1] and "64×64" in by_item["sizes"][1]
    assert by_item["greymask"][0] == "warning" and "non-binary" in by_item["greymask"][1]
    assert by_item["nomask"][0] == "error" and "missing mask" in by_item["nomask"][1]
    assert by_item["README"][0] == "warning" and "not an image file name" in by_item["README"][1]
    assert "gray16" not in by_item and "rgba" not in by_item and "good" not in by_item
    assert report.unusable == {"truncated", "text", "sizes", "nomask"}
    assert not report.ok and report.items == 8
    assert any("8-bit" in note for note in report.conversions)
    assert report.conversions["RGBA → RGB (alpha dropped)"] == 1
    text = "\n".join(format_report(report))
    assert "4 of 8 items unusable" in text and "4 error(s), 2 warning(s)" in text


def test_check_of_generated_data_is_clean(synth_dir):
    report = check_dataset(open_dataset(f"synthetic:{synth_dir}"))
    assert report.ok and report.problems == []
    assert report.with_mask == 24 and report.size_range() == ((96, 96), (96, 96))
    stats = report.coverage_stats()
    assert 0 < stats["min"] and stats["max"] < 1 and stats["empty"] == 0


def test_check_detects_a_changed_generated_file(tmp_path):
    from skinedge.data.generate import write_synthetic

    write_synthetic(tmp_path, count=3, size=64, seed=1)
    target = tmp_path / "masks" / "synth_00001.png"
    save(target, np.zeros((64, 64), np.uint8))
    report = check_dataset(open_dataset(f"synthetic:{tmp_path}"))
    assert [(p.item, p.severity) for p in report.problems] == [("synth_00001", "error")]
    assert "differs from the sha256" in report.problems[0].message
