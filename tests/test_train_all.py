"""``skinedge train all``: pooled data, the fingerprint's plan, the decoded cache, resume after kills, eval --models."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skinedge.data import open_dataset
from skinedge.data.generate import write_synthetic
from skinedge.data.pool import pool_document, stratified_split
from skinedge.models.checkpoint import load_checkpoint
from skinedge.models.srgan import Generator
from skinedge.quality import checkerboard_energy
from skinedge.train.all.cache import Cache, build_cache
from skinedge.train.all.command import STAGES
from skinedge.train.all.fingerprint import make_plan, set_facts
from skinedge.train.all import sources
from skinedge.train.all.sources import Prefetcher, SRSource, balanced_ids

CLI = [sys.executable, "-m", "skinedge"]


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("pool")
    write_synthetic(root / "a", count=14, size=64, seed=1)
    write_synthetic(root / "b", count=12, size=80, seed=2)
    specs = [f"synthetic:{root / 'a'}", f"synthetic:{root / 'b'}"]
    (root / "pool.json").write_text(json.dumps(pool_document(specs)))
    return root, specs


def test_pool_prefixes_ids_and_split_draws_from_every_set(two_sets):
    root, _ = two_sets
    dataset = open_dataset(f"pool:{root / 'pool.json'}")
    assert len(dataset) == 26 and {i.split(":")[0] for i in dataset.ids} == {"a", "b"}
    split = stratified_split(dataset, seed=0)
    for part in ("train", "val", "test"):
        assert {i.split(":")[0] for i in split.parts[part]} == {"a", "b"}, part
    assert sorted(sum(split.parts.values(), [])) == sorted(dataset.ids)
    assert stratified_split(dataset, seed=0).parts == split.parts  # reproducible


def test_plan_follows_the_data(two_sets):
    root, _ = two_sets
    facts = set_facts(open_dataset(f"pool:{root / 'pool.json'}"), log=lambda m: None)
    assert [f.label for f in facts] == ["a", "b"] and all(f.masks == f.images for f in facts)
    plan = make_plan(facts, "cpu")
    assert plan.seg_size == 64 and plan.sr_crop == 64 and plan.seg_encoder == "resnet18"
    assert len(plan.reasons) >= 5 and all(isinstance(r, str) and r for r in plan.reasons)


def test_a_small_set_is_drawn_more_often_than_its_size_and_every_item_at_least_once():
    ids = [f"crops:{k}" for k in range(900)] + [f"whole:{k}" for k in range(100)]
    drawn = balanced_ids(ids)
    share = sum(i.startswith("whole:") for i in drawn) / len(drawn)
    assert share == pytest.approx(10 / (10 + 30), abs=0.01)  # √100 : √900, where by size it would be 0.10
    assert set(drawn) == set(ids) and drawn.count("crops:0") == 1  # the big set once, nothing dropped
    assert balanced_ids(ids, power=1.0) == ids  # size-proportional: the list itself
    assert balanced_ids(["a", "b", "c"]) == ["a", "b", "c"]  # not pooled: unchanged


def test_cache_skips_a_corrupt_photo_with_one_line(tmp_path):
    write_synthetic(tmp_path / "d", count=6, size=64, seed=4)
    victim = sorted((tmp_path / "d" / "images").iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated file: header readable, pixels not
    dataset = open_dataset(f"synthetic:{tmp_path / 'd'}")
    lines: list[str] = []
    index = build_cache(dataset.spec, dataset.ids, tmp_path / "cache", 64, 64, log=lines.append, workers=1)
    assert len(index["items"]) == 5 and index["skipped"] == [victim.stem]
    assert len(lines) == 1 and victim.stem in lines[0]
    cache = Cache(tmp_path / "cache")
    good = dataset.ids[0]
    hr, mask = cache.sr(good)
    item = dataset.subset([good])[0]
    assert np.array_equal(hr, item.image) and np.array_equal(mask, item.mask)


def test_prefetched_batches_equal_the_ones_built_in_process(two_sets, tmp_path):
    root, _ = two_sets
    spec = f"pool:{root / 'pool.json'}"
    ids = open_dataset(spec).ids
    build_cache(spec, ids, tmp_path / "cache", 64, 64, workers=1)
    source = SRSource(tmp_path / "cache", ids, 32, seed=3)
    ahead = Prefetcher(source, 4, 3, start=5, workers=1)
    for step in range(5, 9):
        indices, epoch = ahead.steps.indices(step)
        lr, hr = ahead.get(indices, epoch, step)
        lr2, hr2 = source.batch(indices, epoch)
        assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    ahead.close()


_CUT_HAND_OVER = """
import os, socket, sys, time
from multiprocessing import resource_sharer
if sys.argv[1] == "worker":
    from skinedge.train.all.sources import _quiet_when_orphaned
    _quiet_when_orphaned(0)
read_end, _ = os.pipe()
address, _ = resource_sharer.DupFd(read_end)._id  # a batch's fd, offered as a worker offers it
for read_it in (False, True):  # killed with the sharer's challenge unread (a reset) or read (the stream ends)
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(address)
    time.sleep(0.3)
    if read_it:
        peer.recv(4096)
    peer.close()
    time.sleep(0.3)
sys.excepthook(ValueError, ValueError("other errors still show"), None)
"""


def test_a_worker_says_nothing_when_the_training_process_is_killed_mid_hand_over():
    """CI saw it: a SIGKILL while a worker handed over a batch printed the resource sharer's ConnectionResetError
    traceback. The real sharer, its peer gone mid-handshake: a plain process prints it, a worker does not."""
    def stderr(role):
        return subprocess.run([sys.executable, "-c", _CUT_HAND_OVER, role], capture_output=True, text=True,
                              timeout=60).stderr
    plain = stderr("plain")
    assert "ConnectionResetError" in plain and "EOFError" in plain
    quiet = stderr("worker")
    assert "Traceback" not in quiet and "other errors still show" in quiet


def test_the_camera_plane_of_a_batch_says_which_protocol_made_each_lr(two_sets, tmp_path):
    root, _ = two_sets
    spec = f"pool:{root / 'pool.json'}"
    ids = open_dataset(spec).ids
    build_cache(spec, ids, tmp_path / "cache", 64, 64, workers=1)
    plain = SRSource(tmp_path / "cache", ids, 32, seed=3, clean_share=0.5)
    planes = SRSource(tmp_path / "cache", ids, 32, seed=3, clean_share=0.5, camera_plane=True)
    indices = list(range(12))
    flags = [plain.pair(i, 0)[2] for i in indices]
    assert set(flags) == {0.0, 1.0}  # both protocols in one batch
    (lr3, hr3), (lr4, hr4) = plain.batch(indices), planes.batch(indices)
    assert lr3.shape[1] == 3 and lr4.shape[1] == 4
    assert torch.equal(lr4[:, :3], lr3) and torch.equal(hr4, hr3)
    assert lr4[:, 3].amin(dim=(1, 2)).tolist() == flags == lr4[:, 3].amax(dim=(1, 2)).tolist()
    for i, flag in zip(indices, flags):  # a camera LR is not the clean down-scale of its HR (inside: see below)
        lr, hr, _ = plain.pair(i, 0)
        clean = np.asarray(Image.fromarray(hr).resize((8, 8), Image.BICUBIC))
        assert np.array_equal(lr[2:-2, 2:-2], clean[2:-2, 2:-2]) == (flag == 0.0)


def test_an_lr_crop_is_cut_from_a_region_degraded_whole_at_any_jpeg_grid_phase(two_sets, tmp_path, monkeypatch):
    """As a camera frame is compressed whole and the runtime enhances a region anywhere in it, the 8×8 grid meets
    the generator's input at every phase; the HR crop stays the LR crop's ×4 area."""
    root, _ = two_sets
    spec = f"pool:{root / 'pool.json'}"
    ids = open_dataset(spec).ids
    build_cache(spec, ids, tmp_path / "cache", 64, 64, workers=1)
    regions = []

    def where(region, how, seed):  # an LR whose pixels say where they are in the degraded region
        regions.append(region.shape[:2])
        h, w = region.shape[0] // 4, region.shape[1] // 4
        return np.stack([*np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), np.zeros((h, w), int)], -1)

    monkeypatch.setattr(sources, "degrade", where)
    source = SRSource(tmp_path / "cache", ids, 32, seed=3)
    phases = set()
    for i in range(80):
        lr, hr, _ = source.pair(i, 0)
        assert lr.shape == (8, 8, 3) and hr.shape == (32, 32, 3)
        phases.add((int(lr[0, 0, 0]), int(lr[0, 0, 1])))
    assert set(regions) == {(64, 64)}  # one JPEG block (8 LR px) wider than the crop
    assert {y for y, _ in phases} == set(range(8)) == {x for _, x in phases}
    monkeypatch.undo()
    clean = SRSource(tmp_path / "cache", ids, 32, seed=3, clean_share=1.0)
    for i in range(6):  # the HR is the LR's area: inside the crop, the LR is the HR's plain bicubic ÷4
        lr, hr, _ = clean.pair(i, 0)
        down = np.asarray(Image.fromarray(hr).resize((8, 8), Image.BICUBIC))
        assert np.array_equal(lr[2:-2, 2:-2], down[2:-2, 2:-2])


def test_icnr_generator_paints_no_checkerboard_at_init():
    torch.manual_seed(0)
    generator = Generator(blocks=2, features=16, bicubic_skip=False).eval()
    for block in generator.upsample:
        out = block.shuffle(block.conv(torch.randn(1, 16, 8, 8)))
        assert torch.equal(out[..., 0::2, 0::2], out[..., 1::2, 1::2])  # nearest-neighbour structure
    x = torch.rand(1, 3, 24, 24) * 0.2 + 0.4
    with torch.no_grad():
        y = generator(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    truth = np.kron(x[0].permute(1, 2, 0).numpy(), np.ones((4, 4, 1))) * 255
    assert checkerboard_energy(y) < 0.05 + checkerboard_energy(truth)


def test_the_bn_free_generator_starts_as_bicubic_and_loads_like_the_papers(tmp_path):
    import torch.nn.functional as F

    from skinedge.models.checkpoint import save_checkpoint
    from skinedge.models.load import load_generator

    torch.manual_seed(0)
    arch = {"blocks": 2, "features": 16, "scale": 4, "bicubic_skip": True, "norm": False, "zero_tail": True}
    generator = Generator(**arch).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():  # the untrained network is exactly bicubic: training only adds
        assert torch.equal(generator(x), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))
    paper = Generator(blocks=2, features=16)
    names = lambda g: [k for k in g.state_dict() if "running" not in k and "num_batches" not in k]  # noqa: E731
    assert set(names(generator)) <= set(names(paper))  # the same layer names: no BN, nothing renamed
    with torch.no_grad():
        generator.tail.weight.normal_()
    path = tmp_path / "g.pt"
    save_checkpoint(path, "sr", arch, {"model": generator.state_dict()})
    loaded, _ = load_generator(path, "cpu")
    with torch.no_grad():
        assert torch.allclose(loaded(x), generator(x))


def _run(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _done(state: Path) -> list[str]:
    try:
        return list(json.loads(state.read_text())["done"])
    except (OSError, ValueError, KeyError):
        return []


@pytest.mark.slow
def test_train_all_resumes_after_kills_and_makes_a_models_directory(two_sets, tmp_path):
    """Killed (SIGKILL) at a random point of each stage from the cache on; each rerun picks up where it was: the
    split never changes and no finished stage runs twice. Then eval --models and enhance on the result."""
    _, specs = two_sets
    out = tmp_path / "models"
    args = ["train", "all", *sum((["--data", s] for s in specs), []), "--out", str(out), "--minutes", "0.6",
            "--gate-images", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    state = out / "train" / "state.json"
    split_sha = None
    killed_in = []
    rng = np.random.default_rng(0)
    for target in ("cache", "seg", "sr", "export", "calibrate", "report"):
        done_before = _done(state)
        proc = _run(args, env)
        before = STAGES[STAGES.index(target) - 1]
        deadline = time.monotonic() + 600
        while before not in _done(state) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 0.3 if target in ("cache", "export") else 2.0)))  # inside the stage
        running = next((s for s in STAGES if s not in _done(state)), None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_in.append(running)
        log = proc.communicate()[0]
        assert "Traceback" not in log, log
        for finished in done_before:  # what an earlier run finished is never run again
            assert f"[{finished}] finished earlier" in log, (finished, log)
        sha = hashlib.sha256((out / "train" / "split.json").read_bytes()).hexdigest()
        assert split_sha in (None, sha)
        split_sha = sha
    assert {"seg", "sr", "calibrate"} <= set(killed_in), killed_in
    done_final_before = _done(state)
    final = subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=900)
    assert final.returncode == 0, final.stdout + final.stderr
    doc = json.loads(state.read_text())
    assert set(doc["done"]) == set(STAGES)
    for stage in STAGES[:STAGES.index(killed_in[-1])]:
        assert f"[{stage}] finished earlier" in final.stdout  # never run again
    assert final.stdout.count("] finished earlier") == len([s for s in STAGES if s in done_final_before])
    assert hashlib.sha256((out / "train" / "split.json").read_bytes()).hexdigest() == split_sha
    seg_log = [json.loads(line) for line in (out / "train" / "seg-log.jsonl").read_text().splitlines()]
    assert seg_log[-1]["elapsed_s"] >= seg_log[0]["elapsed_s"]
    for name, kind in (("seg", "seg"), ("sr-pretrain", "sr")):  # checkpoints of the weight average, live beside it
        held = load_checkpoint(out / "train" / f"{name}-last.pt", kind)
        assert "exponential moving average" in held["config"]["weights"]
        assert any(not torch.equal(held["state"]["model"][k], v) for k, v in held["state"]["live"].items())
    manifest = json.loads((out / "models.json").read_text())
    assert {"fp32", "fp16"} <= set(manifest["networks"]["sr"]["variants"])
    card = (out / "MODEL_CARD.md").read_text()
    for heading in ("## Intended use", "## Training data", "## Split", "## Held-out metrics", "## By skin tone",
                    "## Known failure modes"):
        assert heading in card
    assert "not a diagnosis" in card and "checkerboard" in card
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["images"] and all("dice" in r for r in report["images"])
    assert not (out / "train" / "cache").exists()

    evaluated = subprocess.run(CLI + ["eval", "--models", str(out), "--out", str(tmp_path / "eval"),
                                      "--precision", "fp32", "--backend", "onnxruntime", "--limit", "3"],
                               capture_output=True, text=True, env=env, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "held-out" in evaluated.stdout and (tmp_path / "eval" / "report.json").is_file()
    enhanced = subprocess.run(CLI + ["enhance", str(next((Path(specs[0].split(":", 1)[1]) / "images").iterdir())),
                                     "--models", str(out), "--out", str(tmp_path / "enh")],
                              capture_output=True, text=True, env=env, timeout=600)
    assert enhanced.returncode == 0, enhanced.stderr
    assert "model card: held-out whole photos" in enhanced.stdout + enhanced.stderr


def test_train_all_refuses_a_folder_it_did_not_make(tmp_path, two_sets):
    _, specs = two_sets
    (tmp_path / "mine.txt").write_text("keep me")
    result = subprocess.run(CLI + ["train", "all", "--data", specs[0], "--out", str(tmp_path), "--minutes", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "not empty" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
