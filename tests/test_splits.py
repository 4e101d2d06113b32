from __future__ import annotations

import json

import pytest

from layouts import make_derm7pt, make_isic2018
from skinedge.data import open_dataset
from skinedge.data.dataset import Dataset, ItemRef
from skinedge.data.splits import make_split, read_split, write_split
from skinedge.errors import DataError


def fake_dataset(n_items: int, per_group: int = 1) -> Dataset:
    refs = [ItemRef(f"img{i:04d}", None, None, group=f"pat{i // per_group}") for i in range(n_items)]
    return Dataset("folder:/fake", "folder", None, refs, True)


def test_random_split_is_seeded_group_aware_and_near_70_15_15(tmp_path):
    ds = fake_dataset(600, per_group=3)
    split = make_split(ds, seed=5, strategy="random")
    counts = {k: len(v) for k, v in split.parts.items()}
    assert sum(counts.values()) == 600
    assert abs(counts["train"] - 420) <= 3 and abs(counts["val"] - 90) <= 3
    group_of = {r.id: r.group for r in ds.refs}
    seen = [{group_of[i] for i in ids} for ids in split.parts.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert make_split(ds, seed=5, strategy="random").parts == split.parts
    assert make_split(ds, seed=6, strategy="random").parts != split.parts
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert write_split(split, a) == write_split(make_split(ds, seed=5, strategy="random"), b)
    assert a.read_bytes() == b.read_bytes()
    assert read_split(a).parts == split.parts
    assert json.loads(a.read_text())["counts"] == counts


def test_tiny_datasets_still_get_three_nonempty_parts():
    for n in (3, 4, 5, 7):
        parts = make_split(fake_dataset(n), seed=0, strategy="random").parts
        assert all(parts.values()), (n, parts)


def test_too_small_to_split():
    with pytest.raises(DataError, match="too small to split"):
        make_split(fake_dataset(4, per_group=2), strategy="random")


def test_official_splits_are_used_when_present(tmp_path):
    make_isic2018(tmp_path / "isic", counts=(4, 1, 2))
    split = make_split(open_dataset(f"isic2018:{tmp_path / 'isic'}"))
    assert split.strategy == "official"
    assert [len(split.parts[k]) for k in ("train", "val", "test")] == [4, 1, 2]
    make_derm7pt(tmp_path / "d7", count=9)
    d7 = open_dataset(f"derm7pt:{tmp_path / 'd7'}")
    assert make_split(d7).strategy == "official"
    assert make_split(d7, strategy="random").strategy == "random"


def test_official_requested_but_absent(synth_dir):
    with pytest.raises(DataError, match="no official train/val/test split"):
        make_split(open_dataset(f"synthetic:{synth_dir}"), strategy="official")


def test_read_split_errors(tmp_path):
    with pytest.raises(DataError, match="split file not found"):
        read_split(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a skinedge split file"):
        read_split(tmp_path / "bad.json")
