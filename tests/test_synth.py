"""The generated data: deterministic, exact masks, and varied like dermoscopy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinedge.data.generate import write_synthetic
from skinedge.data.synth import render_sample
from skinedge.errors import DataError


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    write_synthetic(tmp_path / "a", count=6, size=64, seed=1)
    write_synthetic(tmp_path / "b", count=6, size=64, seed=1)
    write_synthetic(tmp_path / "c", count=6, size=64, seed=2)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b and len(a) == 13
    assert a.keys() == c.keys() and a != c


def test_image_i_does_not_depend_on_count(tmp_path):
    write_synthetic(tmp_path / "few", count=2, size=64, seed=4)
    write_synthetic(tmp_path / "many", count=5, size=64, seed=4)
    for name in ("images/synth_00001.png", "masks/synth_00001.png"):
        assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()


def test_rerun_with_fewer_images_leaves_no_stale_files(tmp_path):
    write_synthetic(tmp_path, count=4, size=64, seed=1)
    write_synthetic(tmp_path, count=2, size=64, seed=1)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["synth_00000.png", "synth_00001.png"]
    assert json.loads((tmp_path / "manifest.json").read_text())["count"] == 2


def test_refuses_to_write_into_a_foreign_folder(tmp_path):
    (tmp_path / "thesis.docx").write_text("precious")
    with pytest.raises(DataError, match="not empty and was not made by"):
        write_synthetic(tmp_path, count=1, size=64, seed=0)
    assert (tmp_path / "thesis.docx").read_text() == "precious"
    with pytest.raises(DataError, match="--size"):
        write_synthetic(tmp_path / "new", count=1, size=8, seed=0)


def test_samples_look_like_dermoscopy_statistically():
    """Over 60 samples: varied sizes, lesions darker than skin, hairs, vignettes, border contact."""
    samples = [render_sample(128, 11, i) for i in range(60)]
    areas = np.array([s.mask.mean() for s in samples])
    assert areas.min() > 0.005 and areas.max() < 0.95
    assert areas.max() / areas.min() > 5                       # small and large lesions
    contrast = []
    for s in samples:
        luma = s.image.astype(float) @ [0.299, 0.587, 0.114]
        skin = luma[~s.mask & (luma > 30)]                      # skip vignette black
        contrast.append(np.median(skin) - np.median(luma[s.mask]))
        assert s.image.std() > 5                                # not a flat picture
    contrast = np.array(contrast)
    assert (contrast > 0).mean() > 0.9                          # lesions are darker than skin
    assert contrast.min() < np.percentile(contrast, 90) / 2     # some lesions are subtle
    touching = [s.mask[[0, -1], :].any() or s.mask[:, [0, -1]].any() for s in samples]
    assert 0 < sum(touching) < 40
    assert 5 < sum(s.info["hairs"] > 0 for s in samples) < 60
    assert 5 < sum(bool(s.info["vignette"]) for s in samples) < 55
    json.dumps([s.info for s in samples])                      # manifest-ready


@pytest.mark.parametrize("size", [32, 64, 257, 512])
def test_any_size_works(size):
    s = render_sample(size, 0, 3)
    assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (size, size) and s.mask.dtype == bool and s.mask.any()


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    write_synthetic(tmp_path, count=1, size=32, seed=0)
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode)
    assert mode == 0o666 & ~umask
