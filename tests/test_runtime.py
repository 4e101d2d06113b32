"""The lean runtime on the CPU: backends, the pipeline, tiling, `skinedge enhance` and its bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_export import cli
from test_runtime_lean import BLOCK_HEAVY

from skinedge.data.imageio import read_rgb
from skinedge.errors import SkinedgeError
from skinedge.runtime.backends import choose_backend, open_runners
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.pipeline.tiling import super_resolve_tiled, tile_side, tile_starts
from skinedge.runtime.session import open_pipeline


def lesion_frame(root, index: int = 0) -> np.ndarray:
    """A generated image with a lesion, as a uint8 BGR frame."""
    paths = sorted((root / "data" / "images").glob("*.png"))
    rgb, _ = read_rgb(paths[index])
    return np.ascontiguousarray(rgb[:, :, ::-1])


def run_pipeline(models, backend, frame, mode="roi", precision="auto", **kw):
    manifest = load_models(models)
    opened = open_runners(models, manifest, backend, precision)
    with Pipeline(opened.seg, opened.sr, manifest, mode, **kw) as pipeline:
        return pipeline(frame), opened


def test_onnxruntime_and_torch_backends_give_the_same_picture(exported):
    root, _, models = exported
    frame = lesion_frame(root)
    ort, opened = run_pipeline(models, "onnxruntime", frame, precision="fp32")
    ref, _ = run_pipeline(models, "torch", frame)
    assert opened.variants == {"seg": "fp32", "sr": "fp32"}
    assert ort.found == ref.found and ort.roi == ref.roi
    if ort.found:
        assert ort.image.shape == (ort.roi[3] * 4, ort.roi[2] * 4, 3)
        diff = np.abs(ort.image.astype(int) - ref.image.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05
    assert set(ort.timings_ms) == {"preprocess", "seg", "mask", "sr", "project", "composite", "total"}


def test_full_mode_holds_the_roi_view_at_its_place(exported):
    root, _, models = exported
    frame = lesion_frame(root, 1)
    roi, _ = run_pipeline(models, "onnxruntime", frame, "roi", "fp32", settings=_always_lesion())
    full, _ = run_pipeline(models, "onnxruntime", frame, "full", "fp32", settings=_always_lesion())
    assert full.image.shape == (frame.shape[0] * 4, frame.shape[1] * 4, 3)
    x0, y0, w, h = roi.roi
    np.testing.assert_array_equal(full.image[y0 * 4:(y0 + h) * 4, x0 * 4:(x0 + w) * 4], roi.image)


def _always_lesion():
    from skinedge.runtime.pipeline.mask import MaskSettings

    return MaskSettings(min_area=0.0)


def test_no_lesion_passes_the_smooth_upscale_and_says_so(exported):
    from skinedge.runtime.pipeline.mask import MaskSettings

    _, _, models = exported
    frame = np.full((48, 64, 3), (120, 150, 200), np.uint8)
    nothing = MaskSettings(min_area=2.0)  # no mask can cover more than the whole frame: never a lesion
    result, _ = run_pipeline(models, "onnxruntime", frame, precision="fp32", settings=nothing)
    assert not result.found and "no lesion" in result.note and result.roi is None
    assert result.image.shape == (192, 256, 3) and result.timings_ms["sr"] == 0.0
    expected = reference.composite(frame, None, result.mask.soft, (0, 0, 0, 0), 4, (0, 0, 256, 192))
    np.testing.assert_array_equal(result.image, expected)


def test_tiles_blend_back_into_exactly_the_untiled_result():
    """With a per-pixel 'network' (nearest ×4), any tiling must reproduce the whole-image result."""
    def nearest(batch):
        return batch.repeat(4, axis=2).repeat(4, axis=3)

    lr = np.random.default_rng(0).random((1, 3, 37, 53), dtype=np.float32)
    whole = nearest(lr)
    for tile, overlap in ((16, 4), (20, 6), (37, 8)):
        out = super_resolve_tiled(nearest, lr, 4, tile, overlap, max_batch=3)
        np.testing.assert_allclose(out, whole, atol=1e-5)
    assert tile_starts(53, 16, 4) == [0, 9, 18, 28, 37] and tile_starts(256, 128, 8) == [0, 64, 128]
    assert tile_starts(240, 128, 16) == [0, 112]


def test_tiles_are_only_as_long_as_their_count_needs():
    assert tile_side(321, 256, 8) == 165 and tile_starts(321, 165, 8) == [0, 156]  # not two 256-px tiles
    assert tile_side(200, 256, 8) == 200 and tile_side(256, 256, 8) == 256 and tile_side(1000, 256, 8) == 256
    for size in range(17, 700, 7):
        for tile, overlap in ((64, 8), (128, 8), (256, 16)):
            side = tile_side(size, tile, overlap)
            starts = tile_starts(size, side, overlap)
            fewest = len(tile_starts(size, min(tile, size), overlap))
            assert side <= tile and len(starts) == fewest and starts[-1] + side == size
            assert all(b - a <= side - overlap for a, b in zip(starts, starts[1:]))  # overlap kept
            if len(starts) > 1:  # one pixel shorter would need another tile
                assert len(tile_starts(size, side - 1, overlap)) > fewest or side - 1 < overlap * 2
    seen = []
    super_resolve_tiled(lambda b: seen.append(b.shape) or b.repeat(4, 2).repeat(4, 3),
                        np.zeros((1, 3, 300, 100), np.float32), 4, 256, 8)
    assert seen == [(2, 3, 154, 100)]


def test_auto_backend_here_is_the_cpu_and_says_why(exported):
    backend, why = choose_backend("auto", None)
    if backend == "cpu":
        assert "each network on its fastest backend" in why
    with pytest.raises(SkinedgeError, match="unknown backend"):
        choose_backend("openvino2", None)


def test_auto_precision_takes_the_fastest_variant_the_gates_allow(exported, tmp_path):
    _, _, models = exported
    work = tmp_path / "m"
    shutil.copytree(models, work)
    manifest = json.loads((work / "models.json").read_text())
    variants = manifest["networks"]["sr"]["variants"]
    variants["int8-cpu"] = dict(variants["fp32"], status="ok", cpu_form={"faster_than_fp32": True})
    variants["pruned.fp32"] = dict(variants["fp32"], status="failing")
    (work / "models.json").write_text(json.dumps(manifest))
    opened = open_runners(work, load_models(work), "onnxruntime", "auto")
    assert opened.variants["sr"] == "int8-cpu"  # pruned one failed its gate: skipped
    variants["int8-cpu"]["cpu_form"]["faster_than_fp32"] = False
    (work / "models.json").write_text(json.dumps(manifest))
    assert open_runners(work, load_models(work), "onnxruntime", "auto").variants["sr"] == "fp32"
    with pytest.raises(SkinedgeError, match="neither network is pruned"):
        open_runners(models, load_models(models), "onnxruntime", "pruned.fp32")
    variants["pruned.fp32"]["status"] = "ok"  # only the SR generator pruned: the segmenter runs unpruned
    (work / "models.json").write_text(json.dumps(manifest))
    assert open_runners(work, load_models(work), "onnxruntime", "pruned.fp32").variants == {
        "seg": "fp32", "sr": "pruned.fp32"}


def test_networks_on_the_cpu_get_the_numpy_host_pipeline(exported, monkeypatch):
    from skinedge.runtime import backends

    _, _, models = exported
    manifest = load_models(models)
    pipeline, where = open_pipeline(open_runners(models, manifest, "onnxruntime", "fp32"), manifest, "full", 64)
    assert isinstance(pipeline, Pipeline) and where == ("host: pixel stages in NumPy (the networks run on the CPU); "
                                                       "projection 3 step(s) down to the LR's noise floor, chroma "
                                                       "from the camera, frame surround")
    assert (pipeline.mode, pipeline.tile) == ("full", 64)
    monkeypatch.setattr(backends, "torch_cuda", lambda: True)  # torch on a GPU, but no cuda.bindings/driver here
    monkeypatch.setattr("skinedge.runtime.gpu.device.gpu_available", lambda: False)
    pipeline, where = open_pipeline(open_runners(models, manifest, "torch", "fp32"), manifest)
    assert isinstance(pipeline, Pipeline) and "cuda.bindings" in where and pipeline.tile == 256


def make_bad_inputs(folder):
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "tiny.png")
    Image.new("1", (20000, 20000)).save(folder / "huge.png")  # small file, 400 MP when decoded
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 48)) * 65535).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(folder / "gray.png")
    Image.fromarray((rng.random((40, 48, 4)) * 255).astype(np.uint8)).save(folder / "rgba.png")
    whole = (folder / "rgba.png").read_bytes()
    (folder / "corrupt.png").write_bytes(whole[: len(whole) // 2])  # a real PNG cut in half


def test_enhance_processes_good_files_and_reports_each_bad_one(exported, capsys, tmp_path):
    root, _, models = exported
    make_bad_inputs(tmp_path / "in")
    shutil.copy(sorted((root / "data" / "images").glob("*.png"))[0], tmp_path / "in" / "lesion.png")
    out = tmp_path / "out"
    code, text, err = cli(capsys, "enhance", tmp_path / "in", tmp_path / "nothing-*.png", "--models", models,
                          "--out", out, "--backend", "onnxruntime")
    assert code == 1 and "6 input(s) failed" in err and "Traceback" not in err + text
    for bad, reason in [("empty", "empty file"), ("notes", "text file"), ("corrupt", "cannot decode"),
                        ("tiny", "at least 16×16"), ("huge", "too large")]:
        line = next(t for t in text.splitlines() if f"{bad}.png" in t)
        assert line.startswith("FAIL") and reason in line, line
        assert not list(out.glob(f"{bad}.*"))  # no partial outputs
    assert "skip " in text and "nothing-*.png" in text
    for good in ("lesion", "deep16", "gray", "rgba"):
        for kind in ("enhanced", "mask", "panel"):
            assert (out / f"{good}.{kind}.png").is_file(), (good, kind)
    enhanced = np.asarray(Image.open(out / "gray.enhanced.png"))  # the ROI ×4, or all 48×40 of it ×4
    assert enhanced.shape[2] == 3 and enhanced.shape[0] % 4 == enhanced.shape[1] % 4 == 0
    assert enhanced.shape[0] <= 160 and enhanced.shape[1] <= 192
    # running again does not overwrite without --overwrite
    before = (out / "lesion.enhanced.png").read_bytes()
    code, text, _ = cli(capsys, "enhance", tmp_path / "in" / "lesion.png", "--models", models, "--out", out,
                        "--backend", "onnxruntime")
    assert code == 1 and "already in" in text and (out / "lesion.enhanced.png").read_bytes() == before


def test_enhance_refuses_a_tampered_model_and_a_gate_refused_precision(exported, capsys, tmp_path):
    root, _, models = exported
    image = sorted((root / "data" / "images").glob("*.png"))[0]
    work = tmp_path / "m"
    shutil.copytree(models, work)
    manifest = json.loads((work / "models.json").read_text())
    for net in ("seg", "sr"):
        variants = manifest["networks"][net]["variants"]
        variants["int8"] = dict(variants["fp32"], status="failing", gate={"reason": "psnr_drop_db 0.9 > 0.5"})
    (work / "models.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "enhance", image, "--models", work, "--out", tmp_path / "o", "--backend",
                       "onnxruntime", "--precision", "int8")
    assert code == 1 and "failed its accuracy gate" in err and "psnr_drop_db" in err
    (work / "seg.onnx").write_bytes((work / "seg.onnx").read_bytes()[:-10] + b"0123456789")
    code, _, err = cli(capsys, "enhance", image, "--models", work, "--out", tmp_path / "o", "--backend",
                       "onnxruntime", "--precision", "fp32")
    assert code == 1 and "does not match models.json" in err and len(err.strip().splitlines()) == 1


CPU_PIPELINE_WITHOUT_TORCH = BLOCK_HEAVY + """
from pathlib import Path
import numpy as np
from skinedge.runtime.manifest import load_models
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.backends import open_runners
models = Path(sys.argv[1])
manifest = load_models(models)
opened = open_runners(models, manifest, "auto", "auto")
frame = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
with Pipeline(opened.seg, opened.sr, manifest) as pipeline:
    result = pipeline(frame)
print(opened.backend, result.image.shape, sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))
"""


def test_the_cpu_pipeline_runs_without_torch(exported):
    _, _, models = exported
    result = subprocess.run([sys.executable, "-c", CPU_PIPELINE_WITHOUT_TORCH, str(models)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] in ("onnxruntime", "openvino", "onnxruntime+openvino", "openvino+onnxruntime")
    assert result.stdout.strip().endswith("[]")


def test_build_engines_without_tensorrt_exits_2_with_one_line(exported, capsys, tmp_path):
    from skinedge.runtime.engines import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    _, _, models = exported
    profile = (Path(__file__).resolve().parent.parent / "export" / "desktop-fp16.toml").read_text()
    fp32 = tmp_path / "fp32.toml"  # this models dir has only FP32 files, and a 64² segmenter
    fp32.write_text(profile.replace('"fp16"', '"fp32"').replace("3, 256, 256", "3, 64, 64"))
    code, _, err = cli(capsys, "build-engines", "--models", models, "--profile", fp32, "--out", tmp_path / "engines")
    assert code == 2 and "TensorRT" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "engines").exists() or not list((tmp_path / "engines").iterdir())


# ----------------------------------------------------------------- fidelity: surround, projection, residual

def _fidelity_case():
    """A 64×80 frame with a dark lesion disc, a segmenter that finds it, and a 'generator' that up-scales
    (nearest) with a strong colour cast: the kind of invention the projection must undo."""
    from fake_runners import FnRunner as Fn

    h, w, s = 64, 80, 32
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 30) ** 2 + (xx - 42) ** 2 <= 14 ** 2
    frame = np.where(disc[:, :, None], [60, 50, 110], [170, 180, 210]).astype(np.uint8)  # BGR
    frame = np.clip(frame + np.random.default_rng(0).normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
    my, mx = (np.mgrid[:s, :s] + 0.5) / s
    logits = np.where((my * h - 30) ** 2 + (mx * w - 42) ** 2 <= 14 ** 2, 6.0, -6.0).astype(np.float32)
    cast = np.array([0.12, -0.08, 0.1], np.float32)[None, :, None, None]
    seg = Fn(lambda x: logits[None, None].copy(), "image", "logits")
    sr = Fn(lambda x: np.clip(x.repeat(4, 2).repeat(4, 3) + cast, 0, 1), "lr", "sr")
    manifest = {"networks": {"seg": {"input": {"name": "image", "shape": [1, 3, s, s], "mean": [0, 0, 0],
                                               "std": [1, 1, 1]}, "output": {"name": "logits"}},
                             "sr": {"input": {"name": "lr"}, "output": {"name": "sr"}, "scale": 4}}}
    return frame, disc, seg, sr, manifest


def test_projection_gives_back_the_cameras_colour_and_reports_what_was_invented():
    from skinedge import metrics
    from skinedge.runtime.pipeline.host import Pipeline
    from skinedge.runtime.pipeline.projection import OFF, Fidelity, down

    frame, disc, seg, sr, manifest = _fidelity_case()
    truth = np.asarray(Image.fromarray(frame[:, :, ::-1]).resize((80 * 4, 64 * 4), Image.BICUBIC))
    lesion = np.asarray(Image.fromarray(disc.astype(np.uint8) * 255).resize((320, 256), Image.NEAREST)) > 0
    inner = lesion & ~metrics.border_band(lesion, 12)
    results = {}
    for name, fidelity in (("off", OFF), ("generator", Fidelity(3, "generator", noise="off")),
                           ("camera", Fidelity(noise="off"))):
        with Pipeline(seg, sr, manifest, "full", fidelity=fidelity) as p:
            results[name] = p(frame)
    for r in results.values():  # the residual is measured before projection: the same cast each time
        assert r.found and r.residual == pytest.approx(results["off"].residual)
    assert results["off"].residual > 15  # ≈ 255 · mean |cast| = 25.5 on the lesion's pixels
    shift = {k: float(np.abs(r.image[:, :, ::-1][inner].astype(float).mean(0) - truth[inner].mean(0)).max())
             for k, r in results.items()}
    assert shift["off"] > 15 and shift["generator"] < 1.5 and shift["camera"] < 1.5
    # projected, the output down-scales to the camera's frame inside the lesion
    out = results["generator"].image[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    back = down(out, 64, 80)[0].transpose(1, 2, 0) * 255
    core = disc & ~metrics.border_band(disc, 3)
    assert np.abs(back[core] - frame[:, :, ::-1][core]).mean() < 1.5


def test_sr_sees_the_real_surround_unless_the_paper_masking_is_asked_for():
    from skinedge.runtime.pipeline.host import Pipeline
    from skinedge.runtime.pipeline.projection import Fidelity

    frame, disc, seg, sr, manifest = _fidelity_case()
    for surround in ("frame", "black"):
        sr.inputs.clear()
        with Pipeline(seg, sr, manifest, "roi", fidelity=Fidelity(surround=surround)) as p:
            result = p(frame)
        x0, y0, w, h = result.roi
        fed = sr.inputs[-1][0]
        crop = frame[y0:y0 + h, x0:x0 + w, ::-1].transpose(2, 0, 1) / np.float32(255)
        assert not disc[y0, x0]  # the ROI's corner lies outside the lesion disc
        if surround == "frame":
            assert np.array_equal(fed, crop.astype(np.float32))
        else:
            assert (fed[:, 0, 0] == 0).all() and (fed[:, h // 2, w // 2] > 0).all()
