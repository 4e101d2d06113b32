"""Readers of the distributed layouts: right counts, right pairs, right problems."""

from __future__ import annotations

import numpy as np
import pytest

from layouts import make_derm7pt, make_isic2017, make_isic2018, make_ph2, sample
from skinedge.data import open_dataset, parse_spec
from skinedge.errors import DataError


def _assert_pairs(dataset, index_of, size=64):
    """Each item's mask is exactly the generator's mask for that item's image."""
    for item in dataset:
        expected = sample(index_of[item.id], size=size)
        assert item.image.dtype == np.uint8 and item.image.shape == (size, size, 3)
        assert item.mask is not None and item.mask.dtype == bool
        assert np.array_equal(item.mask, expected.mask), item.id


def test_isic2018_counts_pairs_and_official_split(tmp_path):
    index_of = make_isic2018(tmp_path, counts=(6, 2, 3))
    ds = open_dataset(f"isic2018:{tmp_path}")
    assert len(ds) == 11 and ds.has_masks and ds.kind == "isic2018"
    assert ds.problems == []  # ATTRIBUTION.txt / LICENSE.txt are expected, not problems
    splits = ds.official_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "val": 2, "test": 3}
    assert splits["val"] == ["ISIC_0000006", "ISIC_0000007"]
    _assert_pairs(ds, index_of)


def test_isic2017_capital_s_masks_and_superpixels_skipped(tmp_path):
    index_of = make_isic2017(tmp_path, count=4)
    ds = open_dataset(f"isic2018:{tmp_path}")
    assert ds.ids == [f"ISIC_{n:07d}" for n in range(4)]
    assert ds.problems == []
    assert ds.official_splits() is None  # training folder only
    for item in ds:
        assert np.array_equal(item.mask, sample(index_of[item.id]).mask)


def test_isic_stray_file_missing_mask_and_orphan_mask(tmp_path):
    make_isic2018(tmp_path, counts=(3, 1, 1))
    train_in = tmp_path / "ISIC2018_Task1-2_Training_Input"
    train_gt = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    (train_in / "holiday photo.jpg").write_bytes((train_in / "ISIC_0000000.jpg").read_bytes())
    (train_gt / "ISIC_0000001_segmentation.png").unlink()
    (train_gt / "ISIC_0009999_segmentation.png").write_bytes(
        (train_gt / "ISIC_0000000_segmentation.png").read_bytes())
    ds = open_dataset(f"isic2018:{tmp_path}")
    found = {(p.item, p.severity): p.message for p in ds.problems}
    assert "matches no ISIC image pattern" in found[("holiday photo.jpg", "warning")]
    assert "missing mask ISIC_0000001_segmentation.png" in found[("ISIC_0000001", "error")]
    assert "has no image" in found[("ISIC_0009999", "warning")]
    assert len(ds) == 5


def test_ph2_layout(tmp_path):
    index_of = make_ph2(tmp_path, count=5)
    for root in (tmp_path, tmp_path / "PH2Dataset", tmp_path / "PH2Dataset" / "PH2 Dataset images"):
        ds = open_dataset(f"ph2:{root}")
        assert ds.ids == ["IMD003", "IMD004", "IMD005", "IMD006", "IMD007"]
        assert ds.problems == []
    _assert_pairs(ds, index_of, size=72)
    assert [r.meta.get("diagnosis") for r in ds.refs[:3]] == ["common_nevus", "atypical_nevus", "melanoma"]


def test_ph2_missing_lesion_mask_is_an_error(tmp_path):
    make_ph2(tmp_path, count=3)
    lesion = tmp_path / "PH2Dataset" / "PH2 Dataset images" / "IMD004" / "IMD004_lesion" / "IMD004_lesion.bmp"
    lesion.unlink()
    ds = open_dataset(f"ph2:{tmp_path}")
    assert [(p.item, p.severity) for p in ds.problems] == [("IMD004", "error")]
    assert "missing mask" in ds.problems[0].message


def test_derm7pt_image_only_with_official_split_and_case_groups(tmp_path):
    index_of = make_derm7pt(tmp_path, count=9)
    ds = open_dataset(f"derm7pt:{tmp_path}")
    assert len(ds) == 9 and not ds.has_masks
    item = ds[0]
    assert item.mask is None
    assert np.array_equal(item.image.shape, sample(index_of[item.id]).image.shape)
    splits = ds.official_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "val": 2, "test": 2}
    groups = {r.id: r.group for r in ds.refs}
    assert groups["NEL000"] == groups["Aal001"] == "case1"


def test_folder_layout_with_mask_suffixes_and_groups(tmp_path):
    for n, suffix in enumerate(["", "_mask", "_segmentation"]):
        s = sample(400 + n)
        from layouts import mask_u8, save
        save(tmp_path / "images" / f"case{n}.jpg", s.image, "JPEG")
        save(tmp_path / "masks" / f"case{n}{suffix}.png", mask_u8(s.mask))
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    (tmp_path / "groups.csv").write_text("id,group\ncase0,patA\ncase1,patA\ncase2,patB\n")
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.ids == ["case0", "case1", "case2"]
    assert all(ref.mask_path is not None for ref in ds.refs)
    assert [r.group for r in ds.refs] == ["patA", "patA", "patB"]
    assert [(p.item, p.severity) for p in ds.problems] == [("notes.txt", "warning")]


def test_synthetic_reader_reads_generated_set(synth_dir):
    ds = open_dataset(f"synthetic:{synth_dir}")
    assert len(ds) == 24 and ds.has_masks and ds.problems == []
    assert all(len(ref.meta["image_sha256"]) == 64 for ref in ds.refs)
    assert len(open_dataset(f"folder:{synth_dir}")) == 24


@pytest.mark.parametrize("spec, message", [
    ("isic2018", "must be KIND:PATH"),
    ("kaggle:/x", "unknown dataset kind 'kaggle'"),
    ("folder:/nonexistent/skinedge", "dataset folder not found: /nonexistent/skinedge"),
    ("isic2018:/nonexistent/x", "ISIC dataset folder not found"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        open_dataset(spec)


def test_empty_and_wrong_folders(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="no images in"):
        open_dataset(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="no ISIC input folder"):
        open_dataset(f"isic2018:{tmp_path}")
    with pytest.raises(DataError, match="no PH2 case folders"):
        open_dataset(f"ph2:{tmp_path}")
    with pytest.raises(DataError, match="no Derm7pt meta/meta.csv"):
        open_dataset(f"derm7pt:{tmp_path}")
    with pytest.raises(DataError, match="has no manifest.json"):
        open_dataset(f"synthetic:{tmp_path}")


def test_parse_spec_expands_user():
    kind, path = parse_spec("folder:~/data")
    assert kind == "folder" and "~" not in str(path)
