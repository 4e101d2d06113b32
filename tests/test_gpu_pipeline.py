"""GpuPipeline against the CPU Pipeline.

1. Everywhere with g++: the fake ``cuda.bindings.driver`` of ``fake_cuda.py`` runs the real kernel sources (the
   three pipeline kernels and the tile blend) on the CPU, and host-side fake networks read and write the "device"
   buffers. Same network outputs in, so the pictures must agree to 1 LSB, the masks and ROIs exactly.
2. ``-m gpu`` (a GPU and torch CUDA): the torch-CUDA adapter with tiny checkpoint-free conv nets against the CPU
   Pipeline on the torch CPU backend; ≤ 2 LSB.
"""

from __future__ import annotations

import copy
import ctypes
import shutil

import numpy as np
import pytest
from fake_cuda import FakeDriver, HostRunner, install
from fake_runners import FnRunner
from PIL import Image

from skinedge.errors import SkinedgeError
from skinedge.runtime.gpu import device as cu
from skinedge.runtime.gpu import pipeline as gp
from skinedge.runtime.gpu import ptx as nv
from skinedge.runtime.gpu.device_nets import DeviceNet
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.pipeline.mask import MaskSettings
from skinedge.runtime.pipeline.projection import OFF, Fidelity

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
KEYS = {"preprocess", "seg", "mask", "sr", "project", "composite", "total"}


def make_manifest(size: int, scale: int = 4, sr_channels: int = 3) -> dict:
    return {"networks": {
        "seg": {"input": {"name": "image", "shape": ["batch", 3, size, size], "mean": list(MEAN), "std": list(STD)},
                "output": {"name": "logits"}},
        "sr": {"input": {"name": "lr", "shape": ["batch", sr_channels, "height", "width"]}, "output": {"name": "sr"},
               "scale": scale}}}


def _view(ptr: int, shape) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * int(np.prod(shape))).from_address(int(ptr))).reshape(shape)


class HostNet(DeviceNet):
    """A fake network behind the adapter interface: NumPy on the fake driver's (host) memory."""

    def __init__(self, fn):
        self.fn, self.inputs = fn, []

    def run(self, x, x_shape, y, y_shape):
        inp = _view(x, x_shape).copy()
        self.inputs.append(inp)
        out = self.fn(inp)
        assert out.shape == tuple(y_shape)
        _view(y, y_shape)[:] = out


class Lesions:
    """A seg 'network' whose logits are set per frame (+6 in a disc, −6 outside), whatever its input."""

    def __init__(self, size):
        self.size, self.logits = size, np.full((size, size), -6.0, np.float32)

    def set(self, cy: float, cx: float, r: float) -> None:  # in units of the mask (fractions of S)
        yy, xx = (np.mgrid[:self.size, :self.size] + 0.5) / self.size
        self.logits = np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, 6.0, -6.0).astype(np.float32)

    def __call__(self, x):
        assert x.shape == (1, 3, self.size, self.size)
        return self.logits[None, None].copy()


def fake_sr(x):
    """×4 with some neighbourhood (so tiles differ from the whole), values in [0, 1]."""
    mixed = 0.7 * x + 0.3 * np.roll(x, 1, axis=3) - 0.1 * np.roll(x, -1, axis=2)
    up = mixed.repeat(4, axis=2).repeat(4, axis=3)
    ramp = np.linspace(0, 0.05, up.shape[3], dtype=np.float32)
    return np.clip(up + ramp, 0, 1).astype(np.float32)


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([120 + 60 * np.sin(xx / 7.0), 140 + 50 * np.cos(yy / 5.0), 180 + 0 * xx], axis=2)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++: the kernels cannot be run on the CPU here")
    return HostRunner(tmp_path_factory.mktemp("gpu_pipeline_kernels"), {"tile_blend": gp.BLEND_SOURCE},
                      gp.BLEND_SIGNATURES)


@pytest.fixture()
def fake(host, monkeypatch):
    driver = FakeDriver(host.fn, gp.BLEND_SIGNATURES)
    install(monkeypatch, driver)
    ptx = b".entry tile_accumulate(\n.entry tile_normalize("
    monkeypatch.setattr(gp, "blend_ptx", lambda arch, cache_dir=None: ptx)
    return driver


S, TILE = 32, 32
OPTIONS = dict(tile=TILE, overlap=6, max_batch=2, fidelity=Fidelity(noise="off"))  # the CUDA projection's
ONE_PIECE = dict(OPTIONS, tile=128)
BARE = dict(tile=TILE, overlap=6, max_batch=2)  # for calls that pass their own fidelity


def run_both(lesions: Lesions, frames, mode="roi", settings=MaskSettings(), max_frame=(64, 96), sr=fake_sr,
             sr_channels=3):
    """Each frame through Pipeline (FnRunner) and GpuPipeline (HostNet) with the same fake networks."""
    manifest = make_manifest(S, sr_channels=sr_channels)
    seg_cpu, sr_cpu = FnRunner(lesions, "image", "logits"), FnRunner(sr, "lr", "sr")
    seg_gpu, sr_gpu = HostNet(lesions), HostNet(sr)
    results = []
    with Pipeline(seg_cpu, sr_cpu, manifest, mode, settings, **OPTIONS) as cpu, \
            gp.GpuPipeline(seg_gpu, sr_gpu, manifest, mode, settings, max_frame=max_frame, arch="sm_87",
                           **OPTIONS) as gpu:
        for image, disc in frames:
            lesions.set(*disc)
            sr_cpu.inputs.clear()
            sr_gpu.inputs.clear()
            want, got = cpu(image), gpu(image)
            results.append((want, got))
            expected_x = reference.preprocess(image, S, MEAN, STD)
            assert np.abs(seg_gpu.inputs[-1] - expected_x).max() <= 1e-4  # the preprocess kernel's input
            assert len(sr_gpu.inputs) == len(sr_cpu.inputs)  # same tiles, same batches
            for a, b in zip(sr_gpu.inputs, sr_cpu.inputs):
                assert a.shape == b.shape and np.abs(a - b).max() <= 1e-6
    return results


def assert_same(want, got):
    assert got.found == want.found and got.roi == want.roi and got.lesion_area == want.lesion_area
    assert np.array_equal(got.mask.mask, want.mask.mask) and np.array_equal(got.mask.soft, want.mask.soft)
    assert got.image.shape == want.image.shape and got.image.dtype == np.uint8
    diff = np.abs(got.image.astype(int) - want.image.astype(int))
    assert diff.max() <= 1, f"max diff {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert (diff > 0).mean() < 0.01
    assert set(got.timings_ms) == KEYS and got.note == want.note
    if want.found:  # the lesion's consistency residual, summed on the device with atomics
        assert got.residual == pytest.approx(want.residual, rel=1e-4, abs=1e-4)
    else:
        assert got.residual is None and want.residual is None
    assert all(v >= 0 for v in got.timings_ms.values())
    assert got.timings_ms["total"] == pytest.approx(sum(v for k, v in got.timings_ms.items() if k != "total"))


CASES = [  # frame shape, disc (cy, cx, r) in mask units, settings, expect tiling
    ((64, 96), (0.5, 0.5, 0.08), MaskSettings(margin_px=2), False),  # small ROI, one SR call
    ((64, 96), (0.45, 0.55, 0.3), MaskSettings(), True),  # ROI larger than the tile: tiles in batches, blended
    ((61, 97), (0.05, 0.95, 0.15), MaskSettings(), True),  # at the top-right border, odd sizes
    ((64, 96), (0.98, 0.02, 0.1), MaskSettings(margin_px=1), False),  # bottom-left corner
    ((40, 64), (0.5, 0.5, 0.2), MaskSettings(min_area=2.0), False),  # no lesion (forced)
]


@pytest.mark.parametrize("mode", ["roi", "full"])
@pytest.mark.parametrize("shape,disc,settings,tiled", CASES, ids=["small", "tiled", "border", "corner", "none"])
def test_gpu_pipeline_on_the_fake_driver_equals_the_cpu_pipeline(fake, mode, shape, disc, settings, tiled):
    [(want, got)] = run_both(Lesions(S), [(frame(*shape, seed=shape[0]), disc)], mode, settings)
    assert_same(want, got)
    if settings.min_area > 1:
        assert not got.found and got.timings_ms["sr"] == 0.0
        assert got.image.shape == (shape[0] * 4, shape[1] * 4, 3)
        return
    assert got.found
    x0, y0, rw, rh = got.roi
    assert (rw > TILE or rh > TILE) == tiled
    launched = [name for name, _ in fake.launches]
    assert ("tile_accumulate" in launched) == tiled and ("tile_normalize" in launched) == tiled
    assert len({stream for _, stream in fake.launches}) == 1  # all on the pipeline's one stream
    if mode == "roi":
        assert got.image.shape == (rh * 4, rw * 4, 3)
    if disc[0] < 0.1:
        assert y0 == 0 and x0 + rw == shape[1]  # the ROI is clipped at the frame border
    if disc[0] > 0.9:
        assert x0 == 0 and y0 + rh == shape[0]


@pytest.mark.parametrize("disc", [(0.5, 0.5, 0.08), (0.45, 0.55, 0.3)], ids=["one-piece", "tiled"])
def test_a_generator_with_a_camera_plane_gets_it_on_the_device_as_on_the_host(fake, disc):
    """The 4th input plane: the host pipeline sets it from the frame's noise floor (these frames are noisy: a
    camera's), the device path fills it with the camera value after the kernel's RGB planes, per tile."""
    def plane_sr(x):
        assert x.shape[1] == 4
        return fake_sr(x[:, :3]) * np.repeat(np.repeat(0.5 + 0.5 * x[:, 3:], 4, axis=2), 4, axis=3)

    lesions = Lesions(S)
    [(want, got)] = run_both(lesions, [(frame(64, 96, seed=5), disc)], sr=plane_sr, sr_channels=4)
    assert_same(want, got)  # run_both also checked that both fed the generator the same 4-plane inputs
    [(three, _)] = run_both(lesions, [(frame(64, 96, seed=5), disc)])
    assert np.array_equal(want.image, three.image)  # plane 1: the fake's output is fake_sr's


def test_several_frames_in_a_row_and_one_sync_after_the_logits(fake):
    frames = [(frame(64, 96, seed=i), disc) for i, disc in
              enumerate([(0.5, 0.5, 0.3), (0.3, 0.7, 0.08), (0.5, 0.5, 0.0), (0.9, 0.1, 0.2)])]
    before = fake.syncs
    results = run_both(Lesions(S), frames, "roi", MaskSettings(margin_px=3))
    for want, got in results:
        assert_same(want, got)
    assert [got.found for _, got in results] == [True, True, False, True]
    assert fake.syncs - before <= 2 * len(frames) + 2  # per frame: the logits and the end (+ close)


def test_no_device_allocation_after_the_first_frame_and_a_larger_frame_reallocates_once(fake):
    lesions = Lesions(S)
    lesions.set(0.5, 0.5, 0.3)
    with gp.GpuPipeline(HostNet(lesions), HostNet(fake_sr), make_manifest(S), max_frame=(64, 96), arch=87,
                        **OPTIONS) as gpu:
        opened, pinned = fake.allocs, fake.host_allocs
        assert opened > 0 and pinned == 6  # logits, mask, soft, residual sums, frame, result
        for _ in range(3):
            assert gpu(frame(64, 96)).found
        assert (fake.allocs, fake.host_allocs) == (opened, pinned)  # max frame: nothing new at all
        gpu(frame(40, 72))  # smaller, a new size: only its tap tables, once
        after_small = fake.allocs
        assert after_small - opened <= 4 and fake.host_allocs == pinned
        gpu(frame(40, 72))
        assert fake.allocs == after_small
        old = dict(gpu.memory.owned)
        big = gpu(frame(80, 120))  # larger than max_frame: the frame-sized buffers, once
        assert big.found and big.image.shape[0] > 0
        grown, grown_pinned = fake.allocs, fake.host_allocs
        assert grown_pinned == pinned + 2 and grown - after_small >= 4
        assert {old[n] for n in ("frame", "out", "acc", "weight")} <= set(fake.freed)
        for shape in ((80, 120), (64, 96), (80, 120)):
            gpu(frame(*shape))
        assert (fake.allocs, fake.host_allocs) == (grown, grown_pinned)
        owned = list(gpu.memory.owned.values()) + list(gpu.kernels._allocations)
        pinned_ptrs = [ptr for ptr, _ in gpu.memory.pinned.values()]
    assert set(owned) <= set(fake.freed) and set(pinned_ptrs) <= set(fake.host_freed)
    assert fake.streams == [] and fake.events == [] and fake.retained == 0
    assert sorted(fake.unloaded) == sorted(
        [",".join(f) for f in nv.KERNEL_FUNCTIONS.values()] + ["tile_accumulate,tile_normalize"])
    gpu.close()  # idempotent


class FakeTrt:
    """Stands in for TrtRunner: its own device buffers at the profile maximum; ``enqueue`` on the given stream."""

    name = "tensorrt"

    def __init__(self, driver, fn, inp, out, max_in, max_out):
        self.driver, self.fn, self.inp, self.out, self.max = driver, fn, inp, out, {inp: max_in, out: max_out}
        self.active, self.stream, self.stream_arg, self.device_buffers, self.streams_seen = False, None, None, {}, []
        self.dtypes = {inp: np.dtype(np.float32), out: np.dtype(np.float32)}

    def activate(self):
        for name, shape in self.max.items():
            nbytes = 4 * int(np.prod(shape))
            self.device_buffers[name] = (self.driver.cuMemAlloc(nbytes)[1], nbytes)
        self.stream, self.active = self.stream_arg if self.stream_arg is not None else 5, True

    def deactivate(self):
        self.device_buffers, self.active, self.stream = {}, False, None

    def enqueue(self, device_inputs, device_outputs=None):
        ptr, shape = device_inputs[self.inp]
        assert ptr == self.device_buffers[self.inp][0]  # the pipeline wrote straight into the engine's buffer
        y = self.fn(_view(ptr, shape).copy())
        _view(device_outputs[self.out], y.shape)[:] = y
        self.streams_seen.append(self.stream)
        return {self.out: y.shape}


def test_tensorrt_adapter_runs_on_the_pipeline_stream_with_the_engine_buffers(fake):
    lesions = Lesions(S)
    lesions.set(0.45, 0.55, 0.3)
    seg = FakeTrt(fake, lesions, "image", "logits", (1, 3, S, S), (1, 1, S, S))
    sr = FakeTrt(fake, fake_sr, "lr", "sr", (2, 3, TILE, TILE), (2, 3, 4 * TILE, 4 * TILE))
    seg.activate()  # active on another stream: the adapter re-activates it on the pipeline's
    manifest = make_manifest(S)
    with gp.GpuPipeline(seg, sr, manifest, max_frame=(64, 96), arch=87, **OPTIONS) as gpu:
        stream = int(gpu.stream)
        assert not {"seg_in", "seg_out", "sr_in", "sr_out"} & set(gpu.memory.owned)  # the engines' own buffers
        got = gpu(frame(64, 96))
    with Pipeline(FnRunner(lesions, "image", "logits"), FnRunner(fake_sr, "lr", "sr"), manifest, **OPTIONS) as cpu:
        want = cpu(frame(64, 96))
    assert_same(want, got)
    assert set(seg.streams_seen) == {stream} and set(sr.streams_seen) == {stream} and len(sr.streams_seen) > 1
    assert not seg.active and not sr.active and seg.stream_arg is None


def test_tile_blend_on_the_device_is_exactly_the_reference_blend(fake):
    from skinedge.runtime.pipeline.tiling import super_resolve_tiled

    lesions = Lesions(S)
    lesions.set(0.45, 0.55, 0.3)
    image = frame(64, 96, seed=3)
    with gp.GpuPipeline(HostNet(lesions), HostNet(fake_sr), make_manifest(S), max_frame=(64, 96), arch=87,
                        fidelity=OFF, **BARE) as gpu:  # no projection: the blend buffer is the SR itself
        result = gpu(image)
        _, _, rw, rh = result.roi
        blended = _view(gpu.memory.buf["acc"], (1, 3, rh * 4, rw * 4)).copy()
    lr = reference.masked_roi(image, result.mask.mask, result.roi)
    expected = super_resolve_tiled(fake_sr, lr, 4, OPTIONS["tile"], OPTIONS["overlap"], OPTIONS["max_batch"])
    assert rw > TILE and np.array_equal(blended, expected)


def test_blend_kernels_compile_with_nvrtc_and_are_cached(tmp_path, monkeypatch):
    try:
        from cuda.bindings import nvrtc  # noqa: F401
        supported = nv.supported_archs()
    except Exception as exc:
        pytest.skip(f"cuda.bindings.nvrtc not usable: {exc}")
    import re

    arch = 87 if 87 in supported else max(supported)
    ptx = gp.blend_ptx(arch, tmp_path).decode()
    types = {np.uint64: "u64", np.int32: "u32", np.float32: "f32"}
    for name, signature in gp.BLEND_SIGNATURES.items():
        entry = re.search(rf"\.entry {name}\((.*?)\)", ptx, re.S)
        assert entry and re.findall(r"\.param \.(\w+)", entry.group(1)) == [types[t] for t in signature]
    assert "fma.rn.f32" not in ptx and ".ftz" not in ptx and "approx" not in ptx  # the reference's rounding
    monkeypatch.setattr(nv, "compile_ptx", lambda *a: pytest.fail("compiled again"))
    assert gp.blend_ptx(f"sm_{arch}", tmp_path).decode() == ptx and len(list(tmp_path.iterdir())) == 1


def test_cpu_runners_and_bad_arguments_are_refused():
    with pytest.raises(SkinedgeError, match="tensorrt or torch"):
        gp.GpuPipeline(FnRunner(fake_sr, "x"), HostNet(fake_sr), make_manifest(S))
    with pytest.raises(SkinedgeError, match="unknown mode"):
        gp.GpuPipeline(HostNet(fake_sr), HostNet(fake_sr), make_manifest(S), mode="crop")


def test_bad_frames_are_refused(fake):
    with gp.GpuPipeline(HostNet(Lesions(S)), HostNet(fake_sr), make_manifest(S), max_frame=(32, 32), arch=87) as p:
        with pytest.raises(SkinedgeError, match="uint8"):
            p(np.zeros((32, 32, 3), np.float32))
        with pytest.raises(SkinedgeError, match="at least"):
            p(np.zeros((8, 32, 3), np.uint8))


def test_module_imports_neither_torch_nor_cuda():
    import subprocess
    import sys

    code = ("import sys, skinedge.runtime.gpu.pipeline; "
            "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'cuda', 'tensorrt')]; "
            "assert not bad, bad; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


# ====================================================================== GPU: the torch-CUDA adapter

@pytest.fixture()
def torch_cuda(monkeypatch):
    if not cu.gpu_available():
        pytest.skip("no CUDA GPU (cuda.bindings driver init or device count failed)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 convolutions on both sides
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    return torch


def tiny_nets(torch, size: int):
    """A segmenter that finds dark blobs (fixed weights) and a random-init ×4 conv + pixel-shuffle generator."""
    nn = torch.nn
    torch.manual_seed(0)
    k, threshold = 40.0, 0.45  # logit = k·(threshold − mean RGB in [0, 1])
    to_logit = nn.Conv2d(3, 1, 1)
    blur = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        to_logit.weight[:] = torch.tensor([-k / 3 * s for s in STD]).view(1, 3, 1, 1)
        to_logit.bias[:] = k * threshold - k / 3 * sum(MEAN)
        blur.weight[:] = 1 / 9
    seg = nn.Sequential(to_logit, blur).eval()
    sr = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 48, 3, padding=1),
                       nn.PixelShuffle(4), nn.Sigmoid()).eval()
    return seg, sr


def lesion_frame(h: int, w: int, cy: float, cx: float, r: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    skin = np.clip(np.array([150, 170, 210]) + rng.normal(0, 6, (h, w, 3)), 0, 255)
    inside = ((yy / h - cy) ** 2 + (xx / w - cx) ** 2) <= r * r
    return np.where(inside[:, :, None], np.clip(skin * 0.35, 0, 255), skin).astype(np.uint8)


def test_torch_adapter_logic_on_the_fake_driver(fake, monkeypatch):
    """TorchCudaNet's buffers, views, stream scope and copy-out, with CPU tensors standing in for CUDA ones."""
    torch = pytest.importorskip("torch")
    import contextlib

    from skinedge.runtime.backends.torch import TorchRunner

    streams = []
    monkeypatch.setattr(torch.cuda, "ExternalStream", lambda handle: streams.append(handle) or handle)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    seg, sr = tiny_nets(torch, S)
    manifest = make_manifest(S)
    image = lesion_frame(64, 96, 0.5, 0.5, 0.3)
    with Pipeline(TorchRunner((seg, "cpu", False), "image", "logits"),
                  TorchRunner((sr, "cpu", False), "lr", "sr", clamp=True), manifest, **OPTIONS) as cpu:
        want = cpu(image)
    gpu_seg = TorchRunner((seg, "cuda", False), "image", "logits")  # labelled cuda, the tensors stay on the CPU
    gpu_sr = TorchRunner((sr, "cuda", False), "lr", "sr", clamp=True)
    with gp.GpuPipeline(gpu_seg, gpu_sr, manifest, max_frame=(64, 96), arch=87, graphs=False, **OPTIONS) as gpu:
        assert not {"seg_in", "seg_out", "sr_in", "sr_out"} & set(gpu.memory.owned)  # torch owns the network I/O
        assert streams == [int(gpu.stream)] * 2
        got = gpu(image)
    assert want.found and got.roi == want.roi and got.roi[2] > TILE
    assert np.array_equal(got.mask.mask, want.mask.mask)
    assert np.abs(got.image.astype(int) - want.image).max() <= 1
    assert not gpu_seg.active and not gpu_sr.active


def test_cuda_graph_bookkeeping_on_the_fake_driver(fake, monkeypatch):
    """Eager on a shape's first frame, captured on its second, replayed after; at most GRAPHS kept; a failed
    capture turns graphs off. Fake graphs replay nothing, so the ROI is one piece (no tiles overwriting one
    another's output), the frames repeat and nothing is projected in place: then the output buffer still holds
    the right picture."""
    torch = pytest.importorskip("torch")
    import contextlib

    from skinedge.runtime.backends.torch import TorchRunner

    replays, captures = [], []

    class FakeGraph:
        def replay(self):
            replays.append(self)

    @contextlib.contextmanager
    def capture(graph, pool=None, stream=None, capture_error_mode="global"):
        captures.append((graph, pool))
        yield

    monkeypatch.setattr(torch.cuda, "ExternalStream", lambda handle: handle)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "pool")
    seg, sr = tiny_nets(torch, S)
    manifest, image = make_manifest(S), lesion_frame(64, 96, 0.5, 0.5, 0.3)
    with gp.GpuPipeline(TorchRunner((seg, "cuda", False), "image", "logits"),
                        TorchRunner((sr, "cuda", False), "lr", "sr", clamp=True), manifest, max_frame=(64, 96),
                        arch=87, fidelity=OFF, **dict(BARE, tile=128)) as gpu:
        results = [gpu(image) for _ in range(4)]
        assert len(gpu.seg.graphs) == len(gpu.sr.graphs) == 1 and len(captures) == 2  # on the second frame
        assert {pool for _, pool in captures} == {"pool"}
        assert len(replays) == 3 * len(captures)  # frame 2 after its capture, frames 3 and 4
        for r in results[1:]:
            assert np.array_equal(r.image, results[0].image) and r.roi == results[0].roi
        net, io = gpu.seg, (gpu.memory.buf["seg_in"], (1, 3, S, S), gpu.memory.buf["seg_out"], (1, 1, S, S))
        first = next(iter(net.graphs))
        for n in range(net.GRAPHS):
            net._capture(("another shape", n), *io)
        assert len(net.graphs) == net.GRAPHS and first not in net.graphs  # least recently used dropped
    seg_r = TorchRunner((seg, "cuda", False), "image", "logits")

    @contextlib.contextmanager
    def broken(graph, **_):
        raise RuntimeError("operation not permitted when stream is capturing")
        yield

    monkeypatch.setattr(torch.cuda, "graph", broken)
    with gp.GpuPipeline(seg_r, TorchRunner((sr, "cuda", False), "lr", "sr", clamp=True), manifest,
                        max_frame=(64, 96), arch=87, fidelity=OFF, **dict(BARE, tile=128)) as gpu:
        again = [gpu(image) for _ in range(3)]
        assert not gpu.seg.use_graphs and "capture failed: RuntimeError" in gpu.seg.eager_why
    assert all(np.array_equal(r.image, results[0].image) for r in again)


@pytest.mark.gpu
@pytest.mark.parametrize("shape,disc,mode", [((270, 480), (0.5, 0.5, 0.08), "roi"),
                                             ((540, 960), (0.4, 0.6, 0.3), "full"),
                                             ((1080, 1920), (0.5, 0.4, 0.12), "roi")])
def test_torch_cuda_adapter_matches_the_cpu_pipeline(torch_cuda, shape, disc, mode):
    torch = torch_cuda
    from skinedge.runtime.backends.torch import TorchRunner

    size = 256
    seg, sr = tiny_nets(torch, size)
    manifest = make_manifest(size)
    image = lesion_frame(*shape, *disc)
    cpu_seg = TorchRunner((copy.deepcopy(seg), "cpu", False), "image", "logits")
    cpu_sr = TorchRunner((copy.deepcopy(sr), "cpu", False), "lr", "sr", clamp=True)
    with Pipeline(cpu_seg, cpu_sr, manifest, mode, fidelity=Fidelity(noise="off")) as cpu:
        want = cpu(image)
    gpu_seg = TorchRunner((seg.cuda(), "cuda", False), "image", "logits")
    gpu_sr = TorchRunner((sr.cuda(), "cuda", False), "lr", "sr", clamp=True)
    with gp.GpuPipeline(gpu_seg, gpu_sr, manifest, mode, max_frame=(1080, 1920)) as gpu:
        got = gpu(image)
        again = gpu(image)
    assert want.found and got.found == want.found and got.roi == want.roi
    assert (got.mask.mask != want.mask.mask).mean() < 1e-3
    diff = np.abs(got.image.astype(int) - want.image.astype(int))
    assert got.image.shape == want.image.shape and diff.max() <= 2, f"max diff {diff.max()}"
    assert np.abs(again.image.astype(int) - got.image).max() <= 1 and set(got.timings_ms) == KEYS
    assert all(v >= 0 for v in got.timings_ms.values())


@pytest.mark.gpu
def test_the_cli_runs_torch_on_cuda_through_the_gpu_pipeline(torch_cuda, exported, capsys, tmp_path):
    """`enhance` and `bench` with the torch backend on a GPU take GpuPipeline; the pictures match ONNX Runtime's."""
    from test_export import cli

    from skinedge.runtime.bench.report import validate_bench
    from skinedge.runtime.bench.run import bench_command

    root, _, models = exported
    images = sorted((root / "data" / "images").glob("*.png"))[:3]
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / backend
        code, text, err = cli(capsys, "enhance", *images, "--models", models, "--out", outs[backend],
                              "--backend", backend, "--precision", "fp32", "--mode", "full")
        assert code == 0, err
        assert ("pipeline gpu: " in text) == (backend == "torch"), text
    for image in images:
        got, want = (np.asarray(Image.open(outs[b] / f"{image.stem}.enhanced.png")).astype(int)
                     for b in ("torch", "onnxruntime"))
        assert got.shape == want.shape and np.abs(got - want).mean() < 1.0, image  # FP32 both, TF32 off
    lines: list[str] = []
    doc = bench_command(models, ["torch"], ["fp32", "fp16"], ["roi"], frames=3, warmup=1, data=None, size=96,
                        engines=None, json_path=tmp_path / "bench.json", plot_path=None, no_baseline=False,
                        log=lines.append)
    rows = {r["precision"]: r for r in doc["results"]}
    assert validate_bench(doc) == [] and [r["status"] for r in doc["results"]] == ["ok", "ok"], doc["results"]
    assert rows["fp16"]["variants"] == {"seg": "fp16", "sr": "fp16"} and rows["fp32"]["variants"]["sr"] == "fp32"
    assert all(r["pipeline"].startswith("gpu: ") and r["memory"]["device_mb"] > 0 for r in rows.values())
    assert doc["environment"].get("gpu"), doc["environment"]


@pytest.mark.gpu
def test_torch_networks_replay_cuda_graphs_with_the_eager_pictures(torch_cuda):
    """A repeated shape is captured on its second frame and replayed after; the pictures equal eager ones."""
    torch = torch_cuda
    from skinedge.runtime.backends.torch import TorchRunner

    size = 256
    seg, sr = tiny_nets(torch, size)
    manifest = make_manifest(size)
    frames = [lesion_frame(270, 480, 0.5, 0.5, 0.08), lesion_frame(270, 480, 0.45, 0.55, 0.1)]
    results = {}
    for graphs in (False, True):
        seg_r = TorchRunner((copy.deepcopy(seg).cuda(), "cuda", False), "image", "logits")
        sr_r = TorchRunner((copy.deepcopy(sr).cuda(), "cuda", False), "lr", "sr", clamp=True)
        with gp.GpuPipeline(seg_r, sr_r, manifest, "roi", max_frame=(270, 480), graphs=graphs) as gpu:
            results[graphs] = [gpu(frames[i % 2]) for i in range(6)]  # each ROI shape seen three times
            nets = (gpu.seg, gpu.sr)
            assert all(n.eager_why is None for n in nets) if graphs else all(not n.graphs for n in nets)
            if graphs:
                assert len(gpu.seg.graphs) == 1 and len(gpu.sr.graphs) >= 1  # the ROI as one piece or tiles
    for eager, replayed in zip(results[False], results[True]):
        assert eager.roi == replayed.roi and np.array_equal(eager.mask.mask, replayed.mask.mask)
        assert np.abs(eager.image.astype(int) - replayed.image).max() <= 1
