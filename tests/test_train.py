"""Training both networks on ISIC- and PH2-shaped trees: checkpoints, resume, and every stop path.

Networks are tiny (resnet18 encoder at 64², a 2-block generator) so that each
test takes seconds; the code paths are the ones the paper-size runs take.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from layouts import make_derm7pt, make_isic2018, make_ph2
from skinedge.errors import DataError, SkinedgeError
from skinedge.train import seg as seg_module
from skinedge.models.checkpoint import CheckpointError, load_checkpoint
from skinedge.train.loop import TrainingStopped
from skinedge.models.load import load_generator, load_segmenter
from skinedge.train.seg import SegConfig, train_seg
from skinedge.train.sr import SRConfig, train_sr


@pytest.fixture(scope="module")
def isic(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("isic")
    make_isic2018(root, counts=(8, 2, 3))
    return f"isic2018:{root}"


@pytest.fixture(scope="module")
def ph2(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("ph2")
    make_ph2(root, count=10)
    return f"ph2:{root}"


def seg_config(data: str, out: Path, **kw) -> SegConfig:
    base = dict(encoder="resnet18", size=64, batch=2, epochs=2, lr=1e-3, device="cpu", bn_batches=2)
    return SegConfig(data=data, out=out, **{**base, **kw})


def sr_config(data: str, out: Path, **kw) -> SRConfig:
    base = dict(blocks=2, features=16, hr_size=32, batch=2, epochs=1, device="cpu", val_limit=2)
    return SRConfig(data=data, out=out, **{**base, **kw})


def test_train_seg_on_isic_tree_writes_self_describing_checkpoints(isic, tmp_path):
    result = train_seg(seg_config(isic, tmp_path))
    assert result["steps"] == 8 and 0.0 <= result["best"]["dice"] <= 1.0
    payload = load_checkpoint(tmp_path / "seg-last.pt", "seg")
    assert payload["arch"] == {"encoder": "resnet18", "dropout": 0.2}
    assert payload["data"]["split_strategy"] == "official"  # ISIC's own folders
    assert payload["data"]["split_sha256"] == hashlib.sha256((tmp_path / "split.json").read_bytes()).hexdigest()
    assert payload["progress"]["epoch"] == 2 and len(payload["progress"]["history"]) == 2
    assert set(payload["metrics"]) >= {"dice", "iou", "precision", "recall", "loss"}
    assert payload["config"]["lr"] == 1e-3 and payload["io"]["size"] == 64
    model, _ = load_segmenter(tmp_path / "seg-best.pt")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(SkinedgeError, match="already holds a seg run"):
        train_seg(seg_config(isic, tmp_path))


def test_train_sr_both_phases_on_ph2_tree(ph2, tmp_path):
    results = train_sr(sr_config(ph2, tmp_path, phase="both"))
    assert set(results) == {"pretrain", "gan"}
    for name in ("pretrain", "gan"):
        metrics = load_checkpoint(tmp_path / f"sr-{name}-best.pt", "sr")["metrics"]
        assert math.isfinite(metrics["psnr_y"]) and math.isfinite(metrics["bicubic_psnr_y"])
        assert "lesion_psnr_y" in metrics
    gan = load_checkpoint(tmp_path / "sr-gan-last.pt", "sr")
    assert {"model", "discriminator", "opt_model", "opt_discriminator"} <= set(gan["state"])
    generator, _ = load_generator(tmp_path / "sr-gan-best.pt")
    assert generator(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_resume_continues_exactly_where_it_stopped(isic, tmp_path):
    straight = train_seg(seg_config(isic, tmp_path / "a", dropout=0.0, epochs=2))
    train_seg(seg_config(isic, tmp_path / "b", dropout=0.0, epochs=2, max_steps=3))
    assert load_checkpoint(tmp_path / "b" / "seg-last.pt")["progress"]["step"] == 3
    resumed = train_seg(seg_config(isic, tmp_path / "b", dropout=0.0, epochs=2, resume=True))
    assert resumed["steps"] == straight["steps"] == 8
    a = load_checkpoint(tmp_path / "a" / "seg-last.pt")["state"]["model"]
    b = load_checkpoint(tmp_path / "b" / "seg-last.pt")["state"]["model"]
    for key in a:
        if a[key].dtype.is_floating_point and "running" not in key:
            assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_ctrl_c_leaves_a_resumable_checkpoint(isic, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = seg_module.seg_loss

    def loss_then_ctrl_c(logits, target):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, caught by the handler
        return real_loss(logits, target)

    monkeypatch.setattr(seg_module, "seg_loss", loss_then_ctrl_c)
    with pytest.raises(TrainingStopped, match="interrupted at step 3.*--resume") as stop:
        train_seg(seg_config(isic, tmp_path, epochs=3))
    assert stop.value.exit_code == 130
    assert load_checkpoint(tmp_path / "seg-last.pt", "seg")["progress"]["step"] == 3
    monkeypatch.setattr(seg_module, "seg_loss", real_loss)
    assert train_seg(seg_config(isic, tmp_path, epochs=3, resume=True))["steps"] == 12


def test_nan_loss_stops_and_keeps_last_good_checkpoint(isic, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = seg_module.seg_loss

    def nan_at_step_6(logits, target):
        calls["n"] += 1
        loss = real_loss(logits, target)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(seg_module, "seg_loss", nan_at_step_6)
    with pytest.raises(TrainingStopped, match="loss became nan at step 5.*seg-last.pt"):
        train_seg(seg_config(isic, tmp_path, epochs=3))
    payload = load_checkpoint(tmp_path / "seg-last.pt", "seg")
    assert payload["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in payload["state"]["model"].values() if v.is_floating_point())


def test_disk_full_while_saving_keeps_the_old_checkpoint(isic, tmp_path, monkeypatch):
    train_seg(seg_config(isic, tmp_path, epochs=1))
    before = (tmp_path / "seg-last.pt").read_bytes()
    import skinedge.atomic

    real_fsync, calls = os.fsync, {"n": 0}

    def no_space(fd):  # the run's config still fits; the checkpoint does not
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(skinedge.atomic.os, "fsync", no_space)
    with pytest.raises(CheckpointError, match="disk full; the previous checkpoint there is intact"):
        train_seg(seg_config(isic, tmp_path, epochs=2, resume=True))
    assert (tmp_path / "seg-last.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_bad_checkpoints(isic, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_segmenter(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable skinedge checkpoint"):
        load_segmenter(tmp_path / "junk.pt")
    train_sr(sr_config(isic, tmp_path, phase="pretrain", max_steps=1))
    with pytest.raises(CheckpointError, match="holds a SR generator .*not a segmenter"):
        load_segmenter(tmp_path / "sr-pretrain-best.pt")
    payload = load_checkpoint(tmp_path / "sr-pretrain-best.pt")
    payload["arch"]["features"] = 32  # as if written by a version with other shapes
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="do not fit this network"):
        load_generator(tmp_path / "other.pt")


def test_dataset_without_masks_cannot_train_seg(tmp_path):
    make_derm7pt(tmp_path / "d7", count=9)
    with pytest.raises(DataError, match="has no segmentation masks"):
        train_seg(seg_config(f"derm7pt:{tmp_path / 'd7'}", tmp_path / "run"))


def test_dataset_too_small_for_the_split(tmp_path):
    from layouts import mask_u8, sample, save

    for n in range(2):
        s = sample(n)
        save(tmp_path / "data" / "images" / f"x{n}.png", s.image)
        save(tmp_path / "data" / "masks" / f"x{n}.png", mask_u8(s.mask))
    with pytest.raises(DataError, match="too small to split"):
        train_seg(seg_config(f"folder:{tmp_path / 'data'}", tmp_path / "run"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_both_networks_on_cuda(isic, tmp_path):
    result = train_seg(seg_config(isic, tmp_path, device="cuda", epochs=1))
    assert result["steps"] == 4
    results = train_sr(sr_config(isic, tmp_path, device="cuda", phase="both", max_steps=2))
    assert math.isfinite(results["gan"]["best"]["psnr_y"])
    generator, _ = load_generator(tmp_path / "sr-gan-best.pt", device="cuda")
    assert next(generator.parameters()).is_cuda


def test_cuda_request_without_a_gpu_is_a_clear_error(isic, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SkinedgeError, match="--device cuda: no CUDA GPU"):
        train_seg(seg_config(isic, tmp_path, device="cuda"))


def test_both_networks_train_on_real_isic_images_at_their_1024_px(real_isic, tmp_path):
    """SR takes random HR crops of the 1024-px images as they are (no whole-image resize), with the bicubic skip;
    the segmenter reads the same layout; both validate in eval mode on the real held-out part."""
    result = train_sr(SRConfig(real_isic, tmp_path / "run", phase="pretrain", blocks=2, features=16, hr_size=96,
                               batch=2, max_steps=2, device="cpu", val_limit=1, bicubic_skip=True))
    assert result["pretrain"]["steps"] == 2 and math.isfinite(result["pretrain"]["last"]["lesion_psnr_y"])
    generator, payload = load_generator(tmp_path / "run" / "sr-pretrain-best.pt")
    assert payload["arch"]["bicubic_skip"] and payload["data"]["spec"] == real_isic
    seg = train_seg(SegConfig(real_isic, tmp_path / "run", encoder="resnet18", size=64, batch=2, max_steps=1,
                              device="cpu", bn_batches=1))
    assert 0.0 <= seg["last"]["dice"] <= 1.0
