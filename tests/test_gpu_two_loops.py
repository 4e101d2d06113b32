"""The live view's two loops on GpuPipeline (``skinedge.runtime.gpu.two_loops``) against the CPU Pipeline's.

On the fake driver of ``fake_cuda.py`` (the real kernel sources built with g++): the SR loop's halves
(``segment``, ``generate_frame``) and the display's (``enhance`` with an earlier SR) give the CPU two-loop
pictures to 1 LSB, on two streams; the hand-over between the streams is ordered by events; a result whose slot
the SR loop has reused shows bicubic, never another frame's SR; the whole of ``skinedge run``'s two-loop set-up
runs on it with real threads. ``-m gpu``: the same comparison with torch networks on a real GPU.
"""

from __future__ import annotations

import copy
import time
from contextlib import ExitStack

import numpy as np
import pytest
from fake_runners import FnRunner
from test_gpu_pipeline import (  # noqa: F401 - host and fake are fixtures
    OPTIONS,
    S,
    TILE,
    HostNet,
    Lesions,
    fake,
    fake_sr,
    frame,
    host,
    lesion_frame,
    make_manifest,
    tiny_nets,
    torch_cuda,
)

from skinedge.runtime.gpu import pipeline as gp
from skinedge.runtime.gpu.two_loops import DeviceSR
from skinedge.runtime.live.command import LiveSettings, live_pipeline
from skinedge.runtime.live.display import TwoLoopDisplay
from skinedge.runtime.live.motion import shift_mask
from skinedge.runtime.pipeline.host import BICUBIC_NOTE, EarlierSR, Pipeline
from skinedge.runtime.pipeline.mask import MaskSettings
from skinedge.runtime.pipeline.projection import Fidelity

MOVE = (3, -2)  # (dx, dy) of the camera between the SR loop's frame and the one shown


@pytest.fixture()
def driver(fake):  # noqa: F811 - the fake CUDA driver of test_gpu_pipeline, installed
    return fake


def moved(image: np.ndarray, dx: int, dy: int, seed: int) -> np.ndarray:
    """The frame a moment later: the scene moved by (dx, dy), with the camera's fresh noise."""
    rng = np.random.default_rng(seed)
    shifted = np.roll(image, (dy, dx), axis=(0, 1)).astype(int)
    return np.clip(shifted + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)


def both(mode="roi", settings=MaskSettings(), max_frame=(64, 96)):
    lesions = Lesions(S)
    manifest = make_manifest(S)
    cpu = Pipeline(FnRunner(lesions, "image", "logits"), FnRunner(fake_sr, "lr", "sr"), manifest, mode, settings,
                   **OPTIONS)
    gpu = gp.GpuPipeline(HostNet(lesions), HostNet(fake_sr), manifest, mode, settings, max_frame=max_frame,
                         arch="sm_87", **OPTIONS)
    return lesions, cpu, gpu


@pytest.mark.parametrize("mode", ["roi", "full"])
@pytest.mark.parametrize("disc,tiled", [((0.5, 0.5, 0.08), False), ((0.45, 0.55, 0.3), True)], ids=["one", "tiled"])
def test_two_loop_halves_on_the_gpu_equal_the_cpu_two_loops(driver, mode, disc, tiled):
    lesions, cpu, gpu = both(mode, MaskSettings(margin_px=2))
    lesions.set(*disc)
    seen = frame(64, 96, seed=1)
    now = moved(seen, *MOVE, seed=2)
    with cpu, gpu:
        lm_cpu, lm_gpu = cpu.segment(seen, {}, time.perf_counter()), gpu.segment(seen, t := {}, time.perf_counter())
        assert lm_gpu.found and lm_gpu.roi == lm_cpu.roi and np.array_equal(lm_gpu.mask, lm_cpu.mask)
        assert {"preprocess", "seg", "mask"} <= set(t) and all(v >= 0 for v in t.values())
        assert (lm_gpu.roi[2] > TILE or lm_gpu.roi[3] > TILE) == tiled
        sr_cpu, sr_gpu = cpu.generate_frame(seen, lm_cpu), gpu.generate_frame(seen, lm_gpu)
        assert isinstance(sr_gpu.sr, DeviceSR) and sr_gpu.size == sr_cpu.size == lm_cpu.roi[2:]
        assert sr_gpu.sr.shape == sr_cpu.sr.shape
        sr_launches = {stream for _, stream in driver.launches}
        driver.launches.clear()
        here = shift_mask(lm_cpu, MOVE, now.shape[:2])
        want = cpu.enhance(now, here, {}, time.perf_counter(), earlier=sr_cpu)
        got = gpu.enhance(now, here, t := {}, time.perf_counter(), earlier=sr_gpu)
        assert sr_launches == {int(gpu.stream)}
        assert {stream for _, stream in driver.launches} == {int(gpu.display.stream)} != {int(gpu.stream)}
    assert got.found and got.roi == want.roi == here.roi and got.note == want.note == ""
    assert got.image.shape == want.image.shape
    diff = np.abs(got.image.astype(int) - want.image.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, diff.max()
    assert got.residual == pytest.approx(want.residual, rel=1e-4, abs=1e-4)
    assert t["sr"] == 0.0 and t["total"] == pytest.approx(t["project"] + t["composite"]) and not got.computed
    bicubic = both(mode, MaskSettings(margin_px=2))[2]
    with bicubic:  # the SR changed the picture: it is not the bicubic up-scale that a missing SR gives
        plain = bicubic.enhance(now, here, {}, time.perf_counter(), earlier=EarlierSR(None))
    assert plain.note == BICUBIC_NOTE and np.abs(plain.image.astype(int) - got.image).max() > 8


def test_a_result_whose_slot_the_sr_loop_reused_shows_bicubic(driver):
    lesions, _, gpu = both()
    lesions.set(0.5, 0.5, 0.15)
    frames = [frame(64, 96, seed=i) for i in range(4)]
    with gpu:
        lm = gpu.segment(frames[0], {}, time.perf_counter())
        first = gpu.generate_frame(frames[0], lm)
        newer = [gpu.generate_frame(f, lm) for f in frames[1:3]]  # two slots: the third write reuses the first's
        assert newer[-1].sr.index == first.sr.index and newer[-1].sr.generation > first.sr.generation
        stale = gpu.enhance(frames[3], lm, {}, time.perf_counter(), earlier=first)
        fresh = gpu.enhance(frames[3], lm, {}, time.perf_counter(), earlier=newer[-1])
        plain = gpu.enhance(frames[3], lm, {}, time.perf_counter(), earlier=EarlierSR(None))
        odd = gpu.enhance(frames[3], lm, {}, time.perf_counter(), earlier=EarlierSR(DeviceSR(
            newer[-1].sr.index, newer[-1].sr.generation, (1, 3, 8, 8))))  # another ROI size: cannot be placed
    assert stale.note == plain.note == odd.note == BICUBIC_NOTE and fresh.note == ""
    assert stale.residual is None and fresh.residual is not None
    assert np.array_equal(stale.image, plain.image) and np.array_equal(odd.image, plain.image)
    assert np.abs(fresh.image.astype(int) - plain.image).max() > 8


def test_the_hand_over_between_the_streams_is_ordered_by_events(driver):
    """SR stream: wait for the display's last copy out of a slot (``read``) before writing it, then ``ready``
    recorded and waited for on the host; display stream: wait for ``ready`` before copying, record ``read``."""
    lesions, _, gpu = both()
    lesions.set(0.5, 0.5, 0.15)
    with gpu:
        image = frame(64, 96)
        lm = gpu.segment(image, {}, time.perf_counter())
        got = [gpu.generate_frame(image, lm)]
        gpu.enhance(image, lm, {}, time.perf_counter(), earlier=got[0])
        got += [gpu.generate_frame(image, lm) for _ in range(2)]  # the second write reuses slot 0
        slots, sr_stream, shown = gpu.slots, int(gpu.stream), int(gpu.display.stream)
        ready, read, slot0 = slots.ready[0], slots.read[0], slots.memory.buf["slot0"]
    ops = [op[:3] for op in driver.ops if op[0] == "copy" or op[2] in (ready, read)]  # copies: (op, stream, dst)
    assert ops[:4] == [("wait", sr_stream, read), ("copy", sr_stream, slot0), ("record", sr_stream, ready),
                       ("event sync", None, ready)]
    [display] = [i for i, op in enumerate(ops) if op[:2] == ("copy", shown)]
    assert ops[display - 1] == ("wait", shown, ready) and ops[display + 1] == ("record", shown, read)
    again = max(i for i, op in enumerate(ops) if op == ("copy", sr_stream, slot0))
    assert again > display + 1 and ops[again - 1] == ("wait", sr_stream, read)  # after that very record
    assert [op[2] for op in ops if op[:2] == ("copy", sr_stream)].count(slot0) == 2  # slot 1 in between


def test_run_takes_two_loops_on_the_gpu_pipeline_with_real_threads(driver):
    """``skinedge run``'s set-up (``live_pipeline``) on a GpuPipeline: the SR loop thread and the display step
    on two streams; frames shown with an earlier frame's SR say how old it is; closing frees everything."""
    lesions, _, gpu = both(max_frame=(64, 96))
    lesions.set(0.5, 0.5, 0.15)
    lines: list[str] = []
    base = frame(64, 96, seed=5)
    results = []
    with ExitStack() as stack:
        stack.enter_context(gpu)
        display = live_pipeline(gpu, LiveSettings(), lines.append, stack)
        assert isinstance(display, TwoLoopDisplay)
        for i in range(12):
            results.append(display(moved(base, i % 3, 0, seed=10 + i)))
            deadline = time.perf_counter() + 5
            while display.sr_loop.latest() is None and time.perf_counter() < deadline:
                time.sleep(0.01)  # the first frames come before the SR loop's first result
        assert display.sr_loop.error is None and display.sr_loop.counts["computed"] >= 1
        streams = {stream for _, stream in driver.launches}
        assert streams == {int(gpu.stream), int(gpu.display.stream)}
    text = "\n".join(lines)
    assert "own CUDA stream" in text and "SR budget: not on the GPU pipeline yet" in text, text
    shown = [r for r in results if r.sr_age_ms is not None]
    assert shown and all(r.found and r.note == "" and r.sr_age_ms >= 0 for r in shown)
    assert display.counts["sr"] == len(shown) and display.counts["frames"] == 12
    assert driver.streams == [] and driver.events == [] and gpu.display is None and gpu.slots is None


def test_one_loop_on_the_gpu_still_says_what_it_does_not_take(driver):
    _, _, gpu = both()
    lines: list[str] = []
    with ExitStack() as stack:
        stack.enter_context(gpu)
        assert live_pipeline(gpu, LiveSettings(sr_loop=False), lines.append, stack) is gpu
    assert lines == ["SR budget and temporal reuse: not on the GPU pipeline yet; every frame runs in full"]


@pytest.mark.gpu
@pytest.mark.parametrize("shape,disc,mode", [((270, 480), (0.5, 0.5, 0.08), "roi"),
                                             ((540, 960), (0.4, 0.6, 0.3), "full")])
def test_two_loops_on_a_real_gpu_match_the_cpu_two_loops(torch_cuda, shape, disc, mode):  # noqa: F811
    torch = torch_cuda
    from skinedge.runtime.backends.torch import TorchRunner

    size = 256
    seg, sr = tiny_nets(torch, size)
    manifest = make_manifest(size)
    seen = lesion_frame(*shape, *disc)
    now = moved(seen, *MOVE, seed=3)
    cpu_seg = TorchRunner((copy.deepcopy(seg), "cpu", False), "image", "logits")
    cpu_sr = TorchRunner((copy.deepcopy(sr), "cpu", False), "lr", "sr", clamp=True)
    gpu_seg = TorchRunner((seg.cuda(), "cuda", False), "image", "logits")
    gpu_sr = TorchRunner((sr.cuda(), "cuda", False), "lr", "sr", clamp=True)
    with Pipeline(cpu_seg, cpu_sr, manifest, mode, fidelity=Fidelity(noise="off")) as cpu, \
            gp.GpuPipeline(gpu_seg, gpu_sr, manifest, mode, max_frame=(1080, 1920)) as gpu:
        lm = cpu.segment(seen, {}, time.perf_counter())
        here = shift_mask(lm, MOVE, now.shape[:2])
        want = cpu.enhance(now, here, {}, time.perf_counter(), earlier=cpu.generate_frame(seen, lm))
        got = gpu.enhance(now, here, {}, time.perf_counter(), earlier=gpu.generate_frame(seen, lm))
        assert gpu.segment(seen, {}, time.perf_counter()).roi == lm.roi
    assert want.found and got.found and got.roi == want.roi and got.note == ""
    diff = np.abs(got.image.astype(int) - want.image.astype(int))
    assert got.image.shape == want.image.shape and diff.max() <= 2, f"max diff {diff.max()}"


@pytest.mark.gpu
def test_run_on_a_gpu_takes_two_cuda_streams(torch_cuda, exported, tmp_path):  # noqa: F811
    """``skinedge run`` with torch networks on CUDA: the GpuPipeline's two loops, every frame shown, SR ages."""
    from skinedge.data.video import write_moving_lesion_clip
    from skinedge.runtime.live.command import run_command

    _, _, models = exported
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=2.0, fps=30.0, width=320, height=240, seed=2)
    lines: list[str] = []
    summary = run_command(None, str(clip), models, backend="torch", precision="fp32", no_display=True,
                          log=lines.append, realtime=True, max_sr_age_ms=1000)
    text = "\n".join(lines)
    assert "pipeline gpu: " in text and "own CUDA stream" in text, text
    assert summary["frames"] + summary["dropped"] >= 55 and summary["sr_shown"] > 0
    assert summary["computed"] > 0 and summary["sr_loop_error"] is None
